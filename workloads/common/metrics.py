"""Metric names and label keys used by every workload, in one place (dashboards and alerts use them too)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

FEATURE_JOB_ROWS = "mlkit_feature_job_rows"
FEATURE_JOB_LAST_SUCCESS = "mlkit_feature_job_last_success_timestamp_seconds"
FEATURE_JOB_DURATION = "mlkit_feature_job_duration_seconds"
FEATURE_JOB_STAGES = ("read", "accepted", "quarantined", "duplicates", "unchanged", "written")


def feature_job_registry(reports) -> CollectorRegistry:
    """A registry holding one batch's counts per table and stage (gauges: a batch job reports its last run)."""
    registry = CollectorRegistry()
    rows = Gauge(
        FEATURE_JOB_ROWS,
        "Rows of the last feature-job batch, by table and stage",
        ["table", "stage"],
        registry=registry,
    )
    success = Gauge(
        FEATURE_JOB_LAST_SUCCESS, "When the feature job last completed a batch", ["table"], registry=registry
    )
    duration = Gauge(FEATURE_JOB_DURATION, "Seconds the last batch took", ["table"], registry=registry)
    for report in reports:
        for stage in FEATURE_JOB_STAGES:
            rows.labels(report.table, stage).set(getattr(report, stage))
        success.labels(report.table).set_to_current_time()
        duration.labels(report.table).set(report.seconds)
    return registry


def publish(
    registry: CollectorRegistry,
    *,
    textfile: str | None = None,
    pushgateway: str | None = None,
    job: str = "mlkit-feature-job",
) -> None:
    """Write the node-exporter textfile format and/or push to a Prometheus Pushgateway."""
    if textfile:
        write_to_textfile(textfile, registry)
    if pushgateway:
        push_to_gateway(pushgateway, job=job, registry=registry)

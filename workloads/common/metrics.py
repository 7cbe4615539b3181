"""Metric names and label keys used by every workload, in one place (dashboards and alerts use them too)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

FEATURE_JOB_ROWS = "mlkit_feature_job_rows"
FEATURE_JOB_LAST_SUCCESS = "mlkit_feature_job_last_success_timestamp_seconds"
FEATURE_JOB_DURATION = "mlkit_feature_job_duration_seconds"
FEATURE_JOB_STAGES = ("read", "accepted", "quarantined", "duplicates", "unchanged", "written")

# The drift job (workloads/monitoring): pushed to the Pushgateway as job DRIFT_JOB, grouped by
# namespace, registered_model and registered_version (the serving labels, workloads/serving/metrics.py).
DRIFT_JOB = "mlkit-drift"
DRIFT_LABELS = ("namespace", "registered_model", "registered_version")
DRIFT_FEATURE_PSI = "mlkit_drift_feature_psi"  # + feature: population stability index, served vs reference
DRIFT_FEATURE_PVALUE = "mlkit_drift_feature_pvalue"  # + feature, test (ks | chi2): two-sample test p-value
DRIFT_FEATURE_WASSERSTEIN = "mlkit_drift_feature_wasserstein"  # + feature: numeric, in reference standard deviations
DRIFT_FEATURE_MISSING_CHANGE = "mlkit_drift_feature_missing_rate_change"  # + feature: served minus reference
DRIFT_FEATURE_DRIFTED = "mlkit_drift_feature_drifted"  # + feature: 1 when PSI >= the job's threshold
DRIFT_PREDICTION_PSI = "mlkit_drift_prediction_psi"  # the score distribution, served vs the test set's
DRIFT_MAX_PSI = "mlkit_drift_max_psi"  # the largest feature PSI: what the drift alert watches
DRIFT_WINDOW_ROWS = "mlkit_drift_window_rows"  # prediction rows in the window that were compared
DRIFT_NO_DATA = "mlkit_drift_no_data"  # 1 when the window held no usable rows (no drift numbers then)
DRIFT_SKIPPED = "mlkit_drift_skipped_records"  # + reason: request-log records not compared, and why
DRIFT_LAST_RUN = "mlkit_drift_last_run_timestamp_seconds"
MODEL_ROC_AUC = "mlkit_model_roc_auc"  # over the window's feedback labels, when enough arrived
MODEL_FEEDBACK_ROWS = "mlkit_model_feedback_rows"


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
    grouping_key: dict[str, str] | None = None,
) -> None:
    """Write the node-exporter textfile format and/or push to a Prometheus Pushgateway.

    A push replaces the group's metrics (PUT): a run that finds no data leaves no stale drift numbers behind."""
    if textfile:
        write_to_textfile(textfile, registry)
    if pushgateway:
        push_to_gateway(pushgateway, job=job, registry=registry, grouping_key=grouping_key or {})

"""Metric names and label keys used by every workload, in one place (dashboards and alerts use them too)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

FEATURE_JOB_ROWS = "mlkit_feature_job_rows"
FEATURE_JOB_LAST_SUCCESS = "mlkit_feature_job_last_success_timestamp_seconds"
FEATURE_JOB_DURATION = "mlkit_feature_job_duration_seconds"
FEATURE_JOB_STAGES = ("read", "accepted", "quarantined", "duplicates", "unchanged", "written")
# Pushed as job FEATURE_JOB, one group per namespace and set of tables: teams, and jobs writing other
# tables, do not replace each other's numbers.
FEATURE_JOB = "mlkit-feature-job"
FEATURE_JOB_LABELS = ("namespace", "feature_set")

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

# The retraining trigger (workloads/monitoring/trigger.py) serves these on /metrics; prometheus_client adds _total.
TRIGGER_RECEIVED = "mlkit_trigger_notifications_received"
TRIGGER_REJECTED = "mlkit_trigger_notifications_rejected"  # + reason: unauthorized | too_large | not_json | invalid
TRIGGER_STARTED = "mlkit_trigger_retrains_started"  # + registered_model
TRIGGER_DUPLICATE = "mlkit_trigger_retrains_duplicate"  # + registered_model: already started for this episode
TRIGGER_FAILED = "mlkit_trigger_retrains_failed"  # + registered_model, reason: not_retrainable | unavailable
TRIGGER_IGNORED = "mlkit_trigger_alerts_ignored"  # + reason: not_retrain | resolved | other_model | other_namespace


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


def feature_job_grouping(namespace: str, reports) -> dict[str, str]:
    return dict(zip(FEATURE_JOB_LABELS, (namespace, ",".join(sorted(r.table for r in reports))), strict=True))


def publish(
    registry: CollectorRegistry,
    *,
    textfile: str | None = None,
    pushgateway: str | None = None,
    job: str = FEATURE_JOB,
    grouping_key: dict[str, str] | None = None,
) -> None:
    """Write the node-exporter textfile format and/or push to a Prometheus Pushgateway.

    A push replaces the group's metrics (PUT): a run that finds no data leaves no stale drift numbers behind."""
    if textfile:
        write_to_textfile(textfile, registry)
    if pushgateway:
        push_to_gateway(pushgateway, job=job, registry=registry, grouping_key=grouping_key or {})

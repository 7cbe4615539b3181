"""The platform's alert rules, as one pure function: thresholds in (``platform.monitoring.alerts``), rule groups out.

The Monitoring component deploys the result as one PrometheusRule; tests/infra/test_alerts.py writes the same
groups to a file and runs ``promtool test rules`` on them. Every metric named here is one the workloads export
(workloads/common/metrics.py, workloads/serving/metrics.py) or Seldon's executor serves; the tests check that.

Drift alerts keep the labels the drift job pushes (namespace, registered_model, registered_version: the
Pushgateway's ServiceMonitor honours them), so Alertmanager's OnNamespace matching hands each alert to the
AlertmanagerConfig of the team whose namespace it names. An alert labelled ``mlkit_action="retrain"`` is the
retraining trigger's.
"""

from __future__ import annotations

from infra.config import Alerts, duration_seconds

# Metric names (the tests check each against the workloads' code).
DRIFT_MAX_PSI = "mlkit_drift_max_psi"
DRIFT_FEATURE_PSI = "mlkit_drift_feature_psi"
DRIFT_PREDICTION_PSI = "mlkit_drift_prediction_psi"
DRIFT_NO_DATA = "mlkit_drift_no_data"
DRIFT_LAST_RUN = "mlkit_drift_last_run_timestamp_seconds"
MODEL_ROC_AUC = "mlkit_model_roc_auc"
PREDICT_SECONDS = "mlkit_predict_inner_seconds"  # a histogram
REQUEST_LOG_DROPPED = "mlkit_request_log_dropped_total"
FEATURE_JOB_ROWS = "mlkit_feature_job_rows"
# Seldon Core v1's executor (the service orchestrator in front of every model): a histogram labelled
# deployment_name, predictor_name, predictor_version, service, method and code (the HTTP status for REST).
# Named in SeldonIO/seldon-core executor/api/metric/constants.go (ServerRequestsMetricName) and server.go.
SELDON_EXECUTOR_REQUESTS = "seldon_api_executor_server_requests_seconds"

# What the retraining trigger's AlertmanagerConfig routes on.
RETRAIN_LABEL = ("mlkit_action", "retrain")
MODEL_LABELS = "namespace, registered_model, registered_version"
# Every alert names what it is about in its summary: the model version and its namespace.
MODEL = "{{ $labels.registered_model }} version {{ $labels.registered_version }} in {{ $labels.namespace }}"


def _number(value: float) -> str:
    return f"{value:g}"


def _alert(
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    keep_firing_for: str = "0s",
    **labels: str,
) -> dict:
    rule = {"alert": name, "expr": expr, "for": for_}
    if duration_seconds(keep_firing_for):
        rule["keep_firing_for"] = keep_firing_for
    return rule | {
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "description": description},
    }


def _retrain(enabled: bool) -> dict[str, str]:
    return dict([RETRAIN_LABEL]) if enabled else {}


def drift_rules(alerts: Alerts) -> list[dict]:
    feature, prediction, auc = alerts.feature_drift, alerts.prediction_drift, alerts.roc_auc
    stale, no_data = alerts.drift_job_stale, alerts.drift_no_data
    psi = _number(feature.psi)
    # The features above the threshold, looked up when the alert fires (the max alone does not say which).
    drifted = (
        "{{ range $i, $sample := query (printf "
        f'"max by (feature) ({DRIFT_FEATURE_PSI}{{namespace=%q,registered_model=%q,registered_version=%q}}) > {psi}" '
        '$labels.namespace $labels.registered_model $labels.registered_version) | sortByLabel "feature" }}'
        '{{ if $i }}, {{ end }}{{ $sample.Labels.feature }} ({{ printf "%.3f" $sample.Value }}){{ end }}'
    )
    return [
        _alert(
            "MlkitFeatureDrift",
            f"max by ({MODEL_LABELS}) ({DRIFT_MAX_PSI}) > {psi}",
            feature.for_,
            "warning",
            f"Feature drift on {MODEL}",
            f'The largest feature PSI is {{{{ printf "%.3f" $value }}}} (threshold {psi}, for {feature.for_}). '
            f"Features above the threshold: {drifted}",
            feature.keep_firing_for,
            **_retrain(feature.retrain),
        ),
        _alert(
            "MlkitPredictionDrift",
            f"max by ({MODEL_LABELS}) ({DRIFT_PREDICTION_PSI}) > {_number(prediction.psi)}",
            prediction.for_,
            "warning",
            f"Prediction drift on {MODEL}",
            f'The PSI of the served scores against the test set\'s is {{{{ printf "%.3f" $value }}}} '
            f"(threshold {_number(prediction.psi)}, for {prediction.for_}).",
            prediction.keep_firing_for,
            **_retrain(prediction.retrain),
        ),
        _alert(
            "MlkitModelRocAucLow",
            f"min by ({MODEL_LABELS}) ({MODEL_ROC_AUC}) < {_number(auc.floor)}",
            auc.for_,
            "critical",
            f"ROC AUC below {_number(auc.floor)} for {MODEL}",
            f'ROC AUC over the window\'s feedback labels is {{{{ printf "%.3f" $value }}}} '
            f"(floor {_number(auc.floor)}, for {auc.for_}).",
            auc.keep_firing_for,
            **_retrain(auc.retrain),
        ),
        _alert(
            "MlkitDriftJobStale",
            f"time() - max by ({MODEL_LABELS}) ({DRIFT_LAST_RUN}) > {_number(duration_seconds(stale.max_age))}",
            stale.for_,
            "warning",
            f"The drift job has not run recently for {MODEL}",
            f"Its last run was {{{{ $value | humanizeDuration }}}} ago (more than {stale.max_age}): the drift "
            "numbers on the dashboard are old. Check the drift-monitor CronJob in that namespace.",
        ),
        _alert(
            "MlkitDriftNoData",
            f"max by ({MODEL_LABELS}) ({DRIFT_NO_DATA}) == 1",
            no_data.for_,
            "info",
            f"No served requests to compare for {MODEL}",
            f"The drift job's window has held no usable request-log rows for {no_data.for_}: drift is unknown, not "
            "zero. Check the traffic and the request log (mlkit_drift_skipped_records says why records were skipped).",
        ),
    ]


def serving_rules(alerts: Alerts) -> list[dict]:
    latency, errors, drops, window = (
        alerts.latency_p99,
        alerts.server_errors,
        alerts.request_log_drops,
        alerts.rate_window,
    )
    executor = f"{SELDON_EXECUTOR_REQUESTS}_count"
    by_deployment = "namespace, deployment_name"
    return [
        _alert(
            "MlkitServingLatencyP99High",
            f"histogram_quantile(0.99, sum by ({MODEL_LABELS}, le) (rate({PREDICT_SECONDS}_bucket[{window}]))) "
            f"> {_number(latency.seconds)}",
            latency.for_,
            "warning",
            f"p99 latency of {MODEL} is high",
            f"The p99 of validation, transformation and model time is {{{{ $value | humanizeDuration }}}} over "
            f"{window} (threshold {_number(latency.seconds)}s, for {latency.for_}).",
        ),
        _alert(
            "MlkitServingServerErrors",
            f'sum by ({by_deployment}) (rate({executor}{{code=~"5.."}}[{window}])) '
            f"/ sum by ({by_deployment}) (rate({executor}[{window}])) > {_number(errors.ratio)}",
            errors.for_,
            "critical",
            "5xx responses from SeldonDeployment {{ $labels.deployment_name }} in {{ $labels.namespace }}",
            f"{{{{ $value | humanizePercentage }}}} of its requests were answered 5xx over {window} "
            f"(threshold {_number(errors.ratio * 100)}%, for {errors.for_}).",
        ),
        _alert(
            "MlkitRequestLogDrops",
            f"sum by ({MODEL_LABELS}) (increase({REQUEST_LOG_DROPPED}[{drops.window}])) > {drops.count}",
            drops.for_,
            "warning",
            f"Request-log records dropped by {MODEL}",
            f'{{{{ printf "%.0f" $value }}}} records were dropped in {drops.window} (queue full; threshold '
            f"{drops.count}): the drift job sees fewer requests than were served.",
        ),
    ]


def feature_job_rules(alerts: Alerts) -> list[dict]:
    quarantine = alerts.quarantine

    def rows(stage: str) -> str:
        return f'max by (namespace, table) ({FEATURE_JOB_ROWS}{{stage="{stage}"}})'

    return [
        _alert(
            "MlkitFeatureJobQuarantine",
            f"{rows('quarantined')} / {rows('read')} > {_number(quarantine.ratio)}",
            quarantine.for_,
            "warning",
            "The feature job quarantined {{ $value | humanizePercentage }} of the rows of table {{ $labels.table }} "
            "in {{ $labels.namespace }}",
            f"Its last batch quarantined more than {_number(quarantine.ratio * 100)}% of the rows it read "
            f"(for {quarantine.for_}); the table's quarantine holds them with their reasons.",
        ),
    ]


def rule_groups(alerts: Alerts) -> dict[str, list[dict]]:
    """The ``spec`` of the platform's PrometheusRule, which is also a Prometheus rule file."""
    return {
        "groups": [
            {"name": "mlkit-drift", "rules": drift_rules(alerts)},
            {"name": "mlkit-serving", "rules": serving_rules(alerts)},
            {"name": "mlkit-feature-job", "rules": feature_job_rules(alerts)},
        ]
    }

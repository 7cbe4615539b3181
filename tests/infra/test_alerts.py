"""The platform's alert rules, run by the real promtool (Debian's `prometheus` package): the rules the Monitoring
component deploys (infra/components/alerts.py) are written to a file, checked, and unit-tested with
`promtool test rules`, a case where each alert fires and one where it does not, with the exact labels and
expanded annotations expected. promtool exits 1 on any wrong expectation, and so does the test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.components.alerts import rule_groups
from infra.config import Alerts

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
MODEL = {"namespace": "churn", "registered_model": "churn-classifier", "registered_version": "3"}
# What the Pushgateway adds to each pushed series, and the ServiceMonitor's honorLabels keeps (the rules drop them).
PUSHED = {"job": "mlkit-drift", "instance": "", "pod": "pushgateway-7d9f", "service": "pushgateway"}
ABOUT = "churn-classifier version 3 in churn"


def series(metric: str, values: str, **labels: str) -> dict:
    """One input series in promtool's notation, e.g. values '0.35x60' (60 more samples, one per interval)."""
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{body}}}", "values": values}


def drift(metric: str, values: str, **labels: str) -> dict:
    return series(metric, values, **MODEL, **PUSHED, **labels)


def fires(eval_time: str, alert: str, labels: dict, summary: str, description: str) -> dict:
    return {
        "eval_time": eval_time,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": labels, "exp_annotations": {"summary": summary, "description": description}}],
    }


def silent(eval_time: str, alert: str) -> dict:
    return {"eval_time": eval_time, "alertname": alert, "exp_alerts": []}


def case(input_series: list[dict], *expectations: dict) -> dict:
    return {"interval": "1m", "input_series": input_series, "alert_rule_test": list(expectations)}


def promtool(tmp_path: Path, tests: list[dict], alerts: Alerts | None = None) -> subprocess.CompletedProcess:
    """Write the rules the platform deploys for ``alerts`` and these tests, check the rules, run the tests."""
    rules = tmp_path / "mlkit-alerts.yaml"
    rules.write_text(yaml.safe_dump(rule_groups(alerts or Alerts()), sort_keys=False))
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    spec = tmp_path / "mlkit-alerts.test.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}))
    return subprocess.run(
        [PROMTOOL, "test", "rules", spec.name], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )


def assert_passes(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# --- one entry per alert: the cases where it fires and where it does not --------------------------------

FEATURE_DRIFT_SERIES = [
    drift("mlkit_drift_max_psi", "0.35x90"),
    drift("mlkit_drift_feature_psi", "0.35x90", feature="tenure"),
    drift("mlkit_drift_feature_psi", "0.25x90", feature="MonthlyCharges"),
    drift("mlkit_drift_feature_psi", "0.05x90", feature="Contract"),
]


def feature_drift_fires(eval_time: str, psi: str = "0.2", for_: str = "30m", listed: str | None = None) -> dict:
    listed = listed or "MonthlyCharges (0.250), tenure (0.350)"
    return fires(
        eval_time,
        "MlkitFeatureDrift",
        {**MODEL, "severity": "warning", "mlkit_action": "retrain"},
        f"Feature drift on {ABOUT}",
        f"The largest feature PSI is 0.350 (threshold {psi}, for {for_}). Features above the threshold: {listed}",
    )


CASES: dict[str, list[dict]] = {
    "MlkitFeatureDrift": [
        # Above the threshold for longer than `for`: fires, naming the features above it.
        case(FEATURE_DRIFT_SERIES, silent("20m", "MlkitFeatureDrift"), feature_drift_fires("40m")),
        # Below the threshold, however long.
        case(
            [drift("mlkit_drift_max_psi", "0.15x120"), drift("mlkit_drift_feature_psi", "0.15x120", feature="tenure")],
            silent("2h", "MlkitFeatureDrift"),
        ),
        # A missed scrape (a stale marker) does not resolve it: keep_firing_for holds it, so the retraining
        # trigger sees one episode, not a second one starting a second run. It resolves once the next push is low.
        case(
            [
                drift("mlkit_drift_max_psi", "0.35x40 stale 0.35x10 0.1x30"),
                *FEATURE_DRIFT_SERIES[1:],
            ],
            feature_drift_fires("41m"),
            silent("70m", "MlkitFeatureDrift"),
        ),
        # Two pods' copies of one pushed group (a Pushgateway replaced mid-scrape) are one alert.
        case(
            [*FEATURE_DRIFT_SERIES, series("mlkit_drift_max_psi", "0.35x90", **MODEL, **{**PUSHED, "pod": "other"})],
            feature_drift_fires("40m"),
        ),
    ],
    "MlkitPredictionDrift": [
        case(
            [drift("mlkit_drift_prediction_psi", "0.31x60")],
            silent("10m", "MlkitPredictionDrift"),
            fires(
                "45m",
                "MlkitPredictionDrift",
                {**MODEL, "severity": "warning"},  # no retrain label by default
                f"Prediction drift on {ABOUT}",
                "The PSI of the served scores against the test set's is 0.310 (threshold 0.2, for 30m).",
            ),
        ),
        case([drift("mlkit_drift_prediction_psi", "0.12x60")], silent("45m", "MlkitPredictionDrift")),
    ],
    "MlkitModelRocAucLow": [
        case(
            [drift("mlkit_model_roc_auc", "0.62x60")],
            fires(
                "45m",
                "MlkitModelRocAucLow",
                {**MODEL, "severity": "critical", "mlkit_action": "retrain"},
                f"ROC AUC below 0.7 for {ABOUT}",
                "ROC AUC over the window's feedback labels is 0.620 (floor 0.7, for 30m).",
            ),
        ),
        case([drift("mlkit_model_roc_auc", "0.86x60")], silent("45m", "MlkitModelRocAucLow")),
    ],
    "MlkitDriftJobStale": [
        # The last run at t=0, never again: past 3h, and 10m of that, it fires.
        case(
            [drift("mlkit_drift_last_run_timestamp_seconds", "0x300")],
            silent("3h5m", "MlkitDriftJobStale"),
            fires(
                "4h",
                "MlkitDriftJobStale",
                {**MODEL, "severity": "warning"},
                f"The drift job has not run recently for {ABOUT}",
                "Its last run was 4h 0m 0s ago (more than 3h): the drift numbers on the dashboard are old. "
                "Check the drift-monitor CronJob in that namespace.",
            ),
        ),
        # A run every minute (the timestamp follows time()).
        case([drift("mlkit_drift_last_run_timestamp_seconds", "0+60x300")], silent("4h", "MlkitDriftJobStale")),
    ],
    "MlkitDriftNoData": [
        case(
            [drift("mlkit_drift_no_data", "1x180")],
            silent("1h", "MlkitDriftNoData"),
            fires(
                "2h30m",
                "MlkitDriftNoData",
                {**MODEL, "severity": "info"},
                f"No served requests to compare for {ABOUT}",
                "The drift job's window has held no usable request-log rows for 2h: drift is unknown, not zero. "
                "Check the traffic and the request log (mlkit_drift_skipped_records says why records were skipped).",
            ),
        ),
        case([drift("mlkit_drift_no_data", "0x180")], silent("2h30m", "MlkitDriftNoData")),
    ],
    "MlkitServingLatencyP99High": [
        # 10 requests a minute, all between 0.5 s and 1 s: p99 is ~0.995 s.
        case(
            [
                series("mlkit_predict_inner_seconds_bucket", "0x30", **MODEL, le="0.5"),
                series("mlkit_predict_inner_seconds_bucket", "0+10x30", **MODEL, le="1.0"),
                series("mlkit_predict_inner_seconds_bucket", "0+10x30", **MODEL, le="+Inf"),
            ],
            fires(
                "20m",
                "MlkitServingLatencyP99High",
                {**MODEL, "severity": "warning"},
                f"p99 latency of {ABOUT} is high",
                "The p99 of validation, transformation and model time is 995ms over 5m (threshold 0.5s, for 10m).",
            ),
        ),
        # All under 0.1 s.
        case(
            [
                series("mlkit_predict_inner_seconds_bucket", "0+10x30", **MODEL, le="0.1"),
                series("mlkit_predict_inner_seconds_bucket", "0+10x30", **MODEL, le="0.5"),
                series("mlkit_predict_inner_seconds_bucket", "0+10x30", **MODEL, le="+Inf"),
            ],
            silent("20m", "MlkitServingLatencyP99High"),
        ),
    ],
    "MlkitServingServerErrors": [
        # 100 requests a minute, 10 of them 500s: 10 % > 5 %.
        case(
            [
                series(
                    "seldon_api_executor_server_requests_seconds_count",
                    "0+90x30",
                    namespace="churn",
                    deployment_name="churn-model",
                    code="200",
                ),
                series(
                    "seldon_api_executor_server_requests_seconds_count",
                    "0+10x30",
                    namespace="churn",
                    deployment_name="churn-model",
                    code="500",
                ),
            ],
            fires(
                "20m",
                "MlkitServingServerErrors",
                {"namespace": "churn", "deployment_name": "churn-model", "severity": "critical"},
                "5xx responses from SeldonDeployment churn-model in churn",
                "10% of its requests were answered 5xx over 5m (threshold 5%, for 5m).",
            ),
        ),
        # 1 in 100 fails, and 400s (the caller's fault) do not count.
        case(
            [
                series(
                    "seldon_api_executor_server_requests_seconds_count",
                    "0+80x30",
                    namespace="churn",
                    deployment_name="churn-model",
                    code="200",
                ),
                series(
                    "seldon_api_executor_server_requests_seconds_count",
                    "0+19x30",
                    namespace="churn",
                    deployment_name="churn-model",
                    code="400",
                ),
                series(
                    "seldon_api_executor_server_requests_seconds_count",
                    "0+1x30",
                    namespace="churn",
                    deployment_name="churn-model",
                    code="503",
                ),
            ],
            silent("20m", "MlkitServingServerErrors"),
        ),
    ],
    "MlkitRequestLogDrops": [
        # 2 records dropped a minute: 30 in the 15m window.
        case(
            [series("mlkit_request_log_dropped_total", "0+2x30", **MODEL)],
            fires(
                "20m",
                "MlkitRequestLogDrops",
                {**MODEL, "severity": "warning"},
                f"Request-log records dropped by {ABOUT}",
                "30 records were dropped in 15m (queue full; threshold 0): "
                "the drift job sees fewer requests than were served.",
            ),
        ),
        # Drops long ago, none in the window.
        case(
            [series("mlkit_request_log_dropped_total", "0 5 7 7x40", **MODEL)],
            silent("30m", "MlkitRequestLogDrops"),
        ),
    ],
    "MlkitFeatureJobQuarantine": [
        case(
            [
                series("mlkit_feature_job_rows", "1000x30", namespace="churn", table="customers", stage="read"),
                series("mlkit_feature_job_rows", "120x30", namespace="churn", table="customers", stage="quarantined"),
            ],
            fires(
                "10m",
                "MlkitFeatureJobQuarantine",
                {"namespace": "churn", "table": "customers", "severity": "warning"},
                "The feature job quarantined 12% of the rows of table customers in churn",
                "Its last batch quarantined more than 5% of the rows it read (for 5m); "
                "the table's quarantine holds them with their reasons.",
            ),
        ),
        case(
            [
                series("mlkit_feature_job_rows", "1000x30", namespace="churn", table="customers", stage="read"),
                series("mlkit_feature_job_rows", "11x30", namespace="churn", table="customers", stage="quarantined"),
            ],
            silent("10m", "MlkitFeatureJobQuarantine"),
        ),
    ],
}


def test_every_alert_the_platform_deploys_has_firing_and_silent_cases():
    deployed = {r["alert"] for g in rule_groups(Alerts())["groups"] for r in g["rules"]}
    assert set(CASES) == deployed
    for alert, cases in CASES.items():
        expectations = [e for c in cases for e in c["alert_rule_test"]]
        assert all(e["alertname"] == alert for e in expectations), alert
        assert any(e["exp_alerts"] for e in expectations), f"{alert}: no case where it fires"
        assert any(not e["exp_alerts"] for e in expectations), f"{alert}: no case where it stays silent"


@pytest.mark.parametrize("alert", sorted(CASES))
def test_promtool_passes_each_alerts_cases(alert, tmp_path):
    assert_passes(promtool(tmp_path, CASES[alert]))


def test_a_wrong_expectation_fails(tmp_path):
    """The harness can fail: PSI 0.15 stays under the threshold, so expecting an alert is wrong."""
    wrong = case([drift("mlkit_drift_max_psi", "0.15x60")], feature_drift_fires("45m"))
    result = promtool(tmp_path, [wrong])
    assert result.returncode == 1, result.stdout
    assert "FAILED" in result.stdout + result.stderr
    # So is a wrong annotation on an alert that does fire.
    typo = feature_drift_fires("40m", listed="tenure (0.350)")
    assert promtool(tmp_path, [case(FEATURE_DRIFT_SERIES, typo)]).returncode == 1


def test_the_configured_threshold_and_duration_decide_when_it_fires(tmp_path):
    """The same PSI of 0.35: silent under a threshold of 0.5, firing under 0.3, and sooner with a shorter `for`."""
    stricter = Alerts.model_validate({"featureDrift": {"psi": 0.5}})
    assert_passes(promtool(tmp_path, [case(FEATURE_DRIFT_SERIES, silent("60m", "MlkitFeatureDrift"))], stricter))
    quicker = Alerts.model_validate({"featureDrift": {"psi": 0.3, "for": "10m"}})
    assert_passes(
        promtool(
            tmp_path,
            [
                case(
                    FEATURE_DRIFT_SERIES,
                    silent("5m", "MlkitFeatureDrift"),
                    feature_drift_fires("15m", psi="0.3", for_="10m", listed="tenure (0.350)"),
                )
            ],
            quicker,
        )
    )
    # With the defaults (0.2, 30m) the same series is still pending at 15m.
    assert_passes(promtool(tmp_path, [case(FEATURE_DRIFT_SERIES, silent("15m", "MlkitFeatureDrift"))]))


def test_without_keep_firing_for_a_missed_scrape_resolves_the_drift_alert(tmp_path):
    # The case above fails without the fix: the same stale marker leaves nothing firing at 41m.
    off = Alerts.model_validate({"featureDrift": {"keepFiringFor": "0s"}})
    series = [drift("mlkit_drift_max_psi", "0.35x40 stale 0.35x10"), *FEATURE_DRIFT_SERIES[1:]]
    assert_passes(promtool(tmp_path, [case(series, silent("41m", "MlkitFeatureDrift"))], off))
    assert "keep_firing_for" not in rule_groups(off)["groups"][0]["rules"][0]


def test_retraining_can_be_switched_per_alert(tmp_path):
    """`retrain: false` drops the label the trigger routes on; the alert itself still fires."""
    no_retrain = Alerts.model_validate({"featureDrift": {"retrain": False}})
    expected = feature_drift_fires("40m")
    del expected["exp_alerts"][0]["exp_labels"]["mlkit_action"]
    assert_passes(promtool(tmp_path, [case(FEATURE_DRIFT_SERIES, expected)], no_retrain))

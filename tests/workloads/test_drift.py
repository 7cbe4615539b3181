"""Drift statistics, the request-log window and the job's metrics, on synthetic data with known answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from scipy import stats
from sklearn.metrics import roc_auc_score

from workloads.common import metrics
from workloads.common.specs import parse_spec
from workloads.common.storage import ObjectStore
from workloads.monitoring.drift import OTHER, DriftReport, Reference, compare
from workloads.monitoring.job import MonitoringError, drift_registry, parse_window
from workloads.monitoring.window import read_window

SPEC = parse_spec(
    {
        "name": "customers",
        "entity": {"key": "customerID"},
        "columns": [
            {"name": "tenure", "type": "int", "transform": "standard"},
            {"name": "MonthlyCharges", "type": "double", "transform": "standard"},
            {"name": "Contract", "type": "string", "transform": "onehot"},
        ],
    },
    "test spec",
)
FEATURES = ["tenure", "MonthlyCharges", "Contract"]
CONTRACTS = ["Month-to-month", "One year", "Two year"]


def frame(n: int, rng, *, shift: float = 0.0, mix=(0.55, 0.25, 0.2), missing: float = 0.0) -> pd.DataFrame:
    charges = rng.normal(65 + shift, 30, n)
    charges[rng.random(n) < missing] = np.nan
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n),
            "MonthlyCharges": charges,
            "Contract": rng.choice(CONTRACTS, n, p=mix),
        }
    )


@pytest.fixture(scope="module")
def reference() -> Reference:
    rng = np.random.default_rng(1)
    return Reference.of(
        frame(20_000, rng), [SPEC], rng.beta(2, 5, 5_000), model="churn", version="3", instants={"customers": "1"}
    )


def by_feature(report: DriftReport) -> dict:
    return {f.feature: f for f in report.features}


def test_the_same_population_shows_no_drift(reference):
    rng = np.random.default_rng(2)
    report = compare(reference, frame(5_000, rng), rng.beta(2, 5, 5_000))
    assert report.max_psi < 0.02 and report.prediction_psi < 0.02
    assert all(f.pvalue > 0.001 for f in report.features)
    assert report.drifted(0.2) == []


def test_a_shifted_number_and_a_changed_category_mix_are_drift(reference):
    rng = np.random.default_rng(3)
    report = compare(reference, frame(5_000, rng, shift=40, mix=(0.1, 0.3, 0.6)), rng.beta(5, 2, 5_000))
    features = by_feature(report)
    assert features["MonthlyCharges"].psi > 0.5 and features["MonthlyCharges"].pvalue < 1e-10
    assert features["MonthlyCharges"].wasserstein == pytest.approx(40 / 30, rel=0.15)
    assert features["Contract"].psi > 0.5 and features["Contract"].pvalue < 1e-10
    assert features["tenure"].psi < 0.05
    assert report.drifted(0.2) == ["MonthlyCharges", "Contract"]
    assert report.prediction_psi > 0.5


def test_psi_is_the_textbook_sum_over_the_reference_bins(reference):
    served = pd.DataFrame(
        {"tenure": [1, 2, 3, 70], "MonthlyCharges": [10.0, 20.0, 200.0, 65.0], "Contract": ["One year"] * 4}
    )
    ref = reference.features["MonthlyCharges"]
    counts = np.bincount(np.searchsorted(ref.edges, served["MonthlyCharges"], side="right"), minlength=len(ref.shares))
    actual, expected = np.maximum(counts / 4, 1e-4), np.maximum(np.asarray(ref.shares), 1e-4)
    report = compare(reference, served, np.full(4, 0.3))
    assert by_feature(report)["MonthlyCharges"].psi == pytest.approx(
        np.sum((actual - expected) * np.log(actual / expected))
    )


def test_ks_against_the_reference_sample_matches_scipy(reference):
    rng = np.random.default_rng(4)
    served = frame(3_000, rng, shift=5)
    report = compare(reference, served, rng.beta(2, 5, 3_000))
    expected = stats.ks_2samp(served["MonthlyCharges"], reference.features["MonthlyCharges"].sample, method="asymp")
    assert by_feature(report)["MonthlyCharges"].pvalue == pytest.approx(expected.pvalue)


def test_unseen_categories_are_pooled_and_count_as_drift(reference):
    served = pd.DataFrame({"tenure": [5] * 400, "MonthlyCharges": [60.0] * 400, "Contract": ["Three year"] * 400})
    contract = by_feature(compare(reference, served, np.full(400, 0.3)))["Contract"]
    assert OTHER not in reference.features["Contract"].shares
    assert contract.psi > 1 and contract.pvalue < 1e-10


def test_the_category_test_is_two_sample_chi_squared_with_unseen_values_pooled(reference):
    rng = np.random.default_rng(7)
    served = frame(3_000, rng)
    served.loc[:2, "Contract"] = "Three year"  # three requests with a category training never saw
    contract = by_feature(compare(reference, served, rng.beta(2, 5, 3_000)))["Contract"]
    shares = reference.features["Contract"].shares
    reference_counts = [shares[c] * reference.rows for c in CONTRACTS] + [0]
    window_counts = [(served["Contract"] == c).sum() for c in CONTRACTS] + [3]
    expected = stats.chi2_contingency([reference_counts, window_counts], correction=False).pvalue
    assert contract.pvalue == pytest.approx(expected)
    assert contract.psi < 0.05  # a handful of strays is not a drifted mix


def test_a_category_only_one_sample_holds_is_dropped_and_one_category_left_is_no_evidence():
    from workloads.monitoring.drift import contingency_pvalue

    assert contingency_pvalue(np.array([100.0, 0.0]), np.array([40, 0])) == 1.0
    with_empty = contingency_pvalue(np.array([60.0, 40.0, 0.0]), np.array([30, 20, 0]))
    assert with_empty == pytest.approx(stats.chi2_contingency([[60, 40], [30, 20]], correction=False).pvalue)


def test_missing_values_are_a_missing_rate_change_not_a_rejection(reference):
    rng = np.random.default_rng(5)
    report = compare(reference, frame(4_000, rng, missing=0.3), rng.beta(2, 5, 4_000))
    charges = by_feature(report)["MonthlyCharges"]
    assert charges.missing_rate_change == pytest.approx(0.3, abs=0.03)
    assert charges.rows == pytest.approx(2_800, abs=150)


def test_roc_auc_over_feedback_matches_scikit_learn_and_waits_for_enough_labels(reference):
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 500).astype(float)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    report = compare(reference, frame(10, rng), np.full(10, 0.2), feedback=(labels, scores))
    assert report.roc_auc == pytest.approx(roc_auc_score(labels, scores))
    few = compare(reference, frame(10, rng), np.full(10, 0.2), feedback=(labels[:10], scores[:10]))
    assert few.roc_auc is None and few.feedback_rows == 10


def test_an_empty_window_is_no_data_not_zero_drift(reference):
    report = compare(reference, pd.DataFrame(columns=FEATURES), np.array([]), skipped={"malformed": 3})
    assert report.no_data and report.max_psi is None and report.features == []
    text = generate_latest(drift_registry(report, 0.2)).decode()
    assert f"{metrics.DRIFT_NO_DATA}{{" in text and 'reason="malformed"' in text
    assert metrics.DRIFT_MAX_PSI not in text and metrics.DRIFT_FEATURE_PSI not in text


def test_the_registry_labels_every_series_with_the_group(reference, monkeypatch):
    monkeypatch.setenv("POD_NAMESPACE", "team-churn")
    rng = np.random.default_rng(7)
    report = compare(reference, frame(1_000, rng, shift=40), rng.beta(2, 5, 1_000))
    text = generate_latest(drift_registry(report, 0.2)).decode()
    line = next(
        row for row in text.splitlines() if row.startswith(f"{metrics.DRIFT_FEATURE_PSI}{{") and "MonthlyCharges" in row
    )
    assert 'namespace="team-churn"' in line and 'registered_model="churn"' in line and 'registered_version="3"' in line
    flagged = {
        row.split('feature="')[1].split('"')[0]: row.rsplit(" ", 1)[1]
        for row in text.splitlines()
        if row.startswith(f"{metrics.DRIFT_FEATURE_DRIFTED}{{")
    }
    assert flagged == {"tenure": "0.0", "MonthlyCharges": "1.0", "Contract": "0.0"}


def test_the_reference_survives_its_json(reference):
    again = Reference.model_validate_json(reference.model_dump_json())
    assert again == reference


@pytest.mark.parametrize("text", ["0m", "1 hour", "-5m", "h", "10w"])
def test_a_bad_window_names_the_option(text):
    with pytest.raises(MonitoringError, match="--window"):
        parse_window(text)


# --- the request-log window ----------------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def write_log(root, name: str, lines: list) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


def prediction(minutes_ago: float, **overrides) -> dict:
    record = {
        "time": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        "kind": "prediction",
        "model": "churn",
        "version": "3",
        "inputs": {"tenure": 5, "MonthlyCharges": 70.5, "Contract": "One year", "customerID": "c1"},
        "probability": 0.4,
    }
    return {**record, **overrides}


def test_the_window_counts_every_bad_record_under_its_reason(tmp_path):
    inputs_without_contract = {"tenure": 5, "MonthlyCharges": 70.5}
    write_log(
        tmp_path,
        "2026-03-02/115500-aaaa.jsonl",
        [
            prediction(5),
            prediction(4, inputs={**prediction(0)["inputs"], "MonthlyCharges": None}),  # a missing value: kept
            "{not json",
            json.dumps([1, 2]),
            prediction(3, model="other"),
            prediction(3, version="2"),
            prediction(3, inputs=inputs_without_contract),
            prediction(3, probability="high"),
            prediction(90),
            {
                "time": (NOW - timedelta(minutes=2)).isoformat(),
                "kind": "feedback",
                "model": "churn",
                "version": "3",
                "inputs": [],
                "truth": [[1], [0]],
                "probability": [0.9, 0.2],
            },
            {
                "time": (NOW - timedelta(minutes=2)).isoformat(),
                "kind": "feedback",
                "model": "churn",
                "version": "3",
                "inputs": [],
                "truth": [1],
                "probability": None,
            },
        ],
    )
    window = read_window(ObjectStore().at(str(tmp_path)), "churn", "3", FEATURES, NOW - timedelta(hours=1), NOW)
    assert len(window.inputs) == 2 and window.scores.tolist() == [0.4, 0.4]
    assert window.inputs["MonthlyCharges"].isna().tolist() == [False, True]
    assert window.labels.tolist() == [1.0, 0.0] and window.label_scores.tolist() == [0.9, 0.2]
    assert window.skipped == {
        "malformed": 4,
        "other_model": 1,
        "other_version": 1,
        "missing_feature": 1,
        "outside_window": 1,
    }


def test_objects_flushed_before_the_window_are_not_read(tmp_path):
    write_log(tmp_path, "2026-03-01/235900-old.jsonl", ["{broken"])  # the day before: never opened
    write_log(tmp_path, "2026-03-02/100000-old.jsonl", ["{broken"])  # flushed before 11:00
    write_log(tmp_path, "2026-03-02/113000-new.jsonl", [prediction(30)])
    window = read_window(ObjectStore().at(str(tmp_path)), "churn", "3", FEATURES, NOW - timedelta(hours=1), NOW)
    assert window.objects == 1 and len(window.inputs) == 1 and window.skipped == {}


def test_an_absent_log_is_an_empty_window(tmp_path):
    window = read_window(
        ObjectStore().at(str(tmp_path / "nothing")), "churn", "3", FEATURES, NOW - timedelta(hours=1), NOW
    )
    assert window.objects == 0 and window.inputs.empty

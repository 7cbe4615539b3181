"""What the batch jobs push, against a real Pushgateway (Debian's prometheus-pushgateway) on loopback: each group
is one namespace's (and one feature set's, or one model version's), and a push replaces only its own group."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mlkit_dev.observability import LocalPushgateway
from workloads.common import metrics
from workloads.features.job import BatchReport
from workloads.monitoring.drift import DriftReport, FeatureDrift
from workloads.monitoring.job import drift_registry, grouping


@pytest.fixture
def pushgateway():
    with LocalPushgateway() as gateway:
        yield gateway.url


def samples(url: str, name: str) -> dict[tuple, float]:
    """``name``'s samples on the Pushgateway, keyed by their labels (sorted pairs), without push bookkeeping."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        tuple(sorted((k, v) for k, v in sample.labels.items() if k != "instance")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def batch(table: str, read: int, quarantined: int) -> BatchReport:
    return BatchReport(
        table, "s3://raw/batch.csv", "b1", read=read, accepted=read - quarantined, quarantined=quarantined
    )


def push_feature_job(url: str, namespace: str, reports: list[BatchReport]) -> None:
    grouping = metrics.feature_job_grouping(namespace, reports)
    metrics.publish(metrics.feature_job_registry(reports), pushgateway=url, grouping_key=grouping)


def quarantined(url: str) -> dict[tuple[str, str, str], float]:
    found = samples(url, metrics.FEATURE_JOB_ROWS)
    return {
        (labels["namespace"], labels["feature_set"], labels["table"]): value
        for key, value in found.items()
        if (labels := dict(key))["stage"] == "quarantined"
    }


def test_two_teams_feature_jobs_keep_their_own_groups_with_their_namespace(pushgateway):
    push_feature_job(pushgateway, "team-a", [batch("customers", 100, 7)])
    push_feature_job(pushgateway, "team-b", [batch("customers", 50, 1)])
    push_feature_job(pushgateway, "team-a", [batch("orders", 10, 0), batch("payments", 10, 2)])
    assert quarantined(pushgateway) == {
        ("team-a", "customers", "customers"): 7,
        ("team-b", "customers", "customers"): 1,
        ("team-a", "orders,payments", "orders"): 0,
        ("team-a", "orders,payments", "payments"): 2,
    }


def test_the_next_batch_replaces_only_its_own_group(pushgateway):
    push_feature_job(pushgateway, "team-a", [batch("customers", 100, 7)])
    push_feature_job(pushgateway, "team-b", [batch("customers", 50, 1)])
    push_feature_job(pushgateway, "team-a", [batch("customers", 120, 0)])
    assert quarantined(pushgateway) == {
        ("team-a", "customers", "customers"): 0,
        ("team-b", "customers", "customers"): 1,
    }


def drift_report(version: str, rows: int, psi: float | None) -> DriftReport:
    features = [] if psi is None else [FeatureDrift("tenure", "numeric", psi, 0.5, "ks", 0.1, 0.0, rows)]
    return DriftReport("churn-classifier", version, rows, features, prediction_psi=psi)


def test_a_drift_run_with_no_data_leaves_no_stale_drift_numbers_and_other_versions_alone(pushgateway, monkeypatch):
    monkeypatch.setenv("POD_NAMESPACE", "team-a")

    def push(report: DriftReport) -> None:
        registry = drift_registry(report, 0.2)
        metrics.publish(registry, pushgateway=pushgateway, job=metrics.DRIFT_JOB, grouping_key=grouping(report))

    push(drift_report("3", 500, 0.4))
    push(drift_report("4", 500, 0.05))
    push(drift_report("3", 0, None))  # version 3's next window held nothing
    psi = {dict(k)["registered_version"]: v for k, v in samples(pushgateway, metrics.DRIFT_MAX_PSI).items()}
    no_data = {dict(k)["registered_version"]: v for k, v in samples(pushgateway, metrics.DRIFT_NO_DATA).items()}
    assert psi == {"4": 0.05}
    assert no_data == {"3": 1, "4": 0}
    assert all(dict(k)["namespace"] == "team-a" for k in samples(pushgateway, metrics.DRIFT_NO_DATA))

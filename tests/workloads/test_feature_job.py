"""The feature job with real Spark and Hudi, on the local filesystem, an S3 endpoint (moto) and GCS
(fake-gcs-server, through the GCS connector; hudi-rs reads it too).

One scenario per store: the Telco extract as January's batch, then February's snapshot (some
customers changed, a few new, every kind of broken row), then February again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlkit_dev.demo_data import TELCO, SecondBatch, second_batch
from tests.workloads.conftest import BUCKET
from workloads.common.featurestore import FeatureStore, TableNotFound
from workloads.common.specs import load_spec, parse_spec
from workloads.common.validation import validate_frame
from workloads.features.job import BatchReport, JobError, run_batch

SPECS = Path(__file__).resolve().parents[2] / "workloads" / "features" / "specs"
FEATURES, LABELS = load_spec(SPECS / "customer_features.yaml"), load_spec(SPECS / "churn_labels.yaml")
JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


@dataclass
class Scenario:
    store: FeatureStore
    first: dict[str, BatchReport]
    second: dict[str, BatchReport]
    rerun: dict[str, BatchReport]
    batch: SecondBatch
    jan: str  # the customer_features instant of January's batch
    history_before_rerun: int
    quarantine_before_rerun: int


def reports(items: list[BatchReport]) -> dict[str, BatchReport]:
    return {r.table: r for r in items}


@pytest.fixture(scope="module", params=["local", "s3", "gs"])
def scenario(request, spark, s3_store, gcs_store, tmp_path_factory) -> Scenario:
    if request.param == "local":
        store = FeatureStore(str(tmp_path_factory.mktemp("features")), s3_store)
    elif request.param == "s3":
        store = FeatureStore(f"s3://{BUCKET}/features/{uuid.uuid4().hex[:8]}", s3_store)
    else:
        store = FeatureStore(f"gs://{BUCKET}/features/{uuid.uuid4().hex[:8]}", gcs_store)
    batch = second_batch(tmp_path_factory.mktemp("batches") / "2026-02.csv")
    first = reports(run_batch(spark, store, [FEATURES, LABELS], str(TELCO), event_time=JAN))
    jan = store.resolve("customer_features").instant
    second = reports(run_batch(spark, store, [FEATURES, LABELS], str(batch.path), event_time=FEB))
    history, quarantined = len(store.read("customer_features")), len(store.quarantine("customer_features"))
    rerun = reports(run_batch(spark, store, [FEATURES, LABELS], str(batch.path), event_time=FEB))
    return Scenario(store, first, second, rerun, batch, jan, history, quarantined)


def test_first_batch_takes_every_telco_row(scenario):
    report = scenario.first["customer_features"]
    assert (report.read, report.accepted, report.quarantined, report.written) == (7043, 7043, 0, 7043)
    assert len(scenario.store.read("customer_features", as_of=scenario.jan)) == 7043


def test_blank_total_charges_become_zero_for_the_eleven_unbilled_customers(scenario):
    jan = scenario.store.latest("customer_features", as_of=scenario.jan)
    zero = jan[jan["TotalCharges"] == 0.0]
    assert len(zero) == 11
    assert set(zero["tenure"]) == {0}


def test_second_batch_counts_add_up(scenario):
    report, batch = scenario.second["customer_features"], scenario.batch
    assert report.read == batch.rows
    assert report.read == report.quarantined + report.duplicates + report.unchanged + report.written
    assert report.quarantined == len(batch.bad)
    assert report.duplicates == 1
    assert report.written == len(batch.changed) + len(batch.new)


def test_time_travel_returns_the_values_before_the_upsert(scenario):
    telco = pd.read_csv(TELCO, dtype=str).set_index("customerID")
    changed = sorted(scenario.batch.changed)
    before = scenario.store.latest("customer_features", as_of=scenario.jan).set_index("customerID").loc[changed]
    now = scenario.store.latest("customer_features").set_index("customerID").loc[changed]
    assert (before["tenure"] == telco.loc[changed, "tenure"].astype(int)).all()
    assert (now["tenure"] == before["tenure"] + 1).all()
    assert (before["event_time"] == pd.Timestamp(JAN)).all() and (now["event_time"] == pd.Timestamp(FEB)).all()


def test_incremental_read_returns_only_the_changed_keys(scenario):
    since_jan = scenario.store.read("customer_features", since=scenario.jan)
    assert set(since_jan["customerID"]) == scenario.batch.changed | scenario.batch.new
    assert len(since_jan) == len(scenario.batch.changed | scenario.batch.new)


def test_quarantine_holds_every_bad_row_with_its_reason(scenario):
    quarantine = scenario.store.quarantine("customer_features")
    expected = {
        "wrong type": "tenure: 'twelve' is not an integer",
        "unknown category": "Contract: 'Three year' is not one of",
        "missing key": "customerID: required value is missing",
        "out of range": "MonthlyCharges: -5 is below the minimum 0",
        "conflicting duplicate (1 of 2)": "conflicting rows for the same key and event time",
        "malformed line": "malformed row: its field count does not match the header",
    }
    assert len(quarantine) == len(scenario.batch.bad)
    for label, reason in expected.items():
        customer = scenario.batch.bad[label]
        rows = quarantine[
            quarantine["raw"].str.contains(customer)
            & quarantine["reasons"].map(lambda r, reason=reason: any(reason in x for x in r))
        ]
        assert len(rows) >= 1, f"{label}: no quarantined row with {reason!r}"
    assert set(quarantine["source"]) == {str(scenario.batch.path)}


def test_rerunning_a_batch_is_idempotent(scenario):
    report = scenario.rerun["customer_features"]
    assert report.written == 0 and report.instant is None
    assert (
        report.unchanged
        == scenario.second["customer_features"].unchanged + scenario.second["customer_features"].written
    )
    history = scenario.store.read("customer_features")
    assert len(history) == scenario.history_before_rerun == 7043 + len(scenario.batch.changed | scenario.batch.new)
    assert not history.duplicated(["customerID", "event_time"]).any()
    assert len(scenario.store.quarantine("customer_features")) == scenario.quarantine_before_rerun


def test_stored_vectors_are_what_the_stored_transformation_makes(scenario):
    """Serving re-applies the stored transformation to raw values: it must reproduce the table's vectors."""
    latest = scenario.store.latest("customer_features").sample(200, random_state=1)
    transform = scenario.store.transform("customer_features")
    assert transform == scenario.store.transform("customer_features", as_of=scenario.jan)  # fitted once, frozen
    raw = latest[["customerID", *(c.name for c in FEATURES.columns)]]
    typed, reasons = validate_frame(FEATURES, raw)
    assert all(r == [] for r in reasons)
    np.testing.assert_allclose(transform.apply(typed), np.stack(latest["features"].to_numpy()), rtol=1e-6)
    assert len(transform.feature_names) == len(latest["features"].iloc[0]) == 39


def test_spark_and_hudi_rs_read_the_same_table(scenario, spark):
    assert scenario.store.spark_read(spark, "customer_features", as_of=scenario.jan).count() == 7043
    spark_since = {
        r.customerID
        for r in scenario.store.spark_read(spark, "customer_features", since=scenario.jan)
        .select("customerID")
        .collect()
    }
    assert spark_since == scenario.batch.changed | scenario.batch.new


def test_commit_metadata_records_the_batch(scenario):
    commits = scenario.store.commits("customer_features")
    assert [c.json("mlkit.batch")["event_time"] for c in commits] == [JAN.isoformat(), FEB.isoformat()]
    assert commits[0].json("mlkit.spec")["name"] == "customer_features"


def test_a_source_without_the_spec_columns_is_rejected_before_writing(spark, tmp_path):
    source = tmp_path / "partial.csv"
    pd.read_csv(TELCO, dtype=str).drop(columns=["tenure", "Contract"]).head(20).to_csv(source, index=False)
    store = FeatureStore(str(tmp_path / "store"))
    with pytest.raises(JobError, match=r"lacks columns \['tenure', 'Contract'\] that spec customer_features requires"):
        run_batch(spark, store, [FEATURES, LABELS], str(source), event_time=JAN)
    with pytest.raises(TableNotFound):
        store.commits("churn_labels")  # nothing written, not even the table whose columns were there


def test_an_unreadable_source_is_a_job_error(spark, tmp_path):
    with pytest.raises(JobError, match=r"cannot read source .*missing\.csv as csv"):
        run_batch(spark, FeatureStore(str(tmp_path)), [FEATURES], str(tmp_path / "missing.csv"), event_time=JAN)


def test_the_extract_has_blank_total_charges_only_for_tenure_zero():
    telco = pd.read_csv(TELCO, dtype=str, keep_default_na=False)
    blank = telco[telco["TotalCharges"].str.strip() == ""]
    assert len(blank) == 11 and set(blank["tenure"]) == {"0"}


# A free-text column, as exported by a spreadsheet or Python's csv module: a quoted field may hold a
# line break, and lines end in CRLF.
NOTES = {
    "name": "customer_notes",
    "entity": {"key": "customerID"},
    "columns": [{"name": "note", "type": "string"}, {"name": "rating", "type": "int", "min": 0, "max": 5}],
}
NOTE_ROWS = [
    ("0001-A", "called twice\nthen emailed, twice", "4"),
    ("0002-B", "plain", "5"),
    ("0003-C", "three\nshort\nlines", "3"),
]


def write_notes(path: Path) -> Path:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.writer(f)  # quotes what needs it; \r\n line ends
        writer.writerow(["customerID", "note", "rating"])
        writer.writerows(NOTE_ROWS)
    return path


def test_a_quoted_field_with_a_line_break_stays_one_record_when_the_spec_says_multiline(spark, tmp_path):
    spec = parse_spec({**NOTES, "source": {"format": "csv", "multiline": True}}, "customer_notes.yaml")
    store = FeatureStore(str(tmp_path / "store"))
    [report] = run_batch(spark, store, [spec], str(write_notes(tmp_path / "notes.csv")), event_time=JAN)
    assert (report.read, report.accepted, report.quarantined, report.written) == (3, 3, 0, 3)
    stored = store.read("customer_notes").set_index("customerID")
    assert {key: (stored.at[key, "note"], stored.at[key, "rating"]) for key, _, _ in NOTE_ROWS} == {
        key: (note, int(rating)) for key, note, rating in NOTE_ROWS
    }


def test_without_multiline_the_split_record_is_quarantined_with_the_fix_named(spark, tmp_path):
    spec = parse_spec(NOTES, "customer_notes.yaml")
    store = FeatureStore(str(tmp_path / "store"))
    [report] = run_batch(spark, store, [spec], str(write_notes(tmp_path / "notes.csv")), event_time=JAN)
    # Six lines, read as six records. One fragment has three fields and passes as a row of its own
    # (customer "then emailed"): the hint on the quarantined halves is how the operator learns of it.
    assert (report.read, report.quarantined, report.written) == (6, 4, 2)
    assert set(store.read("customer_notes")["customerID"]) == {"0002-B", "then emailed"}
    quarantine = store.quarantine("customer_notes")
    first = quarantine[quarantine["raw"].str.startswith('0001-A,"called twice')]
    assert len(first) == 1
    assert any("set source.multiline: true" in reason for reason in first["reasons"].iloc[0]), first["reasons"].iloc[0]

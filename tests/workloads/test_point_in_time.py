"""Point-in-time joins never leak a feature value from after the row's own timestamp.

Crafted history: customer A has versions on Jan 1, Feb 1 and Mar 1; B only on Feb 1. Each label row
must see exactly the version in effect at its timestamp, in the pandas (hudi-rs) join and in Spark.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from workloads.common.featurestore import FeatureStore
from workloads.common.specs import parse_spec
from workloads.features.job import run_batch

SPEC = parse_spec(
    {
        "name": "usage",
        "entity": {"key": "customer"},
        "columns": [{"name": "minutes", "type": "double", "transform": "standard"}],
    },
    "usage spec",
)
VERSIONS = [
    (datetime(2026, 1, 1, tzinfo=UTC), {"A": 10.0}),
    (datetime(2026, 2, 1, tzinfo=UTC), {"A": 20.0, "B": 200.0}),
    (datetime(2026, 3, 1, tzinfo=UTC), {"A": 30.0}),
]
LABELS = pd.DataFrame(
    [
        ("A", "2025-12-31T23:59:59Z", None),  # before any version: nothing
        ("A", "2026-01-01T00:00:00Z", 10.0),  # exactly at a version: that version
        ("A", "2026-01-31T23:59:59Z", 10.0),  # a second before Feb's version: still January's
        ("A", "2026-02-15T00:00:00Z", 20.0),
        ("A", "2026-06-01T00:00:00Z", 30.0),
        ("B", "2026-01-15T00:00:00Z", None),  # B did not exist yet
        ("B", "2026-03-15T00:00:00Z", 200.0),  # B's Feb version is still in effect
        ("C", "2026-03-15T00:00:00Z", None),  # never seen
    ],
    columns=["customer", "label_time", "expected"],
)


def plain(values) -> list:
    return [None if pd.isna(v) else v for v in values]


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory) -> FeatureStore:
    root = tmp_path_factory.mktemp("pit")
    store = FeatureStore(str(root / "store"))
    # Written out of order: March first, then January, then February. Event time, not arrival, decides.
    for when, values in [VERSIONS[2], VERSIONS[0], VERSIONS[1]]:
        source = root / f"{when:%Y-%m}.csv"
        pd.DataFrame({"customer": list(values), "minutes": list(values.values())}).to_csv(source, index=False)
        run_batch(spark, store, [SPEC], str(source), event_time=when)
    return store


def test_pandas_join_sees_only_the_version_in_effect(store):
    result = store.point_in_time_join(LABELS, ["usage"], entity_key="customer", timestamp="label_time")
    assert plain(result.frame["usage__minutes"]) == plain(LABELS["expected"])
    assert list(result.frame["customer"]) == list(LABELS["customer"])  # input order kept
    assert set(result.instants) == {"usage"}


def test_no_joined_event_time_is_after_its_label_time(store):
    frame = store.point_in_time_join(LABELS, ["usage"], entity_key="customer", timestamp="label_time").frame
    joined = frame.dropna(subset=["usage__event_time"])
    assert (joined["usage__event_time"] <= pd.to_datetime(joined["label_time"], utc=True)).all()


def test_as_of_an_instant_hides_later_commits(store):
    """With the table read as of its second commit (Mar, then Jan), February's versions do not exist yet."""
    second = store.commits("usage")[1].instant
    frame = store.point_in_time_join(LABELS, {"usage": second}, entity_key="customer", timestamp="label_time").frame
    assert frame["usage__minutes"].tolist()[3] == 10.0  # Feb 15: January's value, Feb not yet written
    assert pd.isna(frame["usage__minutes"].tolist()[6])  # B unknown at that instant


def test_spark_join_agrees_with_the_pandas_join(store, spark):
    labels = spark.createDataFrame(
        LABELS.assign(label_time=pd.to_datetime(LABELS["label_time"], utc=True)).drop(columns=["expected"])
    )
    rows = store.spark_point_in_time_join(
        spark, labels, "usage", entity_key="customer", timestamp="label_time"
    ).toPandas()
    rows = rows.sort_values(["customer", "label_time"]).reset_index(drop=True)
    want = LABELS.assign(label_time=pd.to_datetime(LABELS["label_time"], utc=True)).sort_values(
        ["customer", "label_time"]
    )
    assert plain(rows["usage__minutes"]) == plain(want["expected"])

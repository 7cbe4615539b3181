"""A table's first load is a bulk insert, with what an upsert guarantees: one row per key (the newest by the
precombine field) and the commit's metadata; the batches after it upsert. Read back through hudi-rs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from workloads.common.featurestore import FeatureStore

KEY = dict(record_key=["customer", "event_time"], precombine="ingested_at")


def operations(table: Path) -> list[str]:
    """The write operation of each completed commit, oldest first, from the table's timeline."""
    commits = sorted((table / ".hoodie").glob("*.commit"))
    return [json.loads(c.read_text())["operationType"] for c in commits]


def frame(spark, rows: list[tuple[str, str, int, float]]):
    return spark.createDataFrame(
        pd.DataFrame(rows, columns=["customer", "event_time", "ingested_at", "minutes"]).assign(
            event_time=lambda d: pd.to_datetime(d["event_time"], utc=True)
        )
    )


def test_a_first_load_is_a_bulk_insert_keeping_the_newest_copy_of_each_key(spark, tmp_path):
    store = FeatureStore(str(tmp_path / "store"))
    first = [
        ("A", "2026-01-01T00:00:00Z", 1, 10.0),
        ("A", "2026-01-01T00:00:00Z", 2, 11.0),  # the same key sent twice: the later ingest wins
        ("B", "2026-01-01T00:00:00Z", 1, 20.0),
    ]
    instant = store.upsert(frame(spark, first), "usage", metadata={"spec": "v1"}, **KEY)
    table = tmp_path / "store" / "usage"
    assert operations(table) == ["BULK_INSERT"]
    rows = store.read("usage").sort_values("customer")
    assert rows["minutes"].tolist() == [11.0, 20.0]
    [commit] = store.commits("usage")
    assert (commit.instant, commit.metadata["mlkit.spec"]) == (instant, "v1")

    # The next batch updates in place.
    store.upsert(frame(spark, [("B", "2026-01-01T00:00:00Z", 3, 21.0)]), "usage", metadata={"spec": "v1"}, **KEY)
    assert operations(table) == ["BULK_INSERT", "UPSERT"]
    assert store.read("usage").sort_values("customer")["minutes"].tolist() == [11.0, 21.0]

"""Feature store throughput: a table's first load (bulk insert) and a 10 % update batch (upsert) against a plain
Parquet write of the same rows, and point-in-time joins.

Runs in the workloads environment with a local Spark session (local[2] on this machine).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

ENV = "workloads"
ROWS = 1_000_000
ENTITIES = 100_000
VERSIONS = 3


def _pit_spec():
    from workloads.common.specs import parse_spec

    columns = [("tenure", "int"), ("MonthlyCharges", "double"), ("TotalCharges", "double"), ("Contract", "string")]
    return parse_spec(
        {"name": "pit", "entity": {"key": "customerID"}, "columns": [{"name": n, "type": t} for n, t in columns]},
        "bench",
    )


def _rows(spark, n: int, *, offset_days: int = 0, seed: int = 0):
    from pyspark.sql import functions as F

    return spark.range(n).select(
        F.format_string("C%09d", F.col("id")).alias("customerID"),
        (F.lit("2026-01-01").cast("timestamp") + F.expr(f"make_interval(0, 0, 0, {offset_days})")).alias("event_time"),
        (F.rand(seed) * 72).cast("int").alias("tenure"),
        (F.rand(seed + 1) * 100 + 18).alias("MonthlyCharges"),
        (F.rand(seed + 2) * 8000).alias("TotalCharges"),
        F.element_at(
            F.array(F.lit("Month-to-month"), F.lit("One year"), F.lit("Two year")),
            (F.rand(seed + 3) * 3).cast("int") + 1,
        ).alias("Contract"),
        F.array(*[F.rand(seed + 10 + i).cast("float") for i in range(8)]).alias("features"),
        F.sha2(F.col("id").cast("string"), 256).alias("row_hash"),
        F.lit(int(time.time() * 1000)).cast("long").alias("ingested_at"),
    )


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run() -> dict:
    from workloads.common.featurestore import FeatureStore
    from workloads.common.spark import spark_session

    spark = spark_session("mlkit-bench")
    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-"))
    try:
        store = FeatureStore(str(work / "store"))
        data = _rows(spark, ROWS).cache()
        data.count()
        parquet_s = _timed(lambda: data.write.mode("overwrite").parquet(str(work / "plain.parquet")))
        upsert = dict(record_key=["customerID", "event_time"], precombine="ingested_at", metadata={})
        hudi_insert_s = _timed(lambda: store.upsert(data, "bench", **upsert))
        changed = _rows(spark, ROWS // 10, seed=99).cache()  # the same keys with new values: updates in place
        changed.count()
        hudi_update_s = _timed(lambda: store.upsert(changed, "bench", **upsert))

        # Point-in-time join: ENTITIES customers with VERSIONS versions each, one commit per version.
        pit = {**upsert, "metadata": {"spec": _pit_spec().model_dump_json()}}
        for version in range(VERSIONS):
            store.upsert(_rows(spark, ENTITIES, offset_days=30 * version, seed=version), "pit", **pit)
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        labels = pd.DataFrame(
            {
                "customerID": [f"C{i:09d}" for i in range(ENTITIES)],
                "label_time": pd.Timestamp("2026-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 90, ENTITIES), unit="D"),
            }
        )
        join = dict(entity_key="customerID", timestamp="label_time")
        pandas_s = _timed(lambda: store.point_in_time_join(labels, ["pit"], **join))
        spark_labels = spark.createDataFrame(labels).cache()
        spark_labels.count()
        spark_s = _timed(lambda: store.spark_point_in_time_join(spark, spark_labels, "pit", **join).count())
        return {
            "upsert_rows": ROWS,
            "parquet_write_rows_per_s": round(ROWS / parquet_s),
            # A new table's first load is a bulk insert (FIRST_LOAD_OPTIONS); later batches upsert.
            "hudi_first_load_rows_per_s": round(ROWS / hudi_insert_s),
            "hudi_upsert_10pct_updates_rows_per_s": round((ROWS // 10) / hudi_update_s),
            "bulk_insert_vs_parquet_ratio": round(parquet_s / hudi_insert_s, 3),
            # rows/s of the update batch against Parquet's rows/s over the whole set
            "upsert_10pct_vs_parquet_ratio": round(((ROWS // 10) / hudi_update_s) / (ROWS / parquet_s), 3),
            "pit_entities": ENTITIES,
            "pit_versions_per_entity": VERSIONS,
            "pit_join_pandas_hudi_rs_s": round(pandas_s, 2),
            "pit_join_spark_s": round(spark_s, 2),
        }
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)

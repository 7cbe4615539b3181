"""The feature job: read a raw batch, validate it against the spec, quarantine what fails, transform,
and upsert into the spec's Hudi table. Nothing is dropped silently:

    read = quarantined + duplicates (identical copies in the batch) + unchanged + written

Re-running a batch is idempotent: rows whose values equal the version already in effect at their
event time are counted as unchanged and not written again. A run killed mid-write leaves the
table at its last good commit (Hudi never exposes an inflight commit); the next run rolls the
failed write back and completes it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial

import pandas as pd

from workloads.common.featurestore import FeatureStore
from workloads.common.specs import FeatureSpec
from workloads.common.tablelock import TableLock, TableLocked
from workloads.common.transform import FittedTransform
from workloads.common.validation import validate_frame

CORRUPT = "_corrupt_record"
SPARK_TYPES = {"string": "string", "int": "bigint", "double": "double", "boolean": "boolean"}


class JobError(Exception):
    """The batch as a whole cannot be ingested (wrong columns, unreadable source); nothing was written."""


@dataclass
class BatchReport:
    table: str
    source: str
    batch_id: str
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    unchanged: int = 0
    written: int = 0
    instant: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def read_source(spark, source: str, spec: FeatureSpec):
    """The raw batch with every column as a string; malformed CSV lines land in _corrupt_record."""
    from pyspark.sql.types import StringType, StructField, StructType

    from workloads.common.storage import spark_uri

    path = spark_uri(source)
    try:
        if spec.source.format == "csv":
            header = spark.read.options(**spec.source.spark_options).csv(path).columns
            schema = StructType([StructField(c, StringType()) for c in header] + [StructField(CORRUPT, StringType())])
            frame = (
                spark.read.options(**spec.source.spark_options)
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT)
                .schema(schema)
                .csv(path)
            )
        else:
            from pyspark.sql import functions as F

            frame = spark.read.parquet(path)
            frame = frame.select(
                *[F.col(c).cast("string").alias(c) for c in frame.columns], F.lit(None).cast("string").alias(CORRUPT)
            )
    except Exception as e:  # Spark's AnalysisException for a missing path or an unreadable file
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise JobError(f"cannot read source {source} as {spec.source.format}: {first_line}") from None
    missing = [c for c in spec.source_columns if c not in frame.columns]
    if missing:
        present = [c for c in frame.columns if c != CORRUPT]
        raise JobError(f"source {source} lacks columns {missing} that spec {spec.name} requires (it has {present})")
    return frame


def run_batch(
    spark,
    store: FeatureStore,
    specs: list[FeatureSpec],
    source: str,
    *,
    event_time: datetime,
    batch_id: str | None = None,
) -> list[BatchReport]:
    """Ingest one raw batch into each spec's table. Every spec's columns are checked before anything is written."""
    formats = {s.source.format for s in specs}
    if len(formats) > 1:
        raise JobError(f"specs read the same batch but declare different source formats: {sorted(formats)}")
    raws = [read_source(spark, source, spec) for spec in specs]
    batch_id = batch_id or uuid.uuid4().hex[:12]
    return [
        ingest(spark, store, spec, raw, source=source, event_time=event_time, batch_id=batch_id)
        for spec, raw in zip(specs, raws, strict=True)
    ]


def ingest(
    spark,
    store: FeatureStore,
    spec: FeatureSpec,
    raw,
    *,
    source: str,
    event_time: datetime,
    batch_id: str | None = None,
) -> BatchReport:
    """Validate, quarantine, transform and upsert one spec's table from an already-read raw batch."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    started = time.perf_counter()
    key = spec.entity.key
    report = BatchReport(spec.name, source, batch_id or uuid.uuid4().hex[:12])
    value_columns = [c.name for c in spec.columns]

    validated = raw.select(*spec.source_columns, CORRUPT).mapInPandas(
        partial(_validate_partitions, spec), _validated_schema(spec)
    )
    if not spec.event_time.column:
        validated = validated.withColumn("event_time", F.lit(event_time).cast("timestamp"))
    validated = validated.withColumn("row_hash", F.sha2(F.to_json(F.struct(*value_columns)), 256)).cache()
    report.read = validated.count()

    # A key and event time may appear once per batch: identical copies collapse, conflicting ones are rejected.
    same_key = Window.partitionBy(key, "event_time")
    checked = (
        validated.where(F.size("reasons") == 0)
        .withColumn("_versions", F.size(F.collect_set("row_hash").over(same_key)))
        .withColumn("_copy", F.row_number().over(same_key.orderBy("row_hash")))
    )
    conflict = F.array(F.lit(f"{key}: conflicting rows for the same key and event time in one batch"))
    rejected = validated.where(F.size("reasons") > 0).unionByName(
        checked.where("_versions > 1").withColumn("reasons", conflict).drop("_versions", "_copy")
    )
    unique = checked.where("_versions = 1")
    report.duplicates = unique.where("_copy > 1").count()
    accepted = unique.where("_copy = 1").drop("_versions", "_copy")

    # From the first read of the table to its commit, and its quarantine's, one job per table at a time.
    try:
        lock = TableLock(store.root, spec.name, store.store)
        with lock:
            _write(spark, store, spec, report, accepted, rejected, source=source, event_time=event_time)
    except (TableLocked, ValueError) as e:  # ValueError: a bad MLKIT_TABLE_LOCK_WAIT_S
        raise JobError(str(e)) from None
    validated.unpersist()
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _write(
    spark, store: FeatureStore, spec: FeatureSpec, report: BatchReport, accepted, rejected, *, source, event_time
):
    """Compare the accepted rows with the committed table, then commit the changed ones and the rejects."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    key = spec.entity.key
    transform = (
        store.transform(spec.name)
        if store.exists(spec.name)
        else FittedTransform.fit(spec, column_stats(accepted, spec))
    )
    with_features = StructType([*accepted.schema.fields, StructField("features", ArrayType(FloatType()))])
    transformed = accepted.mapInPandas(partial(_transform_partitions, transform), with_features).cache()
    rejected = rejected.unionByName(transformed.where(F.size("reasons") > 0).drop("features"))
    usable = transformed.where(F.size("reasons") == 0).drop("reasons", "raw")

    to_write = _changed_rows(spark, store, spec, usable) if store.exists(spec.name) else usable
    to_write = to_write.withColumn("ingested_at", F.lit(int(time.time() * 1000)).cast("long")).cache()
    report.written = to_write.count()
    report.accepted = report.read - rejected.count() if report.read else 0
    report.quarantined = report.read - report.accepted
    report.unchanged = report.accepted - report.duplicates - report.written

    _quarantine(store, spec, rejected, source=source, batch_id=report.batch_id)
    if report.written:
        metadata = {
            "spec": spec.model_dump_json(),
            "transform": transform.to_json(),
            "batch": json.dumps(
                {
                    "id": report.batch_id,
                    "source": source,
                    "event_time": event_time.isoformat(),
                    "written": report.written,
                }
            ),
        }
        report.instant = store.upsert(
            to_write, spec.name, record_key=[key, "event_time"], precombine="ingested_at", metadata=metadata
        )
    for frame in (transformed, to_write):
        frame.unpersist()


def column_stats(accepted, spec: FeatureSpec) -> dict[str, dict]:
    """The statistics a transformation is fitted on, computed by Spark over the accepted rows."""
    from pyspark.sql import functions as F

    stats: dict[str, dict] = {}
    numeric = [c for c in spec.columns if c.transform in ("standard", "minmax")]
    if numeric:
        aggregates = []
        for c in numeric:
            aggregates += [F.mean(c.name), F.stddev_pop(c.name), F.min(c.name), F.max(c.name)]
        row = accepted.agg(*aggregates).first()
        for i, c in enumerate(numeric):
            mean, std, low, high = (row[4 * i + j] for j in range(4))
            stats[c.name] = {"mean": mean or 0.0, "std": std, "min": low or 0.0, "max": high or 0.0}
    for c in spec.columns:
        if c.transform in ("onehot", "ordinal") and c.allowed is None:
            stats[c.name] = {
                "categories": [
                    r[0] for r in accepted.select(c.name).where(F.col(c.name).isNotNull()).distinct().collect()
                ]
            }
    return stats


def _changed_rows(spark, store: FeatureStore, spec: FeatureSpec, usable):
    """Rows whose values differ from the version in effect at their event time (or that have none)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = spec.entity.key
    history = store.spark_read(spark, spec.name).select(
        F.col(key).alias("_h_key"), F.col("event_time").alias("_h_time"), F.col("row_hash").alias("_h_hash")
    )
    candidates = usable.join(
        history, (usable[key] == history["_h_key"]) & (history["_h_time"] <= usable["event_time"]), "left"
    )
    in_effect = Window.partitionBy(key, "event_time").orderBy(F.col("_h_time").desc_nulls_last())
    ranked = candidates.withColumn("_rank", F.row_number().over(in_effect)).where("_rank = 1")
    changed = ranked.where(F.col("_h_hash").isNull() | (F.col("_h_hash") != F.col("row_hash")))
    return changed.drop("_h_key", "_h_time", "_h_hash", "_rank")


def _quarantine(store: FeatureStore, spec: FeatureSpec, rejected, *, source: str, batch_id: str) -> None:
    """Upsert rejected rows, keyed by their content, so a re-run adds no duplicates."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    content = F.sha2(F.concat_ws("|", F.lit(source), F.col("raw")), 256)
    rows = rejected.select("raw", "reasons").withColumn("_content", content)
    # Identical bad lines are distinct rows of the source: number them so none collapses into another.
    copy = F.row_number().over(Window.partitionBy("_content").orderBy("_content"))
    rows = rows.select(
        F.concat_ws("-", "_content", copy.cast("string")).alias("quarantine_id"),
        F.lit(spec.name).alias("table"),
        F.lit(source).alias("source"),
        F.lit(batch_id).alias("batch_id"),
        "raw",
        "reasons",
        F.current_timestamp().alias("quarantined_at"),
    )
    if rows.limit(1).count():
        store.upsert(
            rows,
            f"{spec.name}_quarantine",
            record_key=["quarantine_id"],
            precombine="quarantined_at",
            metadata={},
            uri=store.quarantine_uri(spec.name),
        )


# --- the pandas steps Spark runs per partition ----------------------------------------------------


def _validated_schema(spec: FeatureSpec) -> str:
    columns = [f"`{spec.entity.key}` string"]
    if spec.event_time.column:
        columns.append("event_time timestamp")
    columns += [f"`{c.name}` {SPARK_TYPES[c.type]}" for c in spec.columns]
    return ", ".join([*columns, "reasons array<string>", "raw string"])


def _validate_partitions(spec: FeatureSpec, batches):
    for pdf in batches:
        corrupt = pdf[CORRUPT].notna().to_numpy()
        source = pdf.drop(columns=[CORRUPT])
        typed, reasons = validate_frame(spec, source)
        reasons = list(reasons)
        raw = [json.dumps({k: v for k, v in row.items() if v is not None}) for row in source.to_dict(orient="records")]
        for i in corrupt.nonzero()[0]:
            raw[i] = pdf[CORRUPT].iat[i]
            reasons[i] = [_malformed_reason(spec, raw[i]), *reasons[i]]
        yield typed.assign(reasons=reasons, raw=raw)


def _malformed_reason(spec: FeatureSpec, record: str) -> str:
    reason = "malformed row: its field count does not match the header"
    quote = spec.source.options.get("quote", '"')
    if spec.source.multiline and "\n" in record:
        # multiLine reads on to the next quote: an unclosed one takes the rows after it into this record.
        reason += f"; it spans {record.count(chr(10)) + 1} lines: an unclosed quote may have taken in the rows after it"
    elif not spec.source.multiline and quote and record.count(quote) % 2:
        # An odd number of quotes: the line ends inside a quoted field, i.e. the field holds a line break.
        reason += (
            "; a quoted field is not closed on its line (if quoted fields hold line breaks, set source.multiline: true)"
        )
    return reason


def _transform_partitions(transform: FittedTransform, batches):
    for pdf in batches:
        matrix, problems = transform.apply_with_reasons(pdf)
        reasons = [[str(p) for p in row] for row in problems]
        yield pdf.assign(reasons=reasons, features=list(matrix))


def parse_event_time(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = pd.Timestamp(text)
    except ValueError:
        raise JobError(
            f"--event-time {text!r} is not an ISO 8601 time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)"
        ) from None
    return (value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")).to_pydatetime()

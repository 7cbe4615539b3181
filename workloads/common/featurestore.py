"""The offline feature store: Apache Hudi tables on the object store.

Layout: ``<root>/<table>`` holds a table, ``<root>/_quarantine/<table>`` the rows its feature job
rejected. A table keeps every version of every entity: one row per (entity key, event time),
upserted, so re-sending a record updates it in place and the table is the entity's history.
Each commit carries the spec and the fitted transformation in its metadata, so any reader can
tell exactly how the vectors of that table version were made.

Writes go through Spark with the Hudi bundle. Reads need no JVM: they use hudi-rs, so training
and serving images carry no Spark. Spark reads exist for the jobs that work at Spark scale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import pyarrow as pa

from workloads.common.settings import settings
from workloads.common.specs import FeatureSpec, parse_spec
from workloads.common.storage import ObjectStore, is_local, join, local_path, scheme_of, spark_uri
from workloads.common.transform import FittedTransform

METADATA_PREFIX = "mlkit."
# Table version 6 with the metadata table off: readable by hudi-rs 0.5 with instant-time semantics
# (on version 8 its incremental reads go by completion time), and by every Hudi 0.14+/1.x reader.
HUDI_WRITE_OPTIONS = {
    "hoodie.datasource.write.table.type": "COPY_ON_WRITE",
    "hoodie.datasource.write.operation": "upsert",
    "hoodie.datasource.write.partitionpath.field": "",
    "hoodie.datasource.write.keygenerator.class": "org.apache.hudi.keygen.NonpartitionedKeyGenerator",
    "hoodie.write.table.version": "6",
    "hoodie.write.auto.upgrade": "false",
    "hoodie.metadata.enable": "false",
    "hoodie.datasource.write.commitmeta.key.prefix": METADATA_PREFIX,
    # Time travel reaches back as far as the cleaner keeps file versions.
    "hoodie.cleaner.commits.retained": "100",
    "hoodie.keep.min.commits": "110",
    "hoodie.keep.max.commits": "130",
    "hoodie.upsert.shuffle.parallelism": "4",
    "hoodie.insert.shuffle.parallelism": "4",
    "hoodie.bulkinsert.shuffle.parallelism": "4",
    # Snappy, as Spark writes Parquet: Hudi's default gzip costs several times the CPU per row written.
    "hoodie.parquet.compression.codec": "snappy",
}
# A table's first load is a bulk insert: no index lookup and no merge against existing file groups.
# What an upsert gives besides, asked for explicitly: one row per key (the newest by the precombine
# field), files sorted by key within each Spark partition (the upserts after it touch few file groups),
# and the upsert's record keys: Hudi's row writer spells a timestamp key field as text
# ("2026-01-01 00:00:00.0") where the upsert path writes microseconds, so the next upsert of that
# key would add a second row (tests/workloads/test_first_load.py).
FIRST_LOAD_OPTIONS = {
    "hoodie.datasource.write.operation": "bulk_insert",
    "hoodie.datasource.write.row.writer.enable": "false",
    "hoodie.combine.before.insert": "true",
    "hoodie.bulkinsert.sort.mode": "PARTITION_SORT",
}
HUDI_META_COLUMNS = ("_hoodie_commit_seqno", "_hoodie_record_key", "_hoodie_partition_path", "_hoodie_file_name")


class FeatureStoreError(Exception):
    pass


class TableNotFound(FeatureStoreError):
    def __init__(self, uri: str):
        super().__init__(f"no feature table at {uri} (run its feature job first)")


class InstantNotFound(FeatureStoreError):
    def __init__(self, table: str, instant: str, known: list[str]):
        super().__init__(f"table {table} has no commit at or before {instant}; its commits: {known or 'none'}")


@dataclass(frozen=True)
class Commit:
    instant: str
    metadata: dict[str, str]

    def json(self, key: str) -> dict | list | None:
        value = self.metadata.get(key)
        return json.loads(value) if value else None


@dataclass(frozen=True)
class TableSnapshot:
    """One table pinned to one commit: its instant, and the spec and transformation it was written with."""

    table: str
    commit: Commit

    @property
    def instant(self) -> str:
        return self.commit.instant

    @cached_property
    def spec(self) -> FeatureSpec:
        return parse_spec(self.commit.json(METADATA_PREFIX + "spec"), f"{self.table}@{self.instant}")

    @cached_property
    def transform(self) -> FittedTransform:
        return FittedTransform.from_json(self.commit.metadata[METADATA_PREFIX + "transform"])


# What the readers take for "as of": an instant, a pinned table (no timeline read), or None (the latest commit).
AsOf = str | TableSnapshot | None


@dataclass(frozen=True)
class TrainingSet:
    """A point-in-time correct frame and the table instants it was built from (its lineage)."""

    frame: pd.DataFrame
    instants: dict[str, str] = field(default_factory=dict)


class FeatureStore:
    def __init__(self, root: str, store: ObjectStore | None = None):
        # hudi-rs needs absolute local paths; object-store URIs pass through.
        self.root = str(Path(local_path(root)).resolve()) if is_local(root) else root.rstrip("/")
        self.store = store or settings().store

    @classmethod
    def open(cls, root: str | None = None) -> FeatureStore:
        """The store at ``root`` (a flag), else MLKIT_FEATURE_STORE, else the team profile's; a
        FeatureStoreError names what is missing, unsupported or outside the team's root."""
        from workloads.common.settings import SettingsError

        try:
            return cls(settings().feature_store(root))
        except SettingsError as e:
            raise FeatureStoreError(str(e)) from None

    # --- addressing ---------------------------------------------------------------------------

    def uri(self, table: str) -> str:
        return join(self.root, table)

    def quarantine_uri(self, table: str) -> str:
        return join(self.root, "_quarantine", table)

    # --- reads without a JVM ----------------------------------------------------------------------

    def _hudi(self, uri: str):
        from hudi import HudiTableBuilder

        try:
            return (
                HudiTableBuilder.from_base_uri(uri)
                .with_storage_options(self.store.reader_options(scheme_of(uri)))
                .build()
            )
        except Exception as e:  # hudi-rs raises its own error types for a missing table
            if "hoodie.properties" in str(e) or "not found" in str(e).lower() or "No such file" in str(e):
                raise TableNotFound(uri) from None
            raise

    def exists(self, table: str) -> bool:
        try:
            self._hudi(self.uri(table))
            return True
        except TableNotFound:
            return False

    def commits(self, table: str) -> list[Commit]:
        """Completed commits, oldest first, with their mlkit.* metadata."""
        hudi_table = self._hudi(self.uri(table))
        timeline = hudi_table.get_timeline()
        out = []
        for instant in timeline.get_completed_commits():
            extra = json.loads(timeline.get_instant_metadata_in_json(instant)).get("extraMetadata") or {}
            out.append(Commit(instant.timestamp, {k: v for k, v in extra.items() if k.startswith(METADATA_PREFIX)}))
        return out

    def resolve(self, table: str, as_of: str | None = None) -> Commit:
        """The latest commit at or before ``as_of`` (the latest commit when None)."""
        commits = self.commits(table)
        eligible = [c for c in commits if as_of is None or c.instant <= as_of]
        if not eligible:
            raise InstantNotFound(table, as_of or "now", [c.instant for c in commits])
        return eligible[-1]

    def pin(self, table: str, as_of: AsOf = None) -> TableSnapshot:
        """``table`` pinned as of ``as_of``: one timeline read, none when it is pinned already."""
        if isinstance(as_of, TableSnapshot):
            return as_of
        return TableSnapshot(table, self.resolve(table, as_of))

    def snapshot(self, tables: Mapping[str, str | None]) -> dict[str, TableSnapshot]:
        """Each table pinned once (table -> instant, None: its latest): what one run reads, and its lineage.
        A missing table or instant fails here, naming it, before anything is read."""
        return {table: self.pin(table, as_of) for table, as_of in tables.items()}

    def spec(self, table: str, as_of: AsOf = None) -> FeatureSpec:
        return self.pin(table, as_of).spec

    def transform(self, table: str, as_of: AsOf = None) -> FittedTransform:
        """The transformation the table's vectors were made with, as of an instant."""
        return self.pin(table, as_of).transform

    def read(
        self, table: str, *, as_of: str | None = None, since: str | None = None, until: str | None = None
    ) -> pd.DataFrame:
        """Every version of every entity: as of an instant (time travel), or written after ``since`` (incremental)."""
        return self._read_uri(self.uri(table), as_of=as_of, since=since, until=until)

    def _read_uri(self, uri: str, *, as_of=None, since=None, until=None) -> pd.DataFrame:
        from hudi import HudiQueryType, HudiReadOptions

        hudi_table = self._hudi(uri)
        options = HudiReadOptions()
        if since is not None:
            options = options.with_query_type(HudiQueryType.Incremental).with_start_timestamp(since)
            if until is not None:
                options = options.with_end_timestamp(until)
        elif as_of is not None:
            options = options.with_as_of_timestamp(as_of)
        batches = hudi_table.read(options)
        arrow = pa.Table.from_batches(batches) if batches else hudi_table.get_schema_with_meta_fields().empty_table()
        frame = arrow.drop_columns([c for c in HUDI_META_COLUMNS if c in arrow.column_names]).to_pandas()
        return frame.rename(columns={"_hoodie_commit_time": "instant"})

    def latest(self, table: str, *, as_of: AsOf = None) -> pd.DataFrame:
        """One row per entity: its newest version by event time, as of an instant."""
        pinned = self.pin(table, as_of)
        key = pinned.spec.entity.key
        history = self.read(table, as_of=pinned.instant)
        ordered = history.sort_values([key, "event_time", "ingested_at"])
        return ordered.drop_duplicates(key, keep="last").reset_index(drop=True)

    def quarantine(self, table: str) -> pd.DataFrame:
        """The rows the table's feature job rejected, with their reasons."""
        try:
            return self._read_uri(self.quarantine_uri(table)).sort_values("quarantined_at").reset_index(drop=True)
        except TableNotFound:
            return pd.DataFrame(
                columns=["quarantine_id", "table", "source", "batch_id", "raw", "reasons", "quarantined_at"]
            )

    def point_in_time_join(
        self,
        entities: pd.DataFrame,
        tables: Sequence[str] | Mapping[str, AsOf],
        *,
        entity_key: str,
        timestamp: str,
    ) -> TrainingSet:
        """Attach to each entity row the feature values in effect at its own timestamp, never later ones.

        ``tables`` names the feature tables, or maps each to the instant to read it as of (None:
        its latest commit). Columns of table ``t`` arrive as ``t__<column>``; rows with no
        version at or before their timestamp get nulls.
        """
        wanted = dict(tables) if isinstance(tables, Mapping) else dict.fromkeys(tables)
        times = pd.to_datetime(entities[timestamp], utc=True).astype("datetime64[ns, UTC]")
        frame = entities.assign(_order=range(len(entities)), _ts=times).sort_values("_ts")
        instants = {}
        for table, as_of in wanted.items():
            pinned = self.pin(table, as_of)
            instants[table] = pinned.instant
            key = pinned.spec.entity.key
            history = self.read(table, as_of=pinned.instant).drop(columns=["instant"])
            history = history.assign(
                event_time=pd.to_datetime(history["event_time"], utc=True).astype("datetime64[ns, UTC]")
            )
            history = history.sort_values(["event_time", "ingested_at"]).drop_duplicates(
                [key, "event_time"], keep="last"
            )
            right = history.rename(columns={c: f"{table}__{c}" for c in history.columns})
            frame = pd.merge_asof(
                frame,
                right.sort_values(f"{table}__event_time"),
                left_on="_ts",
                right_on=f"{table}__event_time",
                left_by=entity_key,
                right_by=f"{table}__{key}",
                direction="backward",
                allow_exact_matches=True,
            ).drop(columns=[f"{table}__{key}"])
        frame = frame.sort_values("_order").drop(columns=["_order", "_ts"]).reset_index(drop=True)
        return TrainingSet(frame, instants)

    # --- Spark -------------------------------------------------------------------------------------

    def spark_read(self, spark, table: str, *, as_of: str | None = None, since: str | None = None):
        reader = spark.read.format("hudi")
        if since is not None:
            reader = reader.option("hoodie.datasource.query.type", "incremental").option(
                "hoodie.datasource.read.begin.instanttime", since
            )
        elif as_of is not None:
            reader = reader.option("as.of.instant", as_of)
        return reader.load(spark_uri(self.uri(table))).drop(*HUDI_META_COLUMNS)

    def spark_point_in_time_join(
        self, spark, entities, table: str, *, entity_key: str, timestamp: str, as_of: AsOf = None
    ):
        """The Spark form of point_in_time_join, for training sets too large for one machine."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        pinned = self.pin(table, as_of)
        key = pinned.spec.entity.key
        history = self.spark_read(spark, table, as_of=pinned.instant).drop("_hoodie_commit_time")
        history = history.select(*[F.col(c).alias(f"{table}__{c}") for c in history.columns])
        left = entities.withColumn("_row", F.monotonically_increasing_id())
        joined = left.join(
            history,
            (left[entity_key] == history[f"{table}__{key}"]) & (history[f"{table}__event_time"] <= left[timestamp]),
            "left",
        )
        newest_first = Window.partitionBy("_row").orderBy(
            F.col(f"{table}__event_time").desc_nulls_last(), F.col(f"{table}__ingested_at").desc_nulls_last()
        )
        return (
            joined.withColumn("_rank", F.row_number().over(newest_first))
            .where("_rank = 1")
            .drop("_rank", "_row", f"{table}__{key}")
        )

    def upsert(
        self,
        df,
        table: str,
        *,
        record_key: Sequence[str],
        precombine: str,
        metadata: Mapping[str, str],
        uri: str | None = None,
    ) -> str:
        """Upsert a Spark DataFrame by ``record_key``; ``metadata`` goes into the commit. Returns the new instant.

        A table with no completed commit yet (new, or its first load crashed) is bulk-inserted
        (FIRST_LOAD_OPTIONS), with the same result: one row per key, the newest by ``precombine``.
        """
        uri = uri or self.uri(table)
        try:
            loaded = bool(self._hudi(uri).get_timeline().get_completed_commits())
            mode = "append"
        except TableNotFound:
            loaded, mode = False, "overwrite"
        options = {
            **HUDI_WRITE_OPTIONS,
            **({} if loaded else FIRST_LOAD_OPTIONS),
            "hoodie.table.name": table,
            "hoodie.datasource.write.recordkey.field": ",".join(record_key),
            "hoodie.datasource.write.precombine.field": precombine,
            **{METADATA_PREFIX + k: v for k, v in metadata.items()},
        }
        df.write.format("hudi").options(**options).mode(mode).save(spark_uri(uri))
        timeline = self._hudi(uri).get_timeline()
        return timeline.get_completed_commits()[-1].timestamp

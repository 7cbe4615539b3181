"""`python -m workloads.features`: the feature job and its inspection commands.

Exit codes: 0 ok, 1 the batch or spec was rejected (nothing written), 2 a usage error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from workloads.common.featurestore import FeatureStore, FeatureStoreError
from workloads.common.specs import SpecError, load_spec

app = typer.Typer(
    help="Feature job: raw batch -> validated, quarantined, transformed Hudi feature table.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True, width=160)
err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="root URI of the feature store (a directory, s3://, gs://, abfss://); default MLKIT_FEATURE_STORE, "
        "else the team profile's",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@contextlib.contextmanager
def stdout_to_stderr():
    """File descriptor 1 points at stderr inside the block, for this process and the JVM it starts."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def fail(message: str) -> None:
    err.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


@app.command()
def ingest(
    spec: Annotated[
        list[Path], typer.Option("--spec", help="feature spec YAML; repeat to fill several tables from one batch")
    ],
    source: Annotated[str, typer.Option("--input", help="the raw batch: CSV or Parquet, a local path or a store URI")],
    store: StoreOpt = None,
    event_time: Annotated[
        str | None, typer.Option(help="event time of a snapshot batch (ISO 8601); default now")
    ] = None,
    batch_id: Annotated[
        str | None, typer.Option(help="an id for this batch in quarantine records and commit metadata")
    ] = None,
    metrics_file: Annotated[str | None, typer.Option(help="write Prometheus metrics here (textfile format)")] = None,
    pushgateway: Annotated[
        str | None, typer.Option(envvar="MLKIT_PUSHGATEWAY", help="push metrics to this Pushgateway")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest one raw batch into the specs' feature tables."""
    from workloads.common.metrics import feature_job_grouping, feature_job_registry, publish
    from workloads.common.settings import settings
    from workloads.common.spark import SparkSetupError, spark_session
    from workloads.features.job import JobError, parse_event_time, run_batch

    try:
        specs = [load_spec(p) for p in spec]
        when = parse_event_time(event_time)
    except (SpecError, JobError) as e:
        fail(str(e))
    try:
        # The JVM writes to this process's stdout (Hudi's object-size estimator warns there): with --json,
        # stdout must hold the JSON alone.
        with stdout_to_stderr() if as_json else contextlib.nullcontext():
            feature_store = FeatureStore.open(store)
            spark = spark_session("mlkit-feature-job", feature_store.store)
            reports = run_batch(spark, feature_store, specs, source, event_time=when, batch_id=batch_id)
    except (JobError, SparkSetupError, FeatureStoreError) as e:
        fail(str(e))
    publish(
        feature_job_registry(reports),
        textfile=metrics_file,
        pushgateway=pushgateway,
        grouping_key=feature_job_grouping(settings().namespace, reports),
    )
    if as_json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
        return
    table = Table(title=f"feature job: {source}")
    for column in (
        "table",
        "read",
        "accepted",
        "quarantined",
        "duplicates",
        "unchanged",
        "written",
        "instant",
        "seconds",
    ):
        table.add_column(column, justify="right" if column not in ("table", "instant") else "left")
    for r in reports:
        table.add_row(
            r.table,
            *(
                str(v)
                for v in (
                    r.read,
                    r.accepted,
                    r.quarantined,
                    r.duplicates,
                    r.unchanged,
                    r.written,
                    r.instant or "-",
                    r.seconds,
                )
            ),
        )
    out.print(table)


@app.command()
def commits(table: str, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List a table's commits with the batch each one came from."""
    try:
        rows = [{"instant": c.instant, "batch": c.json("mlkit.batch")} for c in FeatureStore.open(store).commits(table)]
    except FeatureStoreError as e:
        fail(str(e))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        batch = row["batch"] or {}
        out.print(
            f"{row['instant']}  written={batch.get('written', '?')}  event_time={batch.get('event_time', '?')}  source={batch.get('source', '?')}"
        )


@app.command()
def quarantine(table: str, store: StoreOpt = None, as_json: JsonOpt = False, limit: int = 20) -> None:
    """Show the rows a table's feature job rejected, with their reasons."""
    try:
        frame = FeatureStore.open(store).quarantine(table)
    except FeatureStoreError as e:
        fail(str(e))
    rows = [
        {"source": r.source, "batch_id": r.batch_id, "raw": r.raw, "reasons": list(r.reasons)}
        for r in frame.itertuples()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out.print(f"{len(rows)} quarantined row(s) for {table}")
    for row in rows[:limit]:
        out.print(f"- {'; '.join(row['reasons'])}\n    {row['raw']}", highlight=False, markup=False)


if __name__ == "__main__":
    sys.exit(app())

"""`python -m workloads.training`: train and register a model, or retrain one from its lineage.

Exit codes: 0 ok, 1 the data, config or store cannot be trained on (nothing registered), 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from workloads.common.featurestore import FeatureStore, FeatureStoreError

app = typer.Typer(
    help="Training: point-in-time set -> PyTorch -> MLflow run, registered model, champion gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="root URI of the feature store; default MLKIT_FEATURE_STORE, else the team profile's"),
]
TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow; default a SQLite file under data/mlflow"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the report as JSON")]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", help="KEY=VALUE set on the run (e.g. what started it); repeatable")
]


def parse_tags(items: list[str] | None) -> dict[str, str]:
    from workloads.training.config import ConfigError

    tags = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag {item!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


def run(action) -> None:
    from workloads.training.config import ConfigError
    from workloads.training.data import TrainingDataError
    from workloads.training.train import ExportError

    try:
        return action()
    except (ConfigError, TrainingDataError, FeatureStoreError, ExportError) as e:
        err.print(f"[red]error:[/] {e}", highlight=False)
        raise typer.Exit(1) from None


def show(report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    out.print(
        f"run {report.run_id}: {report.model_name} v{report.model_version} on {report.device}, best epoch {report.best_epoch}"
    )
    out.print("test: " + ", ".join(f"{k}={v:.4f}" for k, v in report.test.items()))
    out.print(f"lineage: {report.instants}  rows {report.rows}")
    out.print(report.promotion)


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", help="training config YAML")],
    store: StoreOpt = None,
    tracking_uri: TrackingOpt = None,
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="TABLE=INSTANT to read a table as of a commit; repeatable")
    ] = None,
    tag: TagOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train on a point-in-time training set and register the model."""
    from workloads.training.config import ConfigError, load_config
    from workloads.training.train import train as train_model

    def action():
        pins = {}
        for item in as_of or []:
            table, sep, instant = item.partition("=")
            if not sep:
                raise ConfigError(f"--as-of {item!r}: expected TABLE=INSTANT")
            pins[table] = instant
        overrides = {"as_of": pins} if pins else {}
        report = train_model(
            FeatureStore.open(store), load_config(config, **overrides), tracking_uri=tracking_uri, tags=parse_tags(tag)
        )
        show(report, as_json)

    run(action)


@app.command()
def retrain(
    run_id: str,
    tracking_uri: TrackingOpt = None,
    store: Annotated[str | None, typer.Option("--store", help="override the run's feature store")] = None,
    tag: TagOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrain from a run's lineage: the same tables at the same instants, the same config and seed."""
    from workloads.training.train import config_from_run
    from workloads.training.train import train as train_model

    def action():
        config, recorded_store = config_from_run(run_id, tracking_uri)
        store_ = FeatureStore.open(store or recorded_store)
        show(train_model(store_, config, tracking_uri=tracking_uri, tags=parse_tags(tag)), as_json)

    run(action)


if __name__ == "__main__":
    sys.exit(app())

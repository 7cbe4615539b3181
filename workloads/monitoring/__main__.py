"""`python -m workloads.monitoring drift`: compare a served model's request-log window with its training reference.

Exit codes: 0 compared (drift or not: alerts decide what drift means), 1 nothing could be compared (the model,
its reference or the log is unreadable), 2 a usage error.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from workloads.common import metrics
from workloads.common.settings import env

app = typer.Typer(
    help="Monitoring: drift of served inputs against the training reference, pushed as Prometheus metrics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True, width=160)
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def main() -> None:
    """Monitoring commands."""


@app.command()
def drift(
    model_uri: Annotated[
        str | None,
        typer.Option(
            "--model-uri", help="models:/<name>@<alias>, models:/<name>/<n>, or a bundle; default MLKIT_MODEL_URI"
        ),
    ] = None,
    request_log: Annotated[
        str | None, typer.Option("--request-log", help="the served model's request log; default MLKIT_REQUEST_LOG")
    ] = None,
    window: Annotated[str, typer.Option("--window", help="how far back to compare: 30m, 1h, 7d")] = "1h",
    until: Annotated[
        str | None,
        typer.Option("--until", help="the window's end, ISO 8601 with a zone (re-run a past window); default now"),
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, help="PSI at which a feature counts as drifted")
    ] = 0.2,
    pushgateway: Annotated[
        str | None, typer.Option("--pushgateway", help="push the metrics here; default MLKIT_PUSHGATEWAY")
    ] = None,
    textfile: Annotated[str | None, typer.Option("--textfile", help="also write them in the textfile format")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Compare the window with the model's reference; push per-feature and overall drift."""
    from mlflow.exceptions import MlflowException

    from workloads.common.bundle import BundleError
    from workloads.common.settings import SettingsError
    from workloads.common.storage import StorageError
    from workloads.monitoring.job import MonitoringError, drift_registry, grouping, parse_until, parse_window, run_drift
    from workloads.serving.artifacts import ModelSourceError

    model_uri = model_uri or env("MLKIT_MODEL_URI")
    request_log = request_log or env("MLKIT_REQUEST_LOG")
    if not model_uri or not request_log:
        err.print("error: --model-uri and --request-log are required (or MLKIT_MODEL_URI and MLKIT_REQUEST_LOG)")
        raise typer.Exit(2)
    try:
        report = run_drift(model_uri, request_log, parse_window(window), now=parse_until(until))
        registry = drift_registry(report, threshold)
        metrics.publish(
            registry,
            textfile=textfile,
            pushgateway=pushgateway or env("MLKIT_PUSHGATEWAY"),
            job=metrics.DRIFT_JOB,
            grouping_key=grouping(report),
        )
    except (MonitoringError, ModelSourceError, BundleError, StorageError, SettingsError, MlflowException, OSError) as e:
        err.print(f"error: {e}")
        raise typer.Exit(1) from None
    if as_json:
        summary = {"no_data": report.no_data, "max_psi": report.max_psi, "drifted": report.drifted(threshold)}
        print(json.dumps({**asdict(report), **summary}, default=str, indent=2))
        return
    if report.no_data:
        out.print(
            f"{report.model} v{report.version}: no data in the last {window} (skipped: {report.skipped or 'none'})"
        )
        return
    table = Table("feature", "kind", "PSI", "p-value", "test", "Wasserstein", "missing Δ", "rows")
    for f in report.features:
        flag = " [red]drift[/red]" if f.psi >= threshold else ""
        table.add_row(
            f.feature + flag,
            f.kind,
            _num(f.psi),
            _num(f.pvalue),
            f.test,
            _num(f.wasserstein),
            _num(f.missing_rate_change),
            str(f.rows),
        )
    out.print(table)
    drifted = report.drifted(threshold)
    out.print(
        f"{report.model} v{report.version}: {report.rows} rows, max PSI {_num(report.max_psi)}, "
        f"prediction PSI {_num(report.prediction_psi)}, ROC AUC {_num(report.roc_auc)} "
        f"({report.feedback_rows} labels); drifted: {drifted or 'none'}; skipped: {report.skipped or 'none'}"
    )


def _num(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4g}"


if __name__ == "__main__":
    sys.exit(app())

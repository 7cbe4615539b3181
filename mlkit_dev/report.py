"""One self-contained HTML page telling the story of `make demo`'s ML loop, from the files it left in its data
directory: lineage (feature-store instants -> training run -> model version), champion against the retrained
challenger (ROC and calibration curves on their shared test rows), drift per feature (reference against the
normal and the drifted window), serving latency, the feature job's counts and quarantine reasons, and the
champion gate's decision.

    python -m mlkit_dev.report DATA      # writes DATA/report.html and prints its path

Reads DATA/feature_job.json, DATA/features (the Hudi store), DATA/mlflow/mlflow.db (+ artifacts),
DATA/monitoring/story.json and DATA/monitoring/requests (the served request log). No JavaScript, no external
URL: plots are matplotlib PNGs inlined as data: URLs. Every piece of text goes through html.escape.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from html import escape
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from mlkit_dev.demo_data import BATCHES

MODEL = "churn-classifier"
STORY = "monitoring/story.json"
REQUESTS = "monitoring/requests"
REGISTRY = "mlflow/mlflow.db"
FEATURES = "features"
PHASES = ("normal", "drifted")
UNDRIFTED_SHOWN = 2  # undrifted features drawn beside the drifted ones, for contrast
LINES = {"champion": "-", "challenger": "--"}  # dashed on top: a challenger that ties stays visible
COLOURS = {
    "reference": "#9aa5b1",
    "normal": "#2b7bb9",
    "drifted": "#d9534f",
    "champion": "#2b7bb9",
    "challenger": "#e08a1e",
}


class ReportError(Exception):
    """The data directory lacks something the report is made of; the message names it."""


# --- reading the data directory ------------------------------------------------------------------------------


def required(data: Path, relative: str) -> Path:
    path = data / relative
    if not path.exists():
        raise ReportError(f"{path} is missing: run `make demo` (or mlkit_dev/monitoring_loop.py) on {data} first")
    return path


def read_json(data: Path, relative: str) -> dict:
    path = required(data, relative)
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ReportError(f"{path} is not JSON ({e})") from None


@dataclass
class Version:
    """A registered version, its run's tags and metrics, and the test predictions it logged."""

    role: str  # champion / challenger
    version: str
    run_id: str
    created: datetime
    tags: dict[str, str]
    metrics: dict[str, float]
    test_predictions: pd.DataFrame | None  # evaluation/test_predictions.csv; None for runs older than it

    @property
    def instants(self) -> dict[str, str]:
        return json.loads(self.tags.get("mlkit.instants", "{}"))


def load_version(data: Path, role: str, number: str, into: Path):
    """The version's registry entry and run, its run artifacts and its ONNX model, as a model bundle."""
    import mlflow

    from workloads.common.bundle import ModelBundle
    from workloads.training.train import TEST_PREDICTIONS

    uri = f"sqlite:///{required(data, REGISTRY)}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    entry = client.get_model_version(MODEL, number)
    run = client.get_run(entry.run_id)
    target = into / f"v{number}"
    mlflow.artifacts.download_artifacts(run_id=entry.run_id, dst_path=str(target), tracking_uri=uri)
    # By the version's own location: a models:/ URI would be resolved against the default registry, not this one.
    model = client.get_model_version_download_uri(MODEL, number)
    downloaded = mlflow.artifacts.download_artifacts(
        artifact_uri=model, dst_path=str(into / "models"), tracking_uri=uri
    )
    Path(downloaded).rename(target / "model")  # the directory itself came down, under its own name
    ModelBundle.write_meta(target, MODEL, number)
    predictions = target / TEST_PREDICTIONS
    version = Version(
        role,
        number,
        entry.run_id,
        datetime.fromtimestamp(entry.creation_timestamp / 1000).astimezone(),
        dict(run.data.tags),
        dict(run.data.metrics),
        pd.read_csv(predictions, dtype={"key": str}) if predictions.is_file() else None,
    )
    return version, ModelBundle.read(target)


# --- the figures -----------------------------------------------------------------------------------------------


def png(figure) -> str:
    """A matplotlib figure as a data: URL (and closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def figure(width: float = 5.2, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")  # no display; the report is a file
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def shared_test_rows(champion: pd.DataFrame, challenger: pd.DataFrame) -> pd.DataFrame:
    """The rows both test splits hold (the split hashes entity keys, so on one feature store they are the same)."""
    joined = champion.merge(challenger, on="key", suffixes=("_champion", "_challenger"))
    if (joined["label_champion"] != joined["label_challenger"]).any():
        raise ReportError("the champion's and the challenger's test labels disagree on shared customers")
    return joined.rename(columns={"label_champion": "label"})


def roc_figure(rows: pd.DataFrame) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = figure()
    for role in ("champion", "challenger"):
        fpr, tpr, _ = roc_curve(rows["label"], rows[f"score_{role}"])
        auc = roc_auc_score(rows["label"], rows[f"score_{role}"])
        ax.plot(fpr, tpr, color=COLOURS[role], linestyle=LINES[role], label=f"{role} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], color="#cccccc", linestyle="--", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {len(rows)} test customers")
    ax.legend(loc="lower right")
    return png(fig)


def calibration_figure(rows: pd.DataFrame) -> str:
    from sklearn.calibration import calibration_curve

    fig, ax = figure()
    for role in ("champion", "challenger"):
        observed, predicted = calibration_curve(rows["label"], rows[f"score_{role}"], n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", color=COLOURS[role], linestyle=LINES[role], label=role)
    ax.plot([0, 1], [0, 1], color="#cccccc", linestyle="--", linewidth=1, label="perfectly calibrated")
    ax.set(xlabel="mean predicted churn probability", ylabel="observed churn rate", title="Reliability (deciles)")
    ax.legend(loc="upper left")
    return png(fig)


@dataclass
class DriftPanel:
    """One feature's bins as the drift job compares them: the reference's shares and each window's."""

    feature: str
    kind: str
    bins: list[str]
    shares: dict[str, list[float]]  # reference / normal / drifted
    psi: dict[str, float]  # normal / drifted, as compare() computed it
    drifted: bool


def numeric_bins(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    labels = [f"< {edges[0]:.4g}"]
    labels += [f"{lo:.4g}–{hi:.4g}" for lo, hi in pairwise(edges)]
    return [*labels, f"≥ {edges[-1]:.4g}"]


def numeric_shares(edges: list[float], values: np.ndarray) -> list[float]:
    """The drift job's binning (drift.numeric_drift): the reference's interior edges, right-closed, open ends."""
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return (counts / max(len(present), 1)).tolist()


def category_shares(categories: list[str], values: pd.Series) -> list[float]:
    """The drift job's categories (drift.categorical_drift): the reference's, then one bucket for unseen ones."""
    from workloads.monitoring.drift import OTHER

    present = values.dropna().astype(str)
    counts = Counter(value if value in categories else OTHER for value in present)
    return [counts[c] / max(len(present), 1) for c in [*categories, OTHER]]


def drift_panels(
    reference, windows: dict[str, tuple[pd.DataFrame, np.ndarray]], reports: dict, drifted: list[str]
) -> list[DriftPanel]:
    """The drifted features (the drifted window's verdict), then the undrifted ones that moved most, then the score."""
    from workloads.monitoring.drift import NumericReference, floats

    by_feature = {phase: {f.feature: f for f in reports[phase].features} for phase in PHASES}
    threshold_drifted = set(drifted)
    ranked = sorted(
        (name for name in reference.features if name not in threshold_drifted),
        key=lambda name: -np.nan_to_num(by_feature["drifted"][name].psi),
    )
    chosen = [name for name in reference.features if name in threshold_drifted] + ranked[:UNDRIFTED_SHOWN]
    panels = []
    for name in chosen:
        ref = reference.features[name]
        if isinstance(ref, NumericReference):
            bins = numeric_bins(ref.edges)
            shares = {p: numeric_shares(ref.edges, floats(windows[p][0][name])) for p in PHASES}
            shares["reference"] = ref.shares
        else:
            categories = list(ref.shares)
            bins = [*categories, "unseen"]
            shares = {p: category_shares(categories, windows[p][0][name]) for p in PHASES}
            shares["reference"] = [*ref.shares.values(), 0.0]
        psi = {p: by_feature[p][name].psi for p in PHASES}
        panels.append(DriftPanel(name, ref.kind, bins, shares, psi, name in threshold_drifted))
    score = reference.prediction
    panels.append(
        DriftPanel(
            "churn score (the model's output)",
            "score",
            numeric_bins(score.edges),
            {"reference": score.shares} | {p: numeric_shares(score.edges, windows[p][1]) for p in PHASES},
            {p: reports[p].prediction_psi for p in PHASES},
            False,
        )
    )
    return panels


def drift_figure(panel: DriftPanel) -> str:
    fig, ax = figure(7.2 if len(panel.bins) > 6 else 5.2, 3.4)
    x = np.arange(len(panel.bins))
    width = 0.27
    for i, series in enumerate(("reference", *PHASES)):
        label = "reference (training)" if series == "reference" else f"served, {series}"
        ax.bar(x + (i - 1) * width, panel.shares[series], width, color=COLOURS[series], label=label)
    ax.set_xticks(
        x, panel.bins, rotation=30 if len(panel.bins) > 4 else 0, ha="right" if len(panel.bins) > 4 else "center"
    )
    ax.set_ylabel("share of rows")
    ax.set_title(f"{panel.feature}: PSI normal {fmt(panel.psi['normal'])}, drifted {fmt(panel.psi['drifted'])}")
    ax.legend(fontsize="small")
    return png(fig)


def latency_figure(latencies: dict[str, list[float]]) -> str:
    fig, ax = figure()
    top = max(max(v) for v in latencies.values() if v)
    bins = np.linspace(0, top, 40)
    for phase, values in latencies.items():
        ax.hist(values, bins=bins, alpha=0.6, color=COLOURS.get(phase), label=f"{phase} ({len(values)} requests)")
    ax.set(xlabel="latency (ms)", ylabel="requests", title="Prediction latency, client side")
    ax.legend()
    return png(fig)


# --- HTML ------------------------------------------------------------------------------------------------------


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def clock(iso: str) -> str:
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S %Z}"


def table(header: list[str], rows: list[list], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"n" if i >= numeric_from else ""}">{escape(fmt(v))}</td>' for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(source: str, alt: str) -> str:
    return f'<img src="{source}" alt="{escape(alt)}">'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def para(text: str) -> str:
    return f"<p>{escape(text)}</p>"


CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d2733; max-width: 1180px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 20px; border-bottom: 1px solid #d5dbe1; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #d5dbe1; padding: 3px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th, td:first-child { overflow-wrap: normal; } th { background: #f1f4f7; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; } .figures img { max-width: 100%; border: 1px solid #eef1f4; }
blockquote { background: #f7f9fb; border-left: 4px solid #e08a1e; margin: 8px 0; padding: 8px 12px; font-family: ui-monospace, monospace; }
.muted { color: #5b6875; }
"""


def lineage_section(versions: list[Version], story: dict) -> str:
    rows = []
    for v in versions:
        instants = ", ".join(f"{table}@{instant}" for table, instant in sorted(v.instants.items()))
        started = "the demo's training stage"
        if alert := v.tags.get("mlkit.trigger.alertname"):
            started = f"alert {alert} on v{v.tags.get('mlkit.trigger.served_version', '?')}"
        rows.append(
            [
                v.role,
                instants or "not recorded",
                v.run_id,
                f"v{v.version}, registered {v.created:%Y-%m-%d %H:%M %Z}",
                v.metrics.get("test_roc_auc"),
                v.tags.get("mlkit.training_rows"),
                v.tags.get("mlkit.code_version"),
                started,
            ]
        )
    header = [
        "model",
        "feature-store instants read",
        "training run",
        "version",
        "test ROC AUC",
        "rows",
        "code",
        "started by",
    ]
    challenger = versions[-1]
    trigger = [
        [k.removeprefix("mlkit.trigger."), value]
        for k, value in sorted(challenger.tags.items())
        if k.startswith("mlkit.trigger.")
    ]
    alert = story["drifted"].get("alert", {})
    return section(
        "1. Lineage: feature-store instants → training run → model version",
        table(header, rows, numeric_from=4),
        para(f"Feature store: {versions[0].tags.get('mlkit.feature_store', 'not recorded')}"),
        f"<h3>What started the challenger: {escape(alert.get('name', 'no alert recorded'))}</h3>",
        f"<blockquote>{escape(alert.get('description', ''))}</blockquote>" if alert else "",
        table(["trigger tag on the challenger's run", "value"], trigger, numeric_from=99)
        if trigger
        else para("The challenger's run carries no mlkit.trigger.* tags."),
    )


def models_section(champion: Version, challenger: Version) -> str:
    title = "2. Champion against challenger on the same test rows"
    predictions = champion.test_predictions, challenger.test_predictions
    missing = [v for v, p in zip((champion, challenger), predictions, strict=True) if p is None]
    if missing:
        names = ", ".join(f"v{v.version}" for v in missing)
        return section(
            title,
            para(
                f"No test predictions were logged by {names} (evaluation/test_predictions.csv; training logs it since the report was added), so no curves."
            ),
        )
    rows = shared_test_rows(*predictions)
    difference = (rows["score_champion"] - rows["score_challenger"]).abs().max()
    note = (
        f"{len(rows)} customers in both test splits (champion's: {len(predictions[0])}, challenger's: "
        f"{len(predictions[1])}); scores as each run logged them at evaluation. Largest score difference "
        f"between the two on these rows: {difference:.2g}"
        + (
            " (the retrained model scores every row as the champion does: same config, same feature data)."
            if difference == 0
            else "."
        )
    )
    return section(
        title,
        para(note),
        '<div class="figures">',
        image(roc_figure(rows), "ROC curves of the champion and the challenger"),
        image(calibration_figure(rows), "calibration curves of the champion and the challenger"),
        "</div>",
    )


def drift_section(panels: list[DriftPanel], story: dict, reports: dict) -> str:
    rows = [
        [
            phase,
            clock(story[phase]["since"]),
            clock(story[phase]["until"]),
            reports[phase].rows,
            story[phase]["rows_compared"],
            reports[phase].max_psi,
            reports[phase].prediction_psi,
            reports[phase].roc_auc,
            ", ".join(story[phase]["drifted_features"]) or "none",
        ]
        for phase in PHASES
    ]
    header = [
        "window",
        "since",
        "until",
        "rows (here)",
        "rows (drift job)",
        "max feature PSI",
        "score PSI",
        "ROC AUC (feedback)",
        "drifted (drift job)",
    ]
    figures = "".join(image(drift_figure(p), f"{p.feature}: reference against served shares") for p in panels)
    shown = ", ".join(p.feature + (" (drifted)" if p.drifted else "") for p in panels)
    return section(
        "3. Drift per feature: training reference against served traffic",
        para(
            "The served request log re-read for each window of the monitoring loop and compared as the drift job compares it (workloads.monitoring.drift.compare), over the reference's bins."
        ),
        table(header, rows, numeric_from=3),
        para(f"Shown: {shown}."),
        f'<div class="figures">{figures}</div>',
    )


def latency_section(story: dict) -> str:
    title = "4. Serving latency"
    latencies = {phase: story[phase].get("latencies_ms") for phase in PHASES}
    if not any(latencies.values()):
        return section(
            title,
            para(
                "Not recorded: the request log keeps inputs, scores and times but no latency, and the monitoring loop "
                "stores no timings per request. The model server measures it (the mlkit_predict_inner_seconds "
                "histogram on its metrics port), but the loop's Prometheus is gone when the report is written. "
                "Nothing is shown rather than invented numbers."
            ),
        )
    present = {phase: values for phase, values in latencies.items() if values}
    rows = [[phase, len(v), *np.percentile(v, [50, 95, 99]).round(1).tolist(), max(v)] for phase, v in present.items()]
    return section(
        title,
        table(["traffic", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows),
        image(latency_figure(present), "latency histogram"),
    )


def feature_job_section(batches: dict, quarantine: list[list]) -> str:
    columns = ["table", "read", "accepted", "quarantined", "duplicates", "unchanged", "written", "instant", "seconds"]
    rows = [[name, *(report.get(c) for c in columns)] for name, reports in batches.items() for report in reports]
    return section(
        "5. Feature job: counts per batch, quarantine reasons",
        table(["batch", *columns], rows, numeric_from=2),
        table(["table", "reason", "columns", "rows"], quarantine, numeric_from=3)
        if quarantine
        else para("No row was quarantined."),
    )


def quarantine_counts(data: Path, tables: list[str]) -> list[list]:
    """Quarantined rows per table and reason, with the columns it was found in ("tenure: required value is
    missing" and "Contract: required value is missing" are one reason in two columns); a row with several
    problems counts under each."""
    from workloads.common.featurestore import FeatureStore

    store = FeatureStore(str(required(data, FEATURES)))
    rows = []
    for name in tables:
        found: dict[str, tuple[set, set]] = {}  # reason -> (quarantined rows, columns)
        for row, reasons in enumerate(store.quarantine(name)["reasons"]):
            for reason in reasons:
                column, colon, problem = str(reason).partition(": ")
                if not colon or " " in column:  # not "<column>: ...", e.g. "malformed row: ..."
                    column, problem = "", str(reason)
                seen, columns = found.setdefault(problem, (set(), set()))
                seen.add(row)
                columns.update([column] if column else [])
        for problem, (seen, columns) in sorted(found.items(), key=lambda item: -len(item[1][0])):
            rows.append([name, problem, ", ".join(sorted(columns)) or "–", len(seen)])
    return rows


def gate_section(versions: list[Version], story: dict) -> str:
    decisions = "".join(
        f"<h3>v{escape(v.version)} ({escape(v.role)})</h3><blockquote>{escape(v.tags.get('mlkit.promotion', 'no decision recorded'))}</blockquote>"
        for v in versions
    )
    now = story["retrain"].get("champion_now")
    return section(
        "6. The champion gate's decision (the mlkit.promotion tag, verbatim)",
        decisions,
        para(f"Champion after the loop: v{now}."),
    )


@dataclass
class Loop:
    """Everything the page shows, measured from the data directory."""

    data: Path
    story: dict
    batches: dict
    champion: Version
    challenger: Version
    reports: dict  # phase -> the DriftReport of that window, recomputed here
    panels: list[DriftPanel]
    quarantine: list[list]  # [table, reason, columns, rows]


def gather(data: Path) -> Loop:
    from workloads.common.storage import ObjectStore
    from workloads.monitoring.drift import compare
    from workloads.monitoring.job import load_reference, typed_inputs
    from workloads.monitoring.window import read_window

    story = read_json(data, STORY)
    batches = read_json(data, BATCHES)
    requests = required(data, REQUESTS)
    try:
        numbers = {"champion": str(story["champion"]["version"]), "challenger": str(story["retrain"]["version"])}
        windows_at = {
            p: (datetime.fromisoformat(story[p]["since"]), datetime.fromisoformat(story[p]["until"])) for p in PHASES
        }
        drifted = list(story["drifted"]["drifted_features"])
    except (KeyError, TypeError, ValueError) as e:
        raise ReportError(f"{data / STORY} lacks what the report needs ({type(e).__name__}: {e})") from None

    with tempfile.TemporaryDirectory(prefix="mlkit-report-") as staging:
        champion, bundle = load_version(data, "champion", numbers["champion"], Path(staging))
        challenger, _ = load_version(data, "challenger", numbers["challenger"], Path(staging))
        reference = load_reference(bundle, f"models:/{MODEL}/{champion.version}")
        log = ObjectStore().at(str(requests))
        windows, reports = {}, {}
        for phase, (since, until) in windows_at.items():
            served = read_window(log, MODEL, champion.version, list(reference.features), since, until)
            inputs, valid = typed_inputs(bundle, served.inputs)
            windows[phase] = (inputs[valid].reset_index(drop=True), served.scores[valid])
            reports[phase] = compare(reference, *windows[phase], feedback=(served.labels, served.label_scores))
    tables = sorted({report["table"] for reports_ in batches.values() for report in reports_})
    return Loop(
        data,
        story,
        batches,
        champion,
        challenger,
        reports,
        drift_panels(reference, windows, reports, drifted),
        quarantine_counts(data, tables),
    )


def render(loop: Loop) -> str:
    versions = [loop.champion, loop.challenger]
    body = [
        lineage_section(versions, loop.story),
        models_section(loop.champion, loop.challenger),
        drift_section(loop.panels, loop.story, loop.reports),
        latency_section(loop.story),
        feature_job_section(loop.batches, loop.quarantine),
        gate_section(versions, loop.story),
    ]
    title = f"{MODEL}: the ML loop, v{loop.champion.version} and its challenger v{loop.challenger.version}"
    written = f"From {loop.data}, written {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by mlkit_dev/report.py"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="muted">{escape(written)}</p>' + "".join(body) + "</body></html>\n"
    )


def write_report(data: Path, out: Path | None = None) -> Path:
    """Write the report of the loop whose files are under ``data``; DATA/report.html unless ``out``."""
    data = Path(data)
    if not data.is_dir():
        raise ReportError(f"{data} is not a directory: pass the demo's data directory (data/demo)")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    page = render(gather(data))
    out = Path(out) if out else data / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m mlkit_dev.report DATA_DIR   (e.g. data/demo)")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    try:
        print(write_report(Path(argv[0])))
    except ReportError as e:
        raise SystemExit(f"mlkit report: {e}") from None


if __name__ == "__main__":
    main(sys.argv[1:])

"""Drift of 1M served rows x 50 columns against a 200k-row reference: workloads/monitoring/drift.py against Evidently.

The data (generated here, not timed): 30 numeric columns (normal, log-normal, uniform, Poisson counts; two with
missing values) and 20 categorical ones (3 to 20 categories, skewed shares), plus the model's score. The served
window plants drift in 6 numeric columns, 4 categorical ones and the score, and raises one numeric column's
missing rate (2% -> 20%) with its values unchanged, which no distribution test should call drift.

Each side runs in its own subprocess, so its memory is its own, and reads the same two Parquet files:
- ours (the workloads environment, this file run as a script): `Reference.of` once (timed on its own: training
  computes it once and stores it with the model), then `compare`, which computes every statistic at once (PSI,
  KS p-value and Wasserstein for numbers, chi-squared p-value for categories, missing-rate change, score PSI);
- Evidently (its own environment, .venv/evidently, made on demand from requirements/evidently.lock; see
  drift_evidently.py): `Report([DataDriftPreset(...)]).run(current, reference)` with the stattest set to PSI for
  every column, and again with KS for numeric and chi-squared for categorical columns.
Seconds are medians over repeats; memory is the subprocess's peak RSS (getrusage ru_maxrss: libraries, the data
and the work) and the peak of what one further call allocates (tracemalloc, which numpy and pandas report to;
that call is not timed). Drift is PSI >= 0.1 (Evidently's PSI default) or p < 0.05 (its KS and chi-squared
default) on both sides.

Reading the agreement: categorical PSI is the same number on both sides (same categories, no empty bins); numeric
PSI differs by binning (ours: 10 reference deciles with open ends; Evidently: Sturges' equal-width bins over both
samples, floored empty bins), so they agree on undrifted columns and differ in size on drifted ones (a widened
log-normal stays under 0.1 on Evidently's bins). The chi-squared tests differ in kind: Evidently's takes the
reference's shares as exact (goodness of fit), which with 1M served rows against 200k reference rows calls
undrifted categories p < 0.05 too; ours is a two-sample test of homogeneity (both samples finite), so its
p-values are larger on undrifted columns.
Timings depend on the machine's load: compare runs on a quiet machine, and look at load_average_1min_start_end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = "workloads"
ROWS = 1_000_000
REFERENCE_ROWS = 200_000
NUMERIC = 30
CATEGORICAL = 20
SEED = 15
REPEATS = 3  # compare
REFERENCE_REPEATS = 3  # Reference.of
EVIDENTLY_REPEATS = 3  # each Evidently configuration (minutes a run on 2 busy cores)
PSI_THRESHOLD = 0.1
P_THRESHOLD = 0.05
REPO = Path(__file__).resolve().parents[1]
EVIDENTLY_LOCK = REPO / "requirements" / "evidently.lock"
EVIDENTLY_VENV = REPO / ".venv" / "evidently"


def _numeric_names() -> list[str]:
    return [f"num_{i:02d}" for i in range(NUMERIC)]


def _categorical_names() -> list[str]:
    return [f"cat_{i:02d}" for i in range(CATEGORICAL)]


def _int_names() -> set[str]:
    return {name for i, name in enumerate(_numeric_names()) if i % 5 == 3}  # Poisson counts, spec type int


# What the served window changes (the answers both sides should find), by column: (change, amount).
NUMERIC_SHIFTS = {
    "num_00": ("mean", 0.5),  # normal; in standard deviations
    "num_01": ("sigma", 1.2),  # log-normal; its sigma 0.8 -> 1.2
    "num_02": ("mean", 0.3),  # uniform
    "num_03": ("rate", 1.5),  # Poisson mean x1.5
    "num_04": ("tail", 0.2),  # normal; a fifth of the rows move 3 standard deviations up
    "num_05": ("scale", 2.0),  # normal; twice as wide around the same mean
}
MISSING_ONLY = "num_06"  # missing rate 2% -> 20%, present values unchanged
MISSING_ALWAYS = "num_07"  # 2% missing on both sides
CATEGORY_SHIFTS = ("cat_00", "cat_01", "cat_02", "cat_03")


def planted() -> list[str]:
    return [*NUMERIC_SHIFTS, *CATEGORY_SHIFTS, "score"]


def _frames():
    """The reference (training) rows and the served window, deterministic; columns plus 'score'."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    kinds = ("normal", "lognormal", "uniform", "poisson", "normal")
    shape = {name: (kinds[i % 5], rng.uniform(-5, 50), rng.uniform(1, 20)) for i, name in enumerate(_numeric_names())}
    categories = {}
    for i, name in enumerate(_categorical_names()):
        n = 3 + (i * 17) % 18  # 3..20 categories
        weights = 1 / np.arange(1, n + 1) ** rng.uniform(0.3, 1.2)  # Zipf-like shares
        categories[name] = ([f"{name}_v{k:02d}" for k in range(n)], weights / weights.sum())

    def numeric(name: str, n: int, served: bool):
        kind, loc, scale = shape[name]
        change, amount = NUMERIC_SHIFTS.get(name, (None, 0.0)) if served else (None, 0.0)
        if kind == "poisson":
            return rng.poisson(scale * (amount if change == "rate" else 1.0), n)
        if kind == "lognormal":
            values = loc + rng.lognormal(0.0, amount if change == "sigma" else 0.8, n) * scale
        elif kind == "uniform":
            values = rng.uniform(loc, loc + 3 * scale, n)
        else:
            values = rng.normal(loc, scale, n)
        if change == "mean":
            values = values + amount * values.std()
        elif change == "scale":
            values = loc + (values - loc) * amount
        elif change == "tail":
            values = values + np.where(rng.random(n) < amount, 3 * values.std(), 0.0)
        return values

    def categorical(name: str, n: int, served: bool):
        values, shares = categories[name]
        if served and name in CATEGORY_SHIFTS:
            shares = shares[::-1]  # the rare categories become the common ones
        return np.asarray(values, dtype=object)[rng.choice(len(values), n, p=shares)]

    def frame(n: int, served: bool) -> pd.DataFrame:
        columns = {name: numeric(name, n, served) for name in _numeric_names()}
        for name, rate in ((MISSING_ALWAYS, 0.02), (MISSING_ONLY, 0.2 if served else 0.02)):
            columns[name] = np.where(rng.random(n) < rate, np.nan, columns[name].astype(float))
        columns.update({name: categorical(name, n, served) for name in _categorical_names()})
        columns["score"] = rng.beta(2.6 if served else 2.0, 5.0, n)
        return pd.DataFrame(columns)

    return frame(REFERENCE_ROWS, served=False), frame(ROWS, served=True)


def _spec():
    from workloads.common.specs import parse_spec

    ints = _int_names()
    columns = [{"name": n, "type": "int" if n in ints else "double"} for n in _numeric_names()]
    columns += [{"name": n, "type": "string"} for n in _categorical_names()]
    return parse_spec({"name": "drift_bench", "entity": {"key": "id"}, "columns": columns}, "bench_drift")


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _ours(work: Path) -> dict:
    """The workloads side, in its own process: Reference.of once, compare REPEATS times, then one traced compare."""
    import tracemalloc

    import pandas as pd

    from workloads.monitoring.drift import Reference, compare

    reference_rows = pd.read_parquet(work / "reference.parquet")
    served = pd.read_parquet(work / "served.parquet")
    specs = [_spec()]
    loaded_rss = _rss_mib()
    load_before = os.getloadavg()[0]

    def build() -> Reference:
        return Reference.of(
            reference_rows,
            specs,
            reference_rows["score"].to_numpy(),
            model="bench",
            version="1",
            instants={"drift_bench": "0"},
        )

    reference_s = []
    for _ in range(REFERENCE_REPEATS):
        started = time.perf_counter()
        reference = build()
        reference_s.append(time.perf_counter() - started)
    scores = served["score"].to_numpy()
    compare_s = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        report = compare(reference, served, scores)
        compare_s.append(time.perf_counter() - started)

    tracemalloc.start()
    compare(reference, served, scores)
    compare_traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    build()
    reference_traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    features = {
        f.feature: {"psi": f.psi, "pvalue": f.pvalue, "test": f.test, "missing_rate_change": f.missing_rate_change}
        for f in report.features
    }
    features["score"] = {"psi": report.prediction_psi}
    return {
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "reference_of_s": reference_s,
        "compare_s": compare_s,
        "peak_rss_mib": round(_rss_mib(), 1),
        "rss_after_load_mib": round(loaded_rss, 1),
        "compare_traced_peak_mib": round(compare_traced / 2**20, 1),
        "reference_of_traced_peak_mib": round(reference_traced / 2**20, 1),
        "reference_json_kib": round(len(reference.model_dump_json()) / 1024, 1),
        "features": features,
    }


def _evidently_python() -> Path:
    """.venv/evidently from requirements/evidently.lock, made the way scripts/setup.sh makes every .venv/<env>.

    Same commands and the same stamp (the lock and pyproject.toml), so a venv made here or by `make setup` (which
    makes one per requirements/*.lock) satisfies the other and a rerun costs nothing.
    """
    python = EVIDENTLY_VENV / "bin" / "python"
    stamp_file = EVIDENTLY_VENV / ".mlkit-stamp"
    stamp = hashlib.sha256(EVIDENTLY_LOCK.read_bytes() + (REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return python
    uv = REPO / ".cache" / "uv" / "bin" / "uv"
    if not uv.exists():
        raise SystemExit(f"bench_drift: {uv} is missing; run `make setup` first (it installs the pinned uv)")
    env = {**os.environ, "UV_LINK_MODE": "copy"}
    interpreter = os.environ.get("PYTHON", "python3.11")
    print(f"bench_drift: making {EVIDENTLY_VENV} from {EVIDENTLY_LOCK.name}", file=sys.stderr)
    for command in (
        [uv, "venv", "--quiet", "--allow-existing", "--python", interpreter, EVIDENTLY_VENV],
        [uv, "pip", "sync", "--quiet", "--python", python, EVIDENTLY_LOCK],
        [uv, "pip", "install", "--quiet", "--python", python, "--no-deps", "--editable", REPO],
    ):
        subprocess.run([str(c) for c in command], cwd=REPO, env=env, check=True)
    stamp_file.write_text(stamp + "\n")
    return python


def _child(command: list[str], result: Path) -> dict:
    env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench_drift: {' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return json.loads(result.read_text())


def _drifted(values: dict[str, float | None], threshold: float, *, above: bool) -> list[str]:
    def hit(v: float | None) -> bool:
        return v is not None and v == v and (v >= threshold if above else v < threshold)

    return sorted(name for name, v in values.items() if hit(v))


def _agreement(ours: list[str], theirs: list[str], expected: list[str]) -> dict:
    return {
        "ours": ours,
        "evidently": theirs,
        "agree": ours == theirs,
        "only_ours": sorted(set(ours) - set(theirs)),
        "only_evidently": sorted(set(theirs) - set(ours)),
        "planted_found_by_both": all(c in ours and c in theirs for c in expected),
    }


def _sig(value: float | None) -> float | None:
    return None if value is None or value != value else float(f"{value:.4g}")


def run() -> dict:
    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-drift-"))
    try:
        reference_rows, served = _frames()
        reference_rows.to_parquet(work / "reference.parquet", index=False)
        served.to_parquet(work / "served.parquet", index=False)
        del reference_rows, served
        numeric = [*_numeric_names(), "score"]
        (work / "columns.json").write_text(
            json.dumps({"numeric": numeric, "categorical": _categorical_names(), "repeats": EVIDENTLY_REPEATS})
        )

        ours = _child([str(REPO / ".venv" / ENV / "bin" / "python"), __file__, "ours", str(work)], work / "ours.json")
        evidently_python = _evidently_python()
        theirs = _child(
            [str(evidently_python), str(Path(__file__).with_name("drift_evidently.py")), str(work)],
            work / "evidently.json",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours_s = _median(ours["compare_s"])
    features = ours["features"]
    ev_psi, ev_tests = theirs["runs"]["psi"], theirs["runs"]["ks_chi2"]
    ours_psi = {c: f["psi"] for c, f in features.items()}
    # The score is one more numeric column to Evidently; ours reports only its PSI (no KS p-value).
    ours_p = {c: f["pvalue"] for c, f in features.items() if c != "score"}
    ev_p = {c: v for c, v in ev_tests["values"].items() if c != "score"}
    psi_diff = {c: abs(ours_psi[c] - ev_psi["values"][c]) for c in ours_psi}
    per_column = {
        c: {
            "ours_psi": _sig(ours_psi[c]),
            "evidently_psi": _sig(ev_psi["values"][c]),
            "ours_pvalue": _sig(features[c].get("pvalue")),
            "evidently_pvalue": _sig(ev_tests["values"][c]),
            "ours_missing_rate_change": _sig(features[c].get("missing_rate_change")),
        }
        for c in ours_psi
    }
    psi_s, tests_s = _median(ev_psi["seconds"]), _median(ev_tests["seconds"])
    return {
        "rows": ROWS,
        "reference_rows": REFERENCE_ROWS,
        "columns": NUMERIC + CATEGORICAL,
        "numeric_columns": NUMERIC,
        "categorical_columns": CATEGORICAL,
        "plus_score_column": True,
        "planted_drift": planted(),
        "missing_rate_only_change": MISSING_ONLY,
        "ours": {
            "compare_s": round(ours_s, 3),
            "compare_runs_s": [round(s, 3) for s in ours["compare_s"]],
            "reference_of_s": round(_median(ours["reference_of_s"]), 3),
            "statistics": "PSI (10 reference-decile bins) + KS p-value + Wasserstein per numeric column, PSI + "
            "chi-squared p-value per categorical column, missing-rate change per column, score PSI; one call",
            "peak_rss_mib": ours["peak_rss_mib"],
            "rss_after_loading_data_mib": ours["rss_after_load_mib"],
            "compare_traced_peak_mib": ours["compare_traced_peak_mib"],
            "reference_of_traced_peak_mib": ours["reference_of_traced_peak_mib"],
            "reference_json_kib": ours["reference_json_kib"],
            "load_average_1min_start_end": ours["load_average"],
        },
        "evidently": {
            "version": theirs["version"],
            "psi": {
                "settings": ev_psi["settings"],
                "seconds": round(psi_s, 2),
                "runs_s": [round(s, 2) for s in ev_psi["seconds"]],
                "traced_peak_mib": ev_psi["traced_peak_mib"],
            },
            "ks_chi2": {
                "settings": ev_tests["settings"],
                "seconds": round(tests_s, 2),
                "runs_s": [round(s, 2) for s in ev_tests["seconds"]],
                "traced_peak_mib": ev_tests["traced_peak_mib"],
            },
            "peak_rss_mib": theirs["peak_rss_mib"],
            "rss_after_loading_data_mib": theirs["rss_after_load_mib"],
            "reference_dataset_s": theirs["reference_dataset_s"],
            "load_average_1min_start_end": theirs["load_average"],
        },
        "ratio_evidently_over_ours": {
            "psi": round(psi_s / ours_s, 1),
            "ks_chi2": round(tests_s / ours_s, 1),
            # What Evidently needs for what one compare call gives (less Wasserstein and missing rates).
            "psi_plus_ks_chi2": round((psi_s + tests_s) / ours_s, 1),
        },
        "memory_method": "each side in its own subprocess reading the same Parquet files; peak_rss_mib is "
        "getrusage(RUSAGE_SELF).ru_maxrss at the end (interpreter, libraries, both frames and the work); "
        "*traced_peak_mib is tracemalloc's peak during one further, untimed call",
        "drift_rule": f"PSI >= {PSI_THRESHOLD}; p-value < {P_THRESHOLD}",
        "agreement": {
            "psi": _agreement(
                _drifted(ours_psi, PSI_THRESHOLD, above=True),
                _drifted(ev_psi["values"], PSI_THRESHOLD, above=True),
                planted(),
            ),
            "pvalue": _agreement(
                _drifted(ours_p, P_THRESHOLD, above=False),
                _drifted(ev_p, P_THRESHOLD, above=False),
                [c for c in planted() if c != "score"],
            ),
            "psi_max_abs_difference": round(max(psi_diff.values()), 4),
            "psi_max_abs_difference_undrifted": round(
                max(d for c, d in psi_diff.items() if c not in planted() and c != MISSING_ONLY), 4
            ),
            "psi_median_ratio_evidently_over_ours_planted": round(
                float(np.median([ev_psi["values"][c] / ours_psi[c] for c in planted()])), 2
            ),
        },
        "per_column": per_column,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["ours"]:
    out = Path(sys.argv[2])
    (out / "ours.json").write_text(json.dumps(_ours(out)))

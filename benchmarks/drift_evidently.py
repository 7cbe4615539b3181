"""The Evidently side of bench_drift.py, run by it in .venv/evidently: `python drift_evidently.py WORK_DIR`.

Reads WORK_DIR/reference.parquet, served.parquet and columns.json (which columns are numeric and categorical, and
the repeats), runs `Report([DataDriftPreset(...)])` on the served window against the reference for each
configuration below, and writes WORK_DIR/evidently.json: seconds per run, each column's drift score (PSI, or
the test's p-value), tracemalloc's peak during one further untimed run, and the process's peak RSS.

A run is what monitoring a new window costs: `Dataset.from_pandas` of the served rows plus `Report.run`; the
reference Dataset is built once, outside the timing, as ours builds its Reference once.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import evidently
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

CONFIGURATIONS = {
    "psi": {"method": "psi"},  # every column; numeric bins: Sturges' equal-width bins over both samples
    "ks_chi2": {"num_method": "ks", "cat_method": "chisquare"},
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(work: Path) -> dict:
    columns = json.loads((work / "columns.json").read_text())
    definition = DataDefinition(numerical_columns=columns["numeric"], categorical_columns=columns["categorical"])
    reference_rows = pd.read_parquet(work / "reference.parquet")
    served = pd.read_parquet(work / "served.parquet")
    loaded_rss = _rss_mib()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    reference = Dataset.from_pandas(reference_rows, data_definition=definition)
    reference_dataset_s = time.perf_counter() - started

    def once(settings: dict):
        current = Dataset.from_pandas(served, data_definition=definition)
        return Report([DataDriftPreset(**settings)]).run(current, reference)

    runs = {}
    for name, settings in CONFIGURATIONS.items():
        seconds = []
        for _ in range(columns["repeats"]):
            started = time.perf_counter()
            snapshot = once(settings)
            seconds.append(time.perf_counter() - started)
        tracemalloc.start()
        once(settings)
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        values, used = {}, {}
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config["type"].endswith(":ValueDrift"):
                values[config["column"]] = float(metric["value"])
                used[config["column"]] = (config["method"], config["threshold"])
        runs[name] = {
            "settings": {
                "preset": f"DataDriftPreset({', '.join(f'{k}={v!r}' for k, v in settings.items())})",
                "resolved": sorted({f"{m} threshold {t}" for m, t in used.values()}),
            },
            "seconds": seconds,
            "traced_peak_mib": round(traced / 2**20, 1),
            "values": values,
        }
    return {
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "version": evidently.__version__,
        "pandas": pd.__version__,
        "reference_dataset_s": round(reference_dataset_s, 3),
        "runs": runs,
        "peak_rss_mib": round(_rss_mib(), 1),
        "rss_after_load_mib": round(loaded_rss, 1),
    }


if __name__ == "__main__":
    out = Path(sys.argv[1])
    (out / "evidently.json").write_text(json.dumps(main(out)))

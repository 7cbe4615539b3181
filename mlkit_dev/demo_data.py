"""Batches for the demo and the tests, derived deterministically from the Telco extract.

The second batch is next month's full snapshot: some customers changed (longer tenure, new
charges, a contract upgrade), a few are new, and a handful of rows are broken in each of the
ways a real extract breaks, so the quarantine has something to show.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlkit_dev import REPO, SHARED

TELCO = SHARED / "data" / "telco-customer-churn.csv"
BATCHES = "feature_job.json"  # in a data directory: the feature job's counts per batch, for the report


def record_batches(data: Path, batches: dict) -> None:
    """Write ``{batch name: [BatchReport]}`` to DATA/feature_job.json (the counts the demo prints)."""
    (data / BATCHES).write_text(
        json.dumps({name: [r.as_dict() for r in reports] for name, reports in batches.items()}, indent=2, default=str)
        + "\n"
    )


@dataclass
class SecondBatch:
    path: Path
    changed: set[str] = field(default_factory=set)  # existing customers whose values changed
    new: set[str] = field(default_factory=set)  # customers not in the first batch
    bad: dict[str, str] = field(default_factory=dict)  # what each broken row is, by a label
    rows: int = 0  # data lines in the file, broken ones included


def second_batch(out: Path, source: Path = TELCO, *, changed_fraction: float = 0.05, seed: int = 7) -> SecondBatch:
    """Write next month's snapshot of ``source`` to ``out`` and describe what differs."""
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    batch = SecondBatch(out)

    # Customers with a real bill only, so the changes below stay within the spec's rules.
    candidates = frame.index[frame["tenure"].astype(int) > 0]
    picked = rng.choice(candidates, size=int(len(frame) * changed_fraction), replace=False)
    for i in picked:
        frame.loc[i, "tenure"] = str(int(frame.loc[i, "tenure"]) + 1)
        monthly = round(float(frame.loc[i, "MonthlyCharges"]) * 1.05, 2)
        frame.loc[i, "MonthlyCharges"] = f"{monthly:.2f}"
        frame.loc[i, "TotalCharges"] = f"{float(frame.loc[i, 'TotalCharges']) + monthly:.2f}"
        if frame.loc[i, "Contract"] == "Month-to-month" and rng.random() < 0.3:
            frame.loc[i, "Contract"] = "One year"
    batch.changed = set(frame.loc[picked, "customerID"])

    template = frame.iloc[0].to_dict()
    new_rows = [
        {**template, "customerID": f"NEW-{n:04d}", "tenure": "1", "TotalCharges": template["MonthlyCharges"]}
        for n in range(3)
    ]
    batch.new = {r["customerID"] for r in new_rows}

    bad_rows = [
        ("wrong type", {**template, "customerID": "BAD-TYPE", "tenure": "twelve"}),
        ("unknown category", {**template, "customerID": "BAD-CATEGORY", "Contract": "Three year"}),
        ("missing key", {**template, "customerID": ""}),
        ("out of range", {**template, "customerID": "BAD-RANGE", "MonthlyCharges": "-5"}),
        ("conflicting duplicate (1 of 2)", {**template, "customerID": "BAD-CONFLICT", "tenure": "3"}),
        ("conflicting duplicate (2 of 2)", {**template, "customerID": "BAD-CONFLICT", "tenure": "4"}),
    ]
    batch.bad = {label: row["customerID"] for label, row in bad_rows}
    # An identical copy of a changed customer's row: collapses into one, counted as a duplicate.
    duplicate = frame.loc[picked[0]].to_dict()

    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [*frame.to_dict(orient="records"), *new_rows, *(row for _, row in bad_rows), duplicate]
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(frame.columns))
        writer.writeheader()
        writer.writerows(rows)
        f.write("BAD-SHORT,Female,0,Yes\n")  # a line cut short: wrong number of fields
    batch.bad["malformed line"] = "BAD-SHORT"
    batch.rows = len(rows) + 1
    return batch


def synthetic_batch(out: Path, rows: int, *, versions_of: pd.DataFrame | None = None, seed: int = 0) -> Path:
    """A large valid batch in the Telco shape: ``rows`` customers built by resampling the extract."""
    frame = pd.read_csv(TELCO, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    sample = frame.iloc[rng.integers(0, len(frame), size=rows)].reset_index(drop=True)
    sample["customerID"] = [f"SYN-{i:08d}" for i in range(rows)]
    tenure = rng.integers(1, 72, size=rows)
    monthly = np.round(rng.uniform(18, 120, size=rows), 2)
    sample["tenure"] = tenure.astype(str)
    sample["MonthlyCharges"] = [f"{m:.2f}" for m in monthly]
    sample["TotalCharges"] = [f"{t * m:.2f}" for t, m in zip(tenure, monthly, strict=True)]
    out.parent.mkdir(parents=True, exist_ok=True)
    sample.to_csv(out, index=False)
    return out


def telco_matrix():
    """Telco as feature vectors and labels through the spec's validation and a transformation fitted
    in pandas: the feature job's result without Spark, for benchmarks and serving fixtures.
    Returns (features, labels, spec, transform)."""
    from workloads.common.specs import load_spec
    from workloads.common.transform import FittedTransform
    from workloads.common.validation import validate_frame

    spec = load_spec(REPO / "workloads" / "features" / "specs" / "customer_features.yaml")
    raw = pd.read_csv(TELCO, dtype=str, keep_default_na=False)
    typed, _ = validate_frame(spec, raw)
    numeric = [c.name for c in spec.columns if c.type in ("int", "double")]
    stats = {
        n: {"mean": typed[n].mean(), "std": typed[n].std(ddof=0), "min": typed[n].min(), "max": typed[n].max()}
        for n in numeric
    }
    transform = FittedTransform.fit(spec, stats)
    return transform.apply(typed), (raw["Churn"] == "Yes").to_numpy(np.float32), spec, transform

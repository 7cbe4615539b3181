"""Training throughput (samples/s) on this machine's CPU: the Telco set and a 1M-row synthetic set.

On a GPU machine the same code runs on CUDA with bfloat16 autocast; nothing here depends on one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ENV = "workloads"


def _telco_features() -> tuple[np.ndarray, np.ndarray]:
    """Telco through the same validation and transformation the feature job uses, without Spark."""
    from pathlib import Path

    from workloads.common.specs import load_spec
    from workloads.common.transform import FittedTransform
    from workloads.common.validation import validate_frame
    from workloads.features.demo_data import TELCO

    spec = load_spec(
        Path(__file__).resolve().parents[1] / "workloads" / "features" / "specs" / "customer_features.yaml"
    )
    raw = pd.read_csv(TELCO, dtype=str, keep_default_na=False)
    typed, _ = validate_frame(spec, raw)
    stats = {
        c.name: {
            "mean": typed[c.name].mean(),
            "std": typed[c.name].std(ddof=0),
            "min": typed[c.name].min(),
            "max": typed[c.name].max(),
        }
        for c in spec.columns
        if c.type in ("int", "double")
    }
    x = FittedTransform.fit(spec, stats).apply(typed)
    return x, (raw["Churn"] == "Yes").to_numpy(np.float32)


def _throughput(x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int) -> dict:
    from workloads.training.config import TrainConfig
    from workloads.training.model import fit

    config = TrainConfig(
        model_name="bench",
        label_table="l",
        label="y",
        feature_tables=["f"],
        epochs=epochs,
        patience=epochs,
        batch_size=batch_size,
    )
    split = int(len(x) * 0.85)
    result = fit(config, (x[:split], y[:split]), (x[split:], y[split:]))
    return {
        "samples_per_s": round(result.samples_per_second),
        "device": result.device,
        "rows": len(x),
        "epochs": len(result.history),
        "batch_size": batch_size,
    }


def run() -> dict:
    x, y = _telco_features()
    telco = _throughput(x, y, epochs=10, batch_size=128)
    rng = np.random.default_rng(0)
    big = rng.standard_normal((1_000_000, x.shape[1]), dtype=np.float32)
    signal = big @ rng.standard_normal(x.shape[1]).astype(np.float32)
    labels = (signal + rng.standard_normal(len(big)).astype(np.float32) > 0).astype(np.float32)
    synthetic = _throughput(big, labels, epochs=2, batch_size=1024)
    return {"telco": telco, "synthetic_1m": synthetic}

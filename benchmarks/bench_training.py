"""Training throughput (samples/s) on this machine's CPU: the Telco set and a 1M-row synthetic set.

On a GPU machine the same code runs on CUDA with bfloat16 autocast; nothing here depends on one.
"""

from __future__ import annotations

import numpy as np

ENV = "workloads"


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
    from mlkit_dev.demo_data import telco_matrix

    x, y, _, _ = telco_matrix()
    telco = _throughput(x, y, epochs=10, batch_size=128)
    rng = np.random.default_rng(0)
    big = rng.standard_normal((1_000_000, x.shape[1]), dtype=np.float32)
    signal = big @ rng.standard_normal(x.shape[1]).astype(np.float32)
    labels = (signal + rng.standard_normal(len(big)).astype(np.float32) > 0).astype(np.float32)
    synthetic = _throughput(big, labels, epochs=2, batch_size=1024)
    return {"telco": telco, "synthetic_1m": synthetic}

"""Write a small real model in the layout of a training run's artifacts, for serving tests and local trials.

Runs in the workloads environment (it trains with torch): python -m workloads.serving.fixture OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def write_fixture(out: Path, epochs: int = 3) -> Path:
    from workloads.features.demo_data import telco_matrix
    from workloads.training.config import TrainConfig
    from workloads.training.model import fit
    from workloads.training.train import export_onnx

    x, y, spec, transform = telco_matrix()
    config = TrainConfig(
        model_name="churn-classifier",
        label_table="churn_labels",
        label="Churn",
        feature_tables=[spec.name],
        epochs=epochs,
        patience=epochs,
    )
    split = int(len(x) * 0.85)
    result = fit(config, (x[:split], y[:split]), (x[split:], y[split:]))
    (out / "model").mkdir(parents=True, exist_ok=True)
    (out / "model" / "model.onnx").write_bytes(export_onnx(result.model, x.shape[1]))
    tables = out / "features" / spec.name
    tables.mkdir(parents=True, exist_ok=True)
    (tables / "spec.json").write_text(spec.model_dump_json())
    (tables / "transform.json").write_text(transform.to_json())
    (out / "training").mkdir(exist_ok=True)
    (out / "training" / "config.json").write_text(config.model_dump_json())
    (out / "meta.json").write_text(json.dumps({"name": config.model_name, "version": "fixture-1"}))
    return out


if __name__ == "__main__":
    print(write_fixture(Path(sys.argv[1])))

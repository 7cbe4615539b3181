"""A small real model as a model bundle (workloads/common/bundle.py), and example requests for it.

Serving tests, `make bench` and local trials use them. write_fixture runs in the workloads
environment (it trains with torch): python -m mlkit_dev.fixture OUT_DIR [TRACKING_URI]
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_fixture(out: Path, epochs: int = 3, *, register: str | None = None) -> Path:
    """The model's artifacts under ``out``; with ``register`` (a tracking URI), also a registered champion.

    Registration goes through the training code's own logging, so the registry holds what a real
    training run leaves there (run artifacts plus a logged ONNX model).
    """
    from mlkit_dev.demo_data import telco_matrix
    from workloads.common.bundle import FeatureTable, ModelBundle
    from workloads.training.config import TrainConfig
    from workloads.training.model import fit, predict
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
    onnx_bytes = export_onnx(result.model, x.shape[1])
    ModelBundle.write(
        out,
        onnx=onnx_bytes,
        config=config.model_dump(mode="json"),
        tables=[FeatureTable(spec.name, spec, transform)],
        name=config.model_name,
        version="fixture-1",
    )
    if register:
        import mlflow

        from workloads.training.train import CHAMPION, log_serving_inputs, register_onnx, use_experiment

        use_experiment(config.model_name, register)
        with mlflow.start_run():
            log_serving_inputs(config, {spec.name: (spec, transform)})
            info = register_onnx(onnx_bytes, config.model_name, x[:5], predict(result.model, x[:5]))
        mlflow.MlflowClient().set_registered_model_alias(config.model_name, CHAMPION, info.registered_model_version)
    return out


def example_rows(count: int, start: int = 0, *, key: bool = False) -> list[dict]:
    """Telco customers as a client would send them: named features, numbers as JSON numbers, no label.

    With ``key``, each row carries its customerID too (the model accepts and ignores the entity key).
    """
    import pandas as pd

    from mlkit_dev.demo_data import TELCO

    frame = pd.read_csv(TELCO, dtype=str, keep_default_na=False).iloc[start : start + count]
    rows = []
    for record in frame.drop(columns=["Churn"] if key else ["customerID", "Churn"]).to_dict(orient="records"):
        for name in ("tenure", "SeniorCitizen"):
            record[name] = int(record[name])
        for name in ("MonthlyCharges", "TotalCharges"):
            record[name] = float(record[name]) if record[name].strip() else 0.0  # blank for new customers
        rows.append(record)
    return rows


if __name__ == "__main__":
    # OUT_DIR [TRACKING_URI]: with a tracking URI, the model is also registered there as the champion.
    print(write_fixture(Path(sys.argv[1]), register=sys.argv[2] if len(sys.argv) > 2 else None))

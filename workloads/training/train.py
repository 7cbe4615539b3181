"""One training run: build the point-in-time set, fit, evaluate, export, track in MLflow, register, gate.

Lineage tags on every run: the feature and label tables with the Hudi instants read, the feature
store, the code version and the row counts; retraining from those tags reproduces the run.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from workloads.common.bundle import CONFIG as BUNDLE_CONFIG
from workloads.common.bundle import REFERENCE, FeatureTable, ModelBundle
from workloads.common.featurestore import FeatureStore
from workloads.common.settings import env
from workloads.common.specs import FeatureSpec
from workloads.common.transform import FittedTransform
from workloads.training.config import TrainConfig
from workloads.training.data import TrainingSet, build_training_set
from workloads.training.model import FitResult, Probabilities, evaluate, fit, predict

CHAMPION = "champion"
TEST_PREDICTIONS = "evaluation/test_predictions.csv"  # the test split's labels and scores, for reports
PARITY_TOLERANCE = 1e-4
REPO = Path(__file__).resolve().parents[2]


class ExportError(Exception):
    pass


@dataclass
class TrainingReport:
    run_id: str
    model_name: str
    model_version: str
    promoted: bool
    promotion: str
    test: dict[str, float]
    instants: dict[str, str]
    rows: dict[str, int]
    device: str
    best_epoch: int
    samples_per_second: float
    champion_test: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def configure_tracking(tracking_uri: str | None = None) -> str:
    """MLFLOW_TRACKING_URI in the cluster; a SQLite file under data/mlflow on this machine."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri or env("MLFLOW_TRACKING_URI") or f"sqlite:///{local_mlflow_dir() / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def local_mlflow_dir() -> Path:
    return Path(env("MLKIT_DATA_DIR") or REPO / "data") / "mlflow"


def use_experiment(name: str, tracking_uri: str | None = None) -> None:
    """Track into the experiment named after the model; on this machine its artifacts go under data/mlflow."""
    import mlflow

    uri = configure_tracking(tracking_uri)
    if mlflow.get_experiment_by_name(name) is None:
        local = uri.startswith(("sqlite:", "file:"))
        mlflow.create_experiment(name, artifact_location=local_artifacts(uri) if local else None)
    mlflow.set_experiment(name)


def local_artifacts(tracking_uri: str) -> str:
    """Beside a SQLite store's file; the default store's under data/mlflow."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return (local_mlflow_dir() / "artifacts").resolve().as_uri()


def log_serving_inputs(config: TrainConfig, tables: dict[str, tuple[FeatureSpec, FittedTransform]]) -> None:
    """What serving needs beside the model (the bundle's config and feature files), as run artifacts."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlkit-bundle-") as staging:
        ModelBundle.write_inputs(
            Path(staging),
            config.model_dump(mode="json"),
            [FeatureTable(name, spec, transform) for name, (spec, transform) in tables.items()],
        )
        mlflow.log_artifacts(staging)


def log_reference(config: TrainConfig, data: TrainingSet, version: str, test_scores: np.ndarray) -> None:
    """Monitoring's reference, from the training split's raw inputs and the test split's scores, in the bundle."""
    import mlflow

    from workloads.monitoring.drift import Reference

    reference = Reference.of(
        data.inputs[data.split == "train"],
        [data.tables[t].spec for t in config.feature_tables],
        test_scores,
        model=config.model_name,
        version=version,
        instants=data.instants,
    )
    mlflow.log_text(reference.model_dump_json(), REFERENCE)


def train(
    store: FeatureStore, config: TrainConfig, *, tracking_uri: str | None = None, tags: dict[str, str] | None = None
) -> TrainingReport:
    """Train, evaluate, export and register; ``tags`` go on the run beside its lineage (e.g. the alert that started it).

    The steps are the functions below, which the training pipeline (workloads/pipeline) runs one per task."""
    import mlflow

    data = build_training_set(store, config)  # every data problem fails here, before a run exists
    use_experiment(config.model_name, tracking_uri)
    rows = split_rows(data)

    with mlflow.start_run() as run:
        start_record(store.root, config, data, tags)
        result = fit(config, data.part("train"), data.part("validation"), on_epoch=log_epoch)
        x_test, y_test = data.part("test")
        evaluation = evaluate_model(result.model, export_onnx(result.model, data.features.shape[1]), x_test, y_test)
        log_evaluation(evaluation, result)
        check_parity(evaluation.parity)
        version = register_model(result, evaluation, config, data)
        challenge = challenge_champion(config.model_name, x_test, y_test, evaluation.test["roc_auc"])
        promoted, reason = promote(config.model_name, version, challenge)
        log_decision(reason, challenge.champion_test)

    return TrainingReport(
        run.info.run_id,
        config.model_name,
        version,
        promoted,
        reason,
        evaluation.test,
        data.instants,
        rows,
        result.device,
        result.best_epoch,
        round(result.samples_per_second),
        challenge.champion_test,
    )


# --- the steps of a run, shared by train() and the pipeline's tasks -----------------------------------


@dataclass
class Evaluation:
    """The model on the test split: its metrics and scores, and how far its ONNX export is from it."""

    test: dict[str, float]
    scores: np.ndarray
    onnx: bytes
    parity: float


@dataclass
class Challenge:
    """The gate's decision against the champion of the moment, before any alias moves."""

    promote: bool
    reason: str
    champion_version: str | None = None  # None: there was no champion
    champion_test: dict[str, float] = field(default_factory=dict)


def split_rows(data: TrainingSet) -> dict[str, int]:
    return {part: int((data.split == part).sum()) for part in ("train", "validation", "test")}


def start_record(feature_store: str, config: TrainConfig, data: TrainingSet, tags: dict[str, str] | None) -> None:
    """Into the active run: the caller's tags and the lineage, the config as params, what serving needs."""
    import mlflow

    mlflow.set_tags({**(tags or {}), **lineage_tags(feature_store, config, data, split_rows(data))})
    mlflow.log_params(_flat(config.model_dump(mode="json")))
    log_serving_inputs(
        config, {table: (data.tables[table].spec, data.tables[table].transform) for table in config.feature_tables}
    )


def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics(metrics, step=epoch)


def evaluate_model(model, onnx_bytes: bytes, x_test: np.ndarray, y_test: np.ndarray) -> Evaluation:
    scores = predict(model, x_test)
    return Evaluation(evaluate(y_test, scores), scores, onnx_bytes, onnx_parity(onnx_bytes, model, x_test))


def log_evaluation(evaluation: Evaluation, result: FitResult) -> None:
    import mlflow

    mlflow.log_metrics(
        {f"test_{k}": v for k, v in evaluation.test.items()}
        | {"best_epoch": result.best_epoch, "train_samples_per_second": result.samples_per_second}
    )
    mlflow.log_metric("onnx_max_abs_diff", evaluation.parity)


def check_parity(parity: float) -> None:
    if parity > PARITY_TOLERANCE:
        raise ExportError(f"the ONNX export differs from the PyTorch model by {parity:.2e} (> {PARITY_TOLERANCE:g})")


def register_model(result: FitResult, evaluation: Evaluation, config: TrainConfig, data: TrainingSet) -> str:
    """Log both models and monitoring's reference into the active run; the ONNX one becomes a new version."""
    info = log_models(result, evaluation.onnx, config, data)
    version = str(info.registered_model_version)
    log_reference(config, data, version, evaluation.scores)
    log_test_predictions(data.keys[data.split == "test"], data.part("test")[1], evaluation.scores)
    return version


def log_test_predictions(keys: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> None:
    """The test split's keys, labels and scores (a few hundred rows): curves without rerunning the model, and two
    versions compared on the rows their test splits share."""
    import mlflow
    import pandas as pd

    frame = pd.DataFrame({"key": keys, "label": labels.astype(int), "score": scores})
    mlflow.log_text(frame.to_csv(index=False, float_format="%.6f"), TEST_PREDICTIONS)


def log_decision(reason: str, champion_test: dict[str, float]) -> None:
    import mlflow

    mlflow.set_tag("mlkit.promotion", reason)
    if champion_test:
        mlflow.log_metrics({f"champion_test_{k}": v for k, v in champion_test.items()})


def lineage_tags(feature_store: str, config: TrainConfig, data: TrainingSet, rows: dict[str, int]) -> dict[str, str]:
    return {
        "mlkit.feature_store": feature_store,
        "mlkit.feature_tables": json.dumps(config.feature_tables),
        "mlkit.label_table": config.label_table,
        "mlkit.instants": json.dumps(data.instants, sort_keys=True),
        "mlkit.code_version": code_version(),
        "mlkit.training_rows": str(sum(rows.values())),
        "mlkit.split_rows": json.dumps(rows),
        "mlkit.rows_without_features": str(data.dropped_without_features),
    }


def code_version() -> str:
    if version := env("MLKIT_CODE_VERSION"):
        return version
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return f"{sha}{'-dirty' if dirty else ''}" if sha else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def export_onnx(model, inputs: int) -> bytes:
    import torch

    buffer = io.BytesIO()
    example = torch.zeros(2, inputs)
    # The TorchScript exporter: an MLP needs nothing the torch.export-based one adds, and it needs no onnxscript.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Probabilities(model).eval(),
            (example,),
            buffer,
            input_names=["features"],
            output_names=["probability"],
            dynamic_axes={"features": {0: "batch"}, "probability": {0: "batch"}},
            dynamo=False,
        )
    return buffer.getvalue()


def onnx_parity(onnx_bytes: bytes, model, features: np.ndarray) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    served = session.run(None, {"features": features})[0].squeeze(1)
    return float(np.max(np.abs(served - predict(model, features))))


def log_models(result: FitResult, onnx_bytes: bytes, config: TrainConfig, data: TrainingSet):
    """The PyTorch model for retraining and analysis; the ONNX model, registered, for serving."""
    import mlflow
    import torch

    mlflow.pytorch.log_model(
        Probabilities(result.model),
        name="pytorch",
        input_example=data.features[:5],
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    return register_onnx(onnx_bytes, config.model_name, data.features[:5], predict(result.model, data.features[:5]))


def register_onnx(onnx_bytes: bytes, model_name: str, example: np.ndarray, predicted: np.ndarray):
    """Log the ONNX model into the active run and register it as a new version of the model."""
    import mlflow
    import onnx
    import onnxruntime

    return mlflow.onnx.log_model(
        onnx.load_from_string(onnx_bytes),
        name="model",
        registered_model_name=model_name,
        signature=mlflow.models.infer_signature(example, predicted),
        pip_requirements=[f"onnxruntime=={onnxruntime.__version__}", f"onnx=={onnx.__version__}"],
        onnx_execution_providers=["CPUExecutionProvider"],  # the serving image is CPU-only
    )


def promote_if_better(
    name: str, version: str, x_test: np.ndarray, y_test: np.ndarray, new_auc: float
) -> tuple[bool, str, dict[str, float]]:
    """Give the new version the champion alias only if it beats the champion on this same test set."""
    challenge = challenge_champion(name, x_test, y_test, new_auc)
    promoted, reason = promote(name, version, challenge)
    return promoted, reason, challenge.champion_test


def current_champion(name: str):
    """The version holding the champion alias, or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def challenge_champion(name: str, x_test: np.ndarray, y_test: np.ndarray, new_auc: float) -> Challenge:
    """Whether a model of test ROC AUC ``new_auc`` beats the champion, whose ONNX model is scored on this test set."""
    import mlflow
    import onnxruntime

    current = current_champion(name)
    if current is None:
        return Challenge(True, "promoted: there was no champion")
    champion = onnxruntime.InferenceSession(
        mlflow.onnx.load_model(f"models:/{name}/{current.version}").SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    expected = champion.get_inputs()[0].shape[1]
    if expected != x_test.shape[1]:
        return Challenge(
            False,
            f"not promoted: champion v{current.version} takes {expected} features, this model {x_test.shape[1]}; compare and promote by hand",
            str(current.version),
        )
    champion_test = evaluate(y_test, champion.run(None, {"features": x_test})[0].squeeze(1))
    if new_auc > champion_test["roc_auc"]:
        reason = (
            f"promoted: test ROC AUC {new_auc:.4f} beats champion v{current.version} at {champion_test['roc_auc']:.4f}"
        )
        return Challenge(True, reason, str(current.version), champion_test)
    reason = f"not promoted: test ROC AUC {new_auc:.4f} does not beat champion v{current.version} at {champion_test['roc_auc']:.4f}"
    return Challenge(False, reason, str(current.version), champion_test)


def promote(name: str, version: str, challenge: Challenge) -> tuple[bool, str]:
    """Move the champion alias to ``version`` if the challenge says so and the champion is still the one it beat."""
    import mlflow

    if not challenge.promote:
        return False, challenge.reason
    current = current_champion(name)
    now = str(current.version) if current else None
    if now != challenge.champion_version:
        # Another run moved the alias after this one was compared: its verdict is about a champion that is gone.
        was = f"v{challenge.champion_version}" if challenge.champion_version else "no champion"
        return (
            False,
            f"not promoted: the champion is v{now} now, not {was} as when this model was evaluated; evaluate it again",
        )
    mlflow.MlflowClient().set_registered_model_alias(name, CHAMPION, version)
    return True, challenge.reason


def config_from_run(run_id: str, tracking_uri: str | None = None) -> tuple[TrainConfig, str]:
    """The config and feature store of a past run, pinned to the instants it read."""
    import mlflow

    configure_tracking(tracking_uri)
    run = mlflow.get_run(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=BUNDLE_CONFIG, dst_path=tmp)
        recorded = json.loads(Path(path).read_text())
    recorded["as_of"] = json.loads(run.data.tags["mlkit.instants"])
    return TrainConfig.model_validate(recorded), run.data.tags["mlkit.feature_store"]


def _flat(values: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return out

"""What the pipeline's tasks hand each other, each layout written and read here only.

    training set (Dataset)   arrays.npz (features, labels, keys, split), inputs.parquet (the raw feature
                             columns, monitoring's reference), set.json (instants, feature names, rows
                             without features, the feature store, each table's pinned commit)
    split part (Dataset)     part.npz (features, labels, keys): one of train / validation / test
    model (Model)            pytorch.pt (the best epoch's state dict), model.onnx (its export), fit.json
                             (inputs, best epoch, per-epoch history, device, throughput)
    evaluation (Artifact)    evaluation.json (test metrics, ONNX parity, the gate's challenge), scores.npy

A task's artifact path is a directory it creates; KFP uploads it whole to the pipeline root in the cluster.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where used: a task loads torch only if it handles a model
    from workloads.training.config import TrainConfig
    from workloads.training.data import TrainingSet
    from workloads.training.model import FitResult
    from workloads.training.train import Challenge, Evaluation


def _dir(path: str) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_training_set(path: str, data: TrainingSet, feature_store: str) -> None:
    directory = _dir(path)
    # Fixed-width strings, not object arrays: the reader loads without pickle.
    keys, split = data.keys.astype(str), data.split.astype(str)
    np.savez(directory / "arrays.npz", features=data.features, labels=data.labels, keys=keys, split=split)
    if data.inputs is not None:
        data.inputs.to_parquet(directory / "inputs.parquet", index=False)
    about = {
        "feature_store": feature_store,
        "instants": data.instants,
        "feature_names": data.feature_names,
        "dropped_without_features": data.dropped_without_features,
        "tables": {t: {"instant": s.instant, "metadata": s.commit.metadata} for t, s in data.tables.items()},
    }
    (directory / "set.json").write_text(json.dumps(about, indent=2))


def load_training_set(path: str) -> tuple[TrainingSet, str]:
    """The set and the feature store it was read from."""
    import pandas as pd

    from workloads.common.featurestore import Commit, TableSnapshot
    from workloads.training.data import TrainingSet

    directory = Path(path)
    arrays = np.load(directory / "arrays.npz")
    about = json.loads((directory / "set.json").read_text())
    inputs = directory / "inputs.parquet"
    tables = {t: TableSnapshot(t, Commit(c["instant"], c["metadata"])) for t, c in about["tables"].items()}
    data = TrainingSet(
        arrays["features"],
        arrays["labels"],
        arrays["keys"],
        arrays["split"],
        about["instants"],
        about["feature_names"],
        about["dropped_without_features"],
        tables,
        pd.read_parquet(inputs) if inputs.exists() else None,
    )
    return data, about["feature_store"]


def save_part(path: str, data: TrainingSet, part: str) -> int:
    mask = data.split == part
    keys = data.keys[mask].astype(str)
    np.savez(_dir(path) / "part.npz", features=data.features[mask], labels=data.labels[mask], keys=keys)
    return int(mask.sum())


def load_part(path: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = np.load(Path(path) / "part.npz")
    return arrays["features"], arrays["labels"]


def save_model(path: str, result: FitResult, onnx_bytes: bytes, inputs: int) -> None:
    import torch

    directory = _dir(path)
    torch.save(result.model.state_dict(), directory / "pytorch.pt")
    (directory / "model.onnx").write_bytes(onnx_bytes)
    about = {
        "inputs": inputs,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "device": result.device,
        "samples_per_second": result.samples_per_second,
    }
    (directory / "fit.json").write_text(json.dumps(about, indent=2))


def load_model(path: str, config: TrainConfig) -> tuple[FitResult, bytes]:
    """The fit (its model rebuilt from the config and the saved weights, on the CPU, in eval mode) and its export."""
    import torch

    from workloads.training.model import FitResult, build_model

    directory = Path(path)
    about = json.loads((directory / "fit.json").read_text())
    model = build_model(about["inputs"], config)
    model.load_state_dict(torch.load(directory / "pytorch.pt", weights_only=True))
    result = FitResult(
        model.eval(), about["best_epoch"], about["history"], about["device"], about["samples_per_second"]
    )
    return result, (directory / "model.onnx").read_bytes()


def save_evaluation(path: str, evaluation: Evaluation, challenge: Challenge) -> None:
    directory = _dir(path)
    np.save(directory / "scores.npy", evaluation.scores)
    about = {"test": evaluation.test, "parity": evaluation.parity, "challenge": asdict(challenge)}
    (directory / "evaluation.json").write_text(json.dumps(about, indent=2))


def load_evaluation(path: str, onnx_bytes: bytes) -> tuple[Evaluation, Challenge]:
    from workloads.training.train import Challenge, Evaluation

    directory = Path(path)
    about = json.loads((directory / "evaluation.json").read_text())
    evaluation = Evaluation(about["test"], np.load(directory / "scores.npy"), onnx_bytes, about["parity"])
    return evaluation, Challenge(**about["challenge"])

"""A tabular classifier in PyTorch: an MLP over the feature vectors, early stopping on validation loss.

CPU by default; CUDA when present, with bfloat16 autocast there. Seeds fixed, deterministic
algorithms on, so the same data and config give the same model on the same hardware.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, average_precision_score, brier_score_loss, roc_auc_score
from torch import nn

from workloads.training.config import TrainConfig


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.use_deterministic_algorithms(True)


def build_model(inputs: int, config: TrainConfig) -> nn.Module:
    layers: list[nn.Module] = []
    width = inputs
    for hidden in config.model.hidden_layers:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.model.dropout)]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class Probabilities(nn.Module):
    """The classifier with its sigmoid: what is exported and served."""

    def __init__(self, logits: nn.Module):
        super().__init__()
        self.logits = logits

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features))


@dataclass
class FitResult:
    model: nn.Module  # the best epoch's weights, on the CPU, in eval mode
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"
    samples_per_second: float = 0.0


def fit(
    config: TrainConfig,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    on_epoch: Callable[[int, dict], None] | None = None,
) -> FitResult:
    import time

    seed_everything(config.seed)
    run_on = device()
    x_train, y_train = (torch.from_numpy(a) for a in train)
    x_val, y_val = (torch.from_numpy(a).to(run_on) for a in validation)
    model = build_model(x_train.shape[1], config).to(run_on)
    positives = float(y_train.sum())
    pos_weight = torch.tensor((len(y_train) - positives) / positives if config.class_weighting else 1.0, device=run_on)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x_train, y_train),
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
    )
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if run_on.type == "cuda"
        else torch.autocast(device_type="cpu", enabled=False)
    )

    best, best_loss, best_epoch, stale, history, seen, busy = None, float("inf"), 0, 0, [], 0, 0.0
    for epoch in range(1, config.epochs + 1):
        model.train()
        started, total = time.perf_counter(), 0.0
        for xb, yb in loader:
            xb, yb = xb.to(run_on, non_blocking=True), yb.to(run_on, non_blocking=True)
            with autocast:
                loss = loss_fn(model(xb).squeeze(1).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(xb)
        busy += time.perf_counter() - started
        seen += len(x_train)
        model.eval()
        with torch.no_grad(), autocast:
            val_logits = model(x_val).squeeze(1).float()
        val_loss = float(nn.functional.binary_cross_entropy_with_logits(val_logits, y_val))
        val_auc = float(roc_auc_score(y_val.cpu().numpy(), val_logits.cpu().numpy()))
        metrics = {"train_loss": total / len(x_train), "val_loss": val_loss, "val_roc_auc": val_auc}
        history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        if val_loss < best_loss - 1e-6:
            best, best_loss, best_epoch, stale = copy.deepcopy(model.state_dict()), val_loss, epoch, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best)
    return FitResult(model.cpu().eval(), best_epoch, history, run_on.type, seen / busy if busy else 0.0)


def predict(model: nn.Module, features: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return Probabilities(model).eval()(torch.from_numpy(features)).squeeze(1).numpy()


def evaluate(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Ranking (ROC AUC, PR AUC), accuracy at 0.5, and calibration (Brier score, expected calibration error)."""
    observed, predicted = calibration_curve(labels, probabilities, n_bins=10, strategy="quantile")
    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "accuracy": float(accuracy_score(labels, probabilities >= 0.5)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "ece": float(np.mean(np.abs(observed - predicted))),
    }

"""The point-in-time training set: labels joined to feature tables as of recorded instants, split deterministically."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workloads.common.featurestore import FeatureStore, TableSnapshot
from workloads.training.config import TrainConfig


class TrainingDataError(Exception):
    """The training set cannot be trained on; raised before any training starts."""


@dataclass
class TrainingSet:
    features: np.ndarray  # float32, one row per labelled entity
    labels: np.ndarray  # float32, 0/1
    keys: np.ndarray  # entity keys, for the split and for tracing a row back
    split: np.ndarray  # "train" / "validation" / "test"
    instants: dict[str, str]  # the table instants it was read at: its lineage
    feature_names: list[str] = field(default_factory=list)
    dropped_without_features: int = 0
    tables: dict[str, TableSnapshot] = field(default_factory=dict)  # each table as pinned for this set
    inputs: pd.DataFrame | None = None  # the raw feature columns, as requests carry them (monitoring's reference)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        mask = self.split == name
        return self.features[mask], self.labels[mask]


def build_training_set(store: FeatureStore, config: TrainConfig) -> TrainingSet:
    # Pin every table once, first: a missing table or instant fails here, naming it, and nothing after
    # this reads a timeline again.
    pinned = store.snapshot({t: config.as_of.get(t) for t in [config.label_table, *config.feature_tables]})
    instants = {t: p.instant for t, p in pinned.items()}
    label_table = pinned[config.label_table]
    key = label_table.spec.entity.key
    labels = store.latest(config.label_table, as_of=label_table)
    if labels.empty:
        raise TrainingDataError(f"label table {config.label_table} has no rows as of {label_table.instant}")
    if config.label not in labels.columns:
        raise TrainingDataError(
            f"label table {config.label_table} has no column {config.label!r} (it has {sorted(labels.columns)})"
        )
    joined = store.point_in_time_join(
        labels[[key, "event_time", config.label]],
        {t: pinned[t] for t in config.feature_tables},
        entity_key=key,
        timestamp="event_time",
    ).frame
    vectors = [f"{t}__features" for t in config.feature_tables]
    present = joined[vectors].notna().all(axis=1)
    dropped = int((~present).sum())
    joined = joined[present]
    if joined.empty:
        raise TrainingDataError(
            f"no label row of {config.label_table} has feature values at its time in {config.feature_tables}"
        )
    features = np.hstack([np.stack(joined[v].to_numpy()).astype(np.float32) for v in vectors])
    bad = ~np.isfinite(features)
    if bad.any():
        names = feature_names(config, pinned)
        columns = sorted({names[c] for c in np.nonzero(bad)[1]})
        raise TrainingDataError(
            f"{int(bad.any(axis=1).sum())} rows have NaN or infinite features (in {columns}); fix the feature job before training"
        )
    y = joined[config.label]
    if y.isna().any():
        raise TrainingDataError(f"{int(y.isna().sum())} rows have no value for label {config.label!r}")
    y = y.astype(float).to_numpy(np.float32)
    classes = np.unique(y)
    if len(classes) < 2:
        raise TrainingDataError(f"label {config.label!r} has a single class ({classes.tolist()}): nothing to learn")
    keys = joined[key].astype(str).to_numpy()
    split = np.array([_bucket(k, config.split.validation, config.split.test) for k in keys])
    for part in ("train", "validation", "test"):
        if len(np.unique(y[split == part])) < 2:
            raise TrainingDataError(
                f"the {part} split has a single class; there are too few rows ({len(y)}) for the split {config.split}"
            )
    inputs = pd.DataFrame(
        {c.name: joined[f"{t}__{c.name}"].to_numpy() for t in config.feature_tables for c in pinned[t].spec.columns}
    )
    return TrainingSet(features, y, keys, split, instants, feature_names(config, pinned), dropped, pinned, inputs)


def feature_names(config: TrainConfig, pinned: dict[str, TableSnapshot]) -> list[str]:
    return [f"{t}.{n}" for t in config.feature_tables for n in pinned[t].transform.feature_names]


def _bucket(key: str, validation: float, test: float) -> str:
    """A key's split from its hash: stable across runs and as new entities arrive."""
    position = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if position < test else "validation" if position < test + validation else "train"

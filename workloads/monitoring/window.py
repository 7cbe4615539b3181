"""One window of a served model's request log: the rows it predicted and the labels fed back, checked record by record.

The request log (workloads/serving/requestlog.py) writes JSON-lines objects named <day>/<HHMMSS>-<id>.jsonl by the
time they were flushed, so a window lists only the days it spans and skips objects flushed before it opens.
A record that cannot be compared is counted under a reason and skipped, never fatal:

    malformed        not JSON, not an object, or no usable time, inputs or score
    other_model      another registered model's record (a shared log prefix)
    other_version    another version of this model (a rollout in the window)
    missing_feature  a prediction without one of the reference's features (a null value is a missing value, kept)
    outside_window   logged before or after the window
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from workloads.common.storage import StorePath


@dataclass(frozen=True)
class Window:
    inputs: pd.DataFrame  # one row per predicted row, the reference's features as columns
    scores: np.ndarray
    labels: np.ndarray  # feedback: the truth, and the score the model gives the same inputs
    label_scores: np.ndarray
    skipped: dict[str, int]
    objects: int  # request-log objects read


def read_window(
    log: StorePath, model: str, version: str, features: list[str], start: datetime, end: datetime
) -> Window:
    rows, scores, labels, label_scores = [], [], [], []
    skipped: Counter[str] = Counter()
    names = _objects_in(log, start, end)
    for name in names:
        for line in (log / name).read_bytes().splitlines():
            reason = _take(line, model, version, features, start, end, rows, scores, labels, label_scores)
            if reason:
                skipped[reason] += 1
    inputs = pd.DataFrame(rows, columns=features)
    return Window(
        inputs,
        np.asarray(scores, float),
        np.asarray(labels, float),
        np.asarray(label_scores, float),
        dict(skipped),
        len(names),
    )


def _objects_in(log: StorePath, start: datetime, end: datetime) -> list[str]:
    """Objects of the days the window spans, flushed at or after it opened (a record precedes its flush)."""
    names = []
    day = start.date()
    while day <= end.date():
        for name in (log / f"{day:%Y-%m-%d}").files():
            flushed = name.partition("-")[0]
            if day > start.date() or flushed >= f"{start:%H%M%S}":
                names.append(f"{day:%Y-%m-%d}/{name}")
        day += timedelta(days=1)
    return names


def _take(line, model, version, features, start, end, rows, scores, labels, label_scores) -> str | None:
    """Append one record's rows; the reason it was skipped otherwise."""
    try:
        record = json.loads(line)
        time = datetime.fromisoformat(record["time"])
    except (ValueError, TypeError, KeyError):
        return "malformed"
    if not isinstance(record, dict):
        return "malformed"
    if record.get("model") != model:
        return "other_model"
    if str(record.get("version")) != version:
        return "other_version"
    if time.tzinfo is None or not start <= time < end:
        return "outside_window"
    if record.get("kind") == "feedback":
        return _feedback(record, labels, label_scores)
    if record.get("kind") != "prediction":
        return "malformed"
    inputs, score = record.get("inputs"), record.get("probability")
    if not isinstance(inputs, dict) or not _finite(score):
        return "malformed"
    if any(name not in inputs for name in features):
        return "missing_feature"
    rows.append([inputs[name] for name in features])
    scores.append(float(score))
    return None


def _feedback(record, labels, label_scores) -> str | None:
    """Feedback carries the truth per row and the score the served model gave those rows' inputs."""
    try:
        truth = np.ravel(np.asarray(record.get("truth"), float))
        score = np.ravel(np.asarray(record.get("probability"), float))
    except (TypeError, ValueError):
        return "malformed"
    if not len(truth) or truth.shape != score.shape or not np.isin(truth, (0, 1)).all() or not np.isfinite(score).all():
        return "malformed"
    labels.extend(truth.tolist())
    label_scores.extend(score.tolist())
    return None


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

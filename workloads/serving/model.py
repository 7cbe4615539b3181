"""The Seldon Core v1 model: the registered champion (ONNX) behind predict, feedback, health and metrics.

Requests are validated and transformed by the same code the feature job and training used
(workloads/common), with the spec and fitted transformation the model was trained on (its MLflow
run's `features/<table>/` artifacts). Bad input is a 400 naming the field; the server keeps serving.

Run: python -m workloads.serving.server workloads.serving.model.FeatureModel (Seldon's microservice under the
kit's supervisor, which also sets up the metrics this module updates: see server.py and metrics.py)
Environment: MLKIT_MODEL_URI (models:/<name>@<alias>, models:/<name>/<version>, a bundle on the store or a
directory: see artifacts.py), MLFLOW_TRACKING_URI, MLKIT_REQUEST_LOG (a directory or store prefix; unset: off),
MLKIT_REQUEST_LOG_FLUSH_SECONDS (how long records may wait for a batch; default 2).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from workloads.common.settings import env, env_float, settings
from workloads.common.specs import FeatureSpec
from workloads.common.transform import FittedTransform
from workloads.common.validation import validate_frame
from workloads.serving import metrics

THRESHOLD = 0.5
MAX_ROWS = 10_000


class BadRequest(Exception):
    """Turned into Seldon's 400 response."""


def _seldon_error(message: str):
    from seldon_core.flask_utils import SeldonMicroserviceException

    return SeldonMicroserviceException(message, status_code=400, reason="MICROSERVICE_BAD_DATA")


class FeatureModel:
    def __init__(self, model_uri: str | None = None, request_log: str | None = None):
        self.model_uri = model_uri or env("MLKIT_MODEL_URI", "")
        self.request_log_uri = request_log if request_log is not None else env("MLKIT_REQUEST_LOG", "")
        self.ready = False

    # --- loading -------------------------------------------------------------------------------------

    def load(self) -> None:
        """Seldon calls this once per worker before serving."""
        import onnxruntime

        from workloads.serving.artifacts import fetch
        from workloads.serving.requestlog import RequestLog

        config = settings()  # a missing or foreign team profile stops the worker here, naming it
        if config.profile:  # the team's identity reaches its own root only
            if not self.model_uri.startswith("models:/"):
                config.check_uri(self.model_uri, "MLKIT_MODEL_URI")
            if self.request_log_uri:
                config.check_uri(self.request_log_uri, "MLKIT_REQUEST_LOG")
        bundle = fetch(self.model_uri, config.store)
        self.model_name, self.model_version = bundle.name, bundle.version
        self.tables: list[tuple[FeatureSpec, FittedTransform]] = [(t.spec, t.transform) for t in bundle.tables]
        self.session = onnxruntime.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()[0].shape[1]
        try:
            self.probe = self.features(request_frame(probe_row(self.tables), None))
        except BadRequest as e:
            raise RuntimeError(f"the health check's row, built from the feature specs, is rejected: {e}") from None
        flush_seconds = env_float("MLKIT_REQUEST_LOG_FLUSH_SECONDS", 2.0)
        self.request_log = (
            RequestLog(self.request_log_uri, flush_seconds=flush_seconds, store=config.store)
            if self.request_log_uri
            else None
        )
        self.ready = True

    # --- Seldon's interface ------------------------------------------------------------------------------

    def predict(self, X, names, meta=None):
        """Probabilities, one row per request row. Each request is logged before its answer leaves."""
        started = time.perf_counter()
        try:
            frame = request_frame(X, names)
            features = self.features(frame)
        except BadRequest as e:
            raise _seldon_error(str(e)) from None
        probability = self.session.run(None, {"features": features})[0].reshape(-1)
        elapsed = time.perf_counter() - started
        dropped = 0
        if self.request_log:
            now = datetime.now(UTC).isoformat()
            for row, p in zip(frame.to_dict(orient="records"), probability, strict=True):
                record = {
                    "time": now,
                    "kind": "prediction",
                    "model": self.model_name,
                    "version": self.model_version,
                    "inputs": row,
                    "probability": float(p),
                }
                dropped += not self.request_log.put(record)
        self._count(probability, elapsed, dropped)
        return probability.reshape(-1, 1)

    def _count(self, probability: np.ndarray, elapsed_s: float, dropped: int) -> None:
        ones = int((probability >= THRESHOLD).sum())
        for cls, n in (("0", len(probability) - ones), ("1", ones)):
            if n:
                metrics.PREDICTIONS.labels(*self._labels, cls).inc(n)
        metrics.LATENCY.labels(*self._labels).observe(elapsed_s)
        if dropped:
            metrics.DROPPED.labels(*self._labels).inc(dropped)

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """Validate and transform request rows exactly as training data was; BadRequest names every problem."""
        blocks, problems = [], []
        for spec, transform in self.tables:
            typed, reasons = validate_frame(spec, frame, require_key=False)
            problems += [f"row {i}: {r}" for i, rs in enumerate(reasons) for r in rs]
            if not problems:
                matrix, unknown = transform.apply_with_reasons(typed)
                problems += [f"row {i}: {u}" for i, us in enumerate(unknown) for u in us]
                # A finite input can overflow the model's float32 once scaled (TotalCharges 1e308 gave NaN).
                source = [c.name for c in transform.columns for _ in c.output_names]
                problems += [
                    f"row {i}: {source[j]}: {typed[source[j]].iloc[i]!r} is out of range (not finite once scaled)"
                    for i, j in zip(*np.nonzero(~np.isfinite(matrix)), strict=True)
                ]
                blocks.append(matrix)
        known = {c.name for spec, _ in self.tables for c in spec.columns} | {spec.entity.key for spec, _ in self.tables}
        if unexpected := sorted(set(frame.columns) - known):
            problems.append(f"unknown feature(s) {unexpected}; expected {sorted(known)}")
        if problems:
            raise BadRequest(
                "; ".join(problems[:20]) + (f" (+{len(problems) - 20} more)" if len(problems) > 20 else "")
            )
        return np.hstack(blocks).astype(np.float32)

    def class_names(self):
        return ["probability"]

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        """Store the truth (and reward) beside the request log, for monitoring and retraining; with the score this
        model gives the same inputs, so monitoring can measure ROC AUC without joining requests to feedback."""
        if self.request_log:
            inputs, probability = [], None
            try:
                if features is not None and len(features):
                    frame = request_frame(features, feature_names)
                    inputs = frame.to_dict(orient="records")
                    scores = self.session.run(None, {"features": self.features(frame)})[0].reshape(-1)
                    probability = scores.tolist()
            except BadRequest:
                pass  # the truth is still kept; without valid inputs there is no score to pair it with
            record = {
                "time": datetime.now(UTC).isoformat(),
                "kind": "feedback",
                "model": self.model_name,
                "version": self.model_version,
                "inputs": inputs,
                "truth": np.asarray(truth).tolist() if truth is not None else None,
                "probability": probability,
                "reward": reward,
            }
            if not self.request_log.put(record):
                metrics.DROPPED.labels(*self._labels).inc()
        return []

    @property
    def _labels(self) -> tuple[str, str]:
        return self.model_name, self.model_version

    def tags(self):
        return {"model_name": self.model_name, "model_version": self.model_version}

    def health_status(self):
        """Readiness (/health/status): one prediction and one metrics update, the path every request takes,
        so a worker that cannot predict fails the probe (or its timeout) instead of passing it."""
        if not self.ready:
            raise _seldon_error("model not loaded")
        probability = self.session.run(None, {"features": self.probe})[0].reshape(-1)
        metrics.HEALTH_CHECKS.labels(*self._labels).inc()
        return probability.tolist()


def probe_row(tables: list[tuple[FeatureSpec, FittedTransform]]) -> dict:
    """A request row every spec accepts: a known category, the fitted centre within bounds, true."""
    row = {}
    for spec, transform in tables:
        fitted = {c.name: c for c in transform.columns}
        for column in spec.columns:
            categories = getattr(fitted.get(column.name), "categories", None) or column.allowed
            if categories:
                row[column.name] = categories[0]
            elif column.type == "boolean":
                row[column.name] = column.true_values[0]
            elif column.type in ("int", "double"):
                value = fitted[column.name].center if column.name in fitted else 0.0
                value = min(
                    max(value, column.min if column.min is not None else value),
                    column.max if column.max is not None else value,
                )
                row[column.name] = round(value) if column.type == "int" else value
            else:
                row[column.name] = "probe"
    return row


def request_frame(X, names) -> pd.DataFrame:
    """Rows as a DataFrame from any request form: ndarray + names, or named JSON (one object or a list)."""
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 0:
        X = X.item()  # Seldon wraps a feedback request's jsonData in a 0-d array
    if isinstance(X, dict):
        rows = X.get("instances", X)
        rows = rows if isinstance(rows, list) else [rows]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise BadRequest("jsonData: expected an object of named features, or {'instances': [objects]}")
        # Column by column: a feature a row lacks stays None (missing); pandas would fill in NaN.
        columns = dict.fromkeys(name for r in rows for name in r)
        frame = pd.DataFrame(
            {name: pd.Series([_nan_named(r.get(name)) for r in rows], dtype=object) for name in columns}
        )
    else:
        array = np.asarray(X, dtype=object)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[0] == 0:
            raise BadRequest(f"data.ndarray: expected rows of features, got shape {list(array.shape)}")
        names = list(names or [])
        if len(names) != array.shape[1]:
            raise BadRequest(
                f"data.names: {len(names)} names for rows of {array.shape[1]} values; send one name per column"
            )
        frame = pd.DataFrame([[_nan_named(v) for v in row] for row in array], columns=names, dtype=object)
    if len(frame) > MAX_ROWS:
        raise BadRequest(f"{len(frame)} rows in one request; at most {MAX_ROWS}")
    return frame


def _nan_named(value):
    """A NaN the client sent is a value to reject by name ('NaN' is not a number), not a missing one."""
    return "NaN" if isinstance(value, float) and value != value else value

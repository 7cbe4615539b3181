"""The drift job: one served model's request-log window against its training reference, as Prometheus metrics.

A CronJob in the cluster (charts/drift-monitor), a command on this machine. It pushes to the platform's
Pushgateway (the profile's, or --pushgateway) as one group per namespace, model and version: Prometheus'
advice for a service-level batch job, whose result must outlive the pod that computed it.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge

from workloads.common import metrics
from workloads.common.bundle import REFERENCE, ModelBundle
from workloads.common.settings import settings
from workloads.common.storage import ObjectStore
from workloads.common.validation import validate_frame
from workloads.monitoring.drift import DriftReport, Reference, compare
from workloads.monitoring.window import read_window


class MonitoringError(ValueError):
    """The job cannot compare anything: the message names the model, file or option."""


def parse_window(text: str) -> timedelta:
    """'90s', '30m', '1h', '7d'."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match or int(match.group(1)) == 0:
        raise MonitoringError(f"--window {text!r}: expected a positive duration such as 30m, 1h or 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def parse_until(text: str | None) -> datetime | None:
    """An ISO 8601 time with its zone ('2026-03-01T12:00:00Z'); None: now."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise MonitoringError(f"--until {text!r}: expected an ISO 8601 time with a zone, e.g. 2026-03-01T12:00:00Z")
    return when.astimezone(UTC)


def load_reference(bundle: ModelBundle, source: str) -> Reference:
    if not bundle.reference_path.is_file():
        raise MonitoringError(
            f"{source}: version {bundle.version} of {bundle.name} has no {REFERENCE} "
            "(trained before monitoring, or not by workloads.training): retrain it to monitor it"
        )
    try:
        return Reference.model_validate_json(bundle.reference_path.read_text())
    except ValueError as e:
        raise MonitoringError(f"{source}: {REFERENCE} is not a drift reference ({e})") from None


def run_drift(
    model_uri: str,
    request_log: str,
    window: timedelta,
    *,
    now: datetime | None = None,
    store: ObjectStore | None = None,
) -> DriftReport:
    """Fetch the model's bundle, read the window of its request log, compare."""
    from workloads.serving.artifacts import fetch

    config = settings()
    if config.profile and not model_uri.startswith("models:/"):
        config.check_uri(model_uri, "--model-uri")
    if config.profile:
        config.check_uri(request_log, "--request-log")
    bundle = fetch(model_uri, store or config.store)
    reference = load_reference(bundle, model_uri)
    end = now or datetime.now(UTC)
    served = read_window(
        (store or config.store).at(request_log),
        bundle.name,
        bundle.version,
        list(reference.features),
        end - window,
        end,
    )
    inputs, valid = typed_inputs(bundle, served.inputs)
    skipped = dict(served.skipped)
    if invalid := int((~valid).sum()):
        skipped["invalid"] = invalid
    return compare(
        reference,
        inputs[valid],
        served.scores[valid],
        feedback=(served.labels, served.label_scores),
        skipped=skipped,
    )


def typed_inputs(bundle: ModelBundle, raw: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The logged request values typed as serving typed them (and training stored them): "Yes" is True, "7" is 7.
    A row serving would have refused (so never logged, unless the spec changed) is marked invalid."""
    columns, valid = {}, np.ones(len(raw), bool)
    for table in bundle.tables:
        typed, reasons = validate_frame(table.spec, raw, require_key=False)
        valid &= reasons.map(len).to_numpy() == 0
        columns |= {c.name: typed[c.name] for c in table.spec.columns}
    return pd.DataFrame(columns, index=raw.index).reset_index(drop=True), valid


def grouping(report: DriftReport) -> dict[str, str]:
    """The Pushgateway group: one per namespace, model and version (labels every pushed series carries)."""
    return dict(zip(metrics.DRIFT_LABELS, (settings().namespace, report.model, report.version), strict=True))


def drift_registry(report: DriftReport, threshold: float) -> CollectorRegistry:
    """The report as gauges; with no data only the no-data flag, the row count and the skips (never drift 0)."""
    registry = CollectorRegistry()
    group = grouping(report)
    labels = list(metrics.DRIFT_LABELS)

    def gauge(name: str, documentation: str, *extra: str) -> Gauge:
        return Gauge(name, documentation, [*labels, *extra], registry=registry)

    base = list(group.values())
    gauge(metrics.DRIFT_WINDOW_ROWS, "Prediction rows compared in the last drift run").labels(*base).set(report.rows)
    gauge(metrics.DRIFT_NO_DATA, "1 when the last drift run's window held no usable rows").labels(*base).set(
        int(report.no_data)
    )
    skipped = gauge(metrics.DRIFT_SKIPPED, "Request-log records the last drift run skipped, by reason", "reason")
    for reason, count in sorted(report.skipped.items()):
        skipped.labels(*base, reason).set(count)
    gauge(metrics.DRIFT_LAST_RUN, "When the drift job last ran").labels(*base).set(time.time())
    gauge(metrics.MODEL_FEEDBACK_ROWS, "Feedback labels in the last drift run's window").labels(*base).set(
        report.feedback_rows
    )
    if report.roc_auc is not None:
        gauge(metrics.MODEL_ROC_AUC, "ROC AUC over the window's feedback labels").labels(*base).set(report.roc_auc)
    if report.no_data:
        return registry
    feature_psi = gauge(metrics.DRIFT_FEATURE_PSI, "Population stability index per feature", "feature")
    pvalue = gauge(metrics.DRIFT_FEATURE_PVALUE, "Two-sample test p-value per feature", "feature", "test")
    wasserstein = gauge(
        metrics.DRIFT_FEATURE_WASSERSTEIN, "Wasserstein distance in reference standard deviations", "feature"
    )
    missing = gauge(metrics.DRIFT_FEATURE_MISSING_CHANGE, "Missing-rate change, served minus training", "feature")
    drifted = gauge(metrics.DRIFT_FEATURE_DRIFTED, f"1 when the feature's PSI >= {threshold}", "feature")
    for f in report.features:
        if math.isnan(f.psi):
            continue  # no non-missing value served in the window: the missing-rate change says so
        feature_psi.labels(*base, f.feature).set(f.psi)
        drifted.labels(*base, f.feature).set(int(f.psi >= threshold))
        if not math.isnan(f.pvalue):
            pvalue.labels(*base, f.feature, f.test).set(f.pvalue)
        if f.wasserstein is not None and not math.isnan(f.wasserstein):
            wasserstein.labels(*base, f.feature).set(f.wasserstein)
    for f in report.features:
        if not math.isnan(f.missing_rate_change):
            missing.labels(*base, f.feature).set(f.missing_rate_change)
    if report.max_psi is not None and not math.isnan(report.max_psi):
        gauge(metrics.DRIFT_MAX_PSI, "The largest feature PSI of the last drift run").labels(*base).set(report.max_psi)
    if report.prediction_psi is not None and not math.isnan(report.prediction_psi):
        gauge(metrics.DRIFT_PREDICTION_PSI, "PSI of the served score distribution").labels(*base).set(
            report.prediction_psi
        )
    return registry

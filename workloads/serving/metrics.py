"""The model's metrics, safe to lose a worker: prometheus_client's multiprocess mode.

Seldon 1.17's `SeldonMetrics` keeps every worker's metrics in a `multiprocessing.Manager` behind one
cross-process lock: a worker SIGKILLed while holding it (an OOM kill) wedges every other worker, the
health check and the metrics port for good, and a dead Manager process turns every prediction into
a 500. Here each process writes its own memory-mapped file in a per-pod directory
(`PROMETHEUS_MULTIPROC_DIR`, made by workloads.serving.server before anything imports
prometheus_client): processes share nothing but the directory, so a dead one cannot block the
others, and its counts stay in the sum the metrics port serves.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, exposition, multiprocess

logger = logging.getLogger(__name__)

# Not model_name/model_version: Seldon's operator sets labels of those names on every series it scrapes.
LABELS = ("registered_model", "registered_version")

PREDICTIONS = Counter("mlkit_predictions_total", "Predicted rows, by predicted class", [*LABELS, "class"])
LATENCY = Histogram(
    "mlkit_predict_inner_seconds",
    "Validation, transformation and model time per prediction request",
    LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DROPPED = Counter("mlkit_request_log_dropped_total", "Request-log records dropped (queue full)", LABELS)
HEALTH_CHECKS = Counter("mlkit_health_checks_total", "Health checks that ran a prediction", LABELS)
REWARD = Summary("mlkit_feedback_reward", "Feedback rewards (count and sum)")


class ProcessMetrics:
    """Seldon's metrics interface (`update`, `update_reward`, `clear`, `generate_metrics`) without the Manager.

    workloads.serving.server puts it in place of `SeldonMetrics`. The model updates the metrics above
    directly; Seldon calls `update` after every request with the model's runtime metrics (none here).
    """

    def __init__(self, worker_id_func=None, extra_default_labels=None):
        pass  # nothing shared to set up: that is the point

    def update(self, custom_metrics, method):
        if custom_metrics:
            logger.warning(
                "ignored %d runtime metric(s) from %s: the model updates prometheus_client", len(custom_metrics), method
            )

    def update_reward(self, reward):
        if reward:
            REWARD.observe(reward)

    def clear(self):
        # Seldon clears an exiting worker's metrics; counters must keep what dead workers counted.
        pass

    def generate_metrics(self):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return exposition.generate_latest(registry).decode(), exposition.CONTENT_TYPE_LATEST

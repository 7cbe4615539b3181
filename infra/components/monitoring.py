"""kube-prometheus-stack, set to pick up every ServiceMonitor, PodMonitor and PrometheusRule, with Seldon and Spark scraped."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra.components.base import PART_OF, PlatformComponent
from infra.config import Monitoring as MonitoringConfig
from infra.target import ClusterTarget

NAMESPACE = "monitoring"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}


class Monitoring(PlatformComponent):
    def __init__(self, name: str, target: ClusterTarget, config: MonitoringConfig, opts=None, sources=None):
        super().__init__("Monitoring", name, target, opts, sources)
        namespace = self.namespace(NAMESPACE)
        everything = {
            f"{kind}SelectorNilUsesHelmValues": False for kind in ("serviceMonitor", "podMonitor", "rule", "probe")
        }
        self.stack = self.release(
            "kube-prometheus-stack",
            "kube-prometheus-stack",
            config.version,
            namespace.metadata.name,
            {
                # Without these, the stack only selects monitors labelled `release: <name>`.
                "prometheus": {
                    "prometheusSpec": {
                        **everything,
                        "retention": "15d",
                        "storageSpec": {
                            "volumeClaimTemplate": {
                                "spec": {
                                    "storageClassName": target.storage_class,
                                    "resources": {"requests": {"storage": "50Gi"}},
                                }
                            }
                        },
                    }
                },
                # The operator's webhook (failurePolicy: Fail on PrometheusRules) is served by its pod.
                "prometheusOperator": {"admissionWebhooks": {"enabled": target.pods_run}},
                "grafana": {
                    "sidecar": {
                        "dashboards": {
                            "enabled": True,
                            "label": "grafana_dashboard",
                            "labelValue": "1",
                            "searchNamespace": "ALL",
                        }
                    }
                },
            },
            namespace,
        )
        # Scrape targets the charts above do not declare themselves; the CRDs come with the stack.
        self.seldon = self._pod_monitor(
            "seldon-models", {"app.kubernetes.io/managed-by": "seldon-core"}, "metrics", "/prometheus"
        )
        self.spark = self._pod_monitor(
            "spark-drivers", {"spark-role": "driver"}, "spark-ui", "/metrics/executors/prometheus"
        )
        self.register_outputs({})

    def _pod_monitor(self, name: str, labels: dict[str, str], port: str, path: str) -> k8s.apiextensions.CustomResource:
        """Scrape pods with these labels in any namespace."""
        return k8s.apiextensions.CustomResource(
            f"{self.name}-{name}",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={"name": name, "namespace": NAMESPACE, "labels": PART_OF},
            spec={
                "namespaceSelector": {"any": True},
                "selector": {"matchLabels": labels},
                "podMetricsEndpoints": [{"port": port, "path": path}],
            },
            opts=self.opts(self.stack),
        )

"""kube-prometheus-stack, set to pick up every ServiceMonitor, PodMonitor and PrometheusRule, with Seldon and Spark
scraped; a Pushgateway for the batch jobs; the platform's alert rules and Grafana dashboards; and Alertmanager
taking routes (AlertmanagerConfig objects) from the team namespaces.

Why a Pushgateway: the drift job and the feature job are service-level batch jobs. They run for minutes and
exit, often between two scrapes, and what they report (a model version's drift, a batch's row counts) belongs
to the model or the table, not to the pod that computed it. Prometheus recommends the Pushgateway for exactly
that case (https://prometheus.io/docs/practices/pushing/): the job pushes its result once, under a grouping key,
and Prometheus scrapes the last value until the next run replaces it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi_kubernetes as k8s

from infra import versions
from infra.components.alerts import rule_groups
from infra.components.base import (
    ALWAYS_PULL,
    OPERATOR_RESOURCES,
    PART_OF,
    RESTRICTED,
    TEAM_LABEL,
    TEAM_NAMESPACES,
    PlatformComponent,
    http_probes,
    pod_security,
)
from infra.config import Monitoring as MonitoringConfig
from infra.target import ClusterTarget

NAMESPACE = "monitoring"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
DASHBOARDS = Path(__file__).parent / "dashboards"  # one Grafana dashboard per JSON file
PUSHGATEWAY = "pushgateway"
PUSHGATEWAY_PORT = 9091
PUSHGATEWAY_POD = {"app.kubernetes.io/name": PUSHGATEWAY}  # its pods' labels, which team egress policies name
# How team pods reach it (the team profile's `pushgateway`).
PUSHGATEWAY_URL = f"http://{PUSHGATEWAY}.{NAMESPACE}.svc.cluster.local:{PUSHGATEWAY_PORT}"
ALERT_RULES = "mlkit-alerts"


def dashboards() -> dict[str, str]:
    """Dashboard file stem -> its JSON, as shipped in infra/components/dashboards/."""
    return {path.stem: path.read_text() for path in sorted(DASHBOARDS.glob("*.json"))}


class Monitoring(PlatformComponent):
    def __init__(self, name: str, target: ClusterTarget, config: MonitoringConfig, opts=None, sources=None):
        super().__init__("Monitoring", name, target, opts, sources)
        namespace = self.namespace(
            # The chart's node-exporter DaemonSet reads the host (hostNetwork, hostPID, hostPath /proc and /sys).
            NAMESPACE,
            "privileged",
        )
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
                # Each team routes its own alerts (the drift-monitor chart's AlertmanagerConfig sends
                # mlkit_action="retrain" to the team's retraining trigger). The chart's default namespace
                # selector ({}) reads AlertmanagerConfigs from every namespace; here, team namespaces only.
                # OnNamespace (the operator's default, stated because routing depends on it) adds
                # `namespace="<team>"` to every route a team's AlertmanagerConfig declares: an alert reaches
                # a team only if it carries that team's namespace label, so no team takes another's alerts.
                "alertmanager": {
                    "alertmanagerSpec": {
                        "alertmanagerConfigSelector": {},
                        "alertmanagerConfigNamespaceSelector": {
                            "matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]
                        },
                        "alertmanagerConfigMatcherStrategy": {"type": "OnNamespace"},
                    }
                },
                # The operator's webhook (failurePolicy: Fail on PrometheusRules) is served by its pod.
                "prometheusOperator": {
                    "admissionWebhooks": {"enabled": target.pods_run},
                    "image": ALWAYS_PULL,
                    "resources": OPERATOR_RESOURCES,
                },
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
        self.pushgateway = self._pushgateway(namespace)
        self.rules = k8s.apiextensions.CustomResource(
            f"{name}-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": ALERT_RULES, "namespace": NAMESPACE, "labels": PART_OF},
            spec=rule_groups(config.alerts),
            opts=self.opts(self.stack),
        )
        self.dashboards = [
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{stem}",
                metadata={
                    "name": f"mlkit-dashboard-{stem}",
                    "namespace": NAMESPACE,
                    "labels": {**PART_OF, **DASHBOARD_LABEL},
                },
                # Compact: a ConfigMap holds at most 1 MiB.
                data={f"{stem}.json": json.dumps(json.loads(text), separators=(",", ":"))},
                opts=self.opts(namespace),
            )
            for stem, text in dashboards().items()
        ]
        self.pushgateway_url = PUSHGATEWAY_URL
        self.register_outputs({"pushgatewayUrl": self.pushgateway_url})

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

    def _pushgateway(self, namespace: k8s.core.v1.Namespace) -> k8s.apps.v1.Deployment:
        """The Pushgateway, its Service, and a ServiceMonitor that keeps the labels the jobs pushed."""
        labels = {**PART_OF, **PUSHGATEWAY_POD}
        selector = PUSHGATEWAY_POD
        deployment = k8s.apps.v1.Deployment(
            f"{self.name}-pushgateway",
            metadata={"name": PUSHGATEWAY, "namespace": NAMESPACE, "labels": labels},
            spec={
                # One replica: pushes would split between two, and each would serve half the groups.
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"match_labels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "security_context": pod_security(65534),  # the image's own user, nobody
                        "automount_service_account_token": False,
                        "containers": [
                            {
                                "name": PUSHGATEWAY,
                                "image": versions.PUSHGATEWAY_IMAGE,
                                "image_pull_policy": "Always",  # from its public registry on every target
                                # Pushed groups survive a container restart (not a new pod: the
                                # next run of each job pushes again).
                                "args": [
                                    f"--web.listen-address=:{PUSHGATEWAY_PORT}",
                                    "--persistence.file=/data/pushgateway.metrics",
                                    "--persistence.interval=1m",
                                ],
                                "ports": [{"name": "http", "container_port": PUSHGATEWAY_PORT}],
                                **http_probes("/-/ready", "/-/healthy", live_delay_s=10),
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
                                    "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "512Mi"},
                                },
                                "security_context": RESTRICTED,
                                "volume_mounts": [{"name": "data", "mount_path": "/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "empty_dir": {"size_limit": "256Mi"}}],
                    },
                },
            },
            opts=self.opts(namespace),
        )
        # Team batch jobs push, Prometheus (this namespace) scrapes; nothing else reaches the unauthenticated API.
        self.ingress_policy(
            "pushgateway",
            NAMESPACE,
            PUSHGATEWAY_POD,
            PUSHGATEWAY_PORT,
            [TEAM_NAMESPACES, {"pod_selector": {}}],
            namespace,
        )
        k8s.core.v1.Service(
            f"{self.name}-pushgateway",
            metadata={"name": PUSHGATEWAY, "namespace": NAMESPACE, "labels": labels},
            spec={
                "selector": selector,
                "ports": [{"name": "http", "port": PUSHGATEWAY_PORT, "target_port": "http"}],
            },
            opts=self.opts(namespace),
        )
        k8s.apiextensions.CustomResource(
            f"{self.name}-pushgateway-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": PUSHGATEWAY, "namespace": NAMESPACE, "labels": PART_OF},
            spec={
                "namespaceSelector": {"matchNames": [NAMESPACE]},
                "selector": {"matchLabels": selector},
                # Without honorLabels the scrape's own labels (namespace="monitoring", job="pushgateway")
                # would take the place of what the jobs pushed (kept only as exported_namespace, ...), and
                # every drift alert would name the monitoring namespace instead of the model's team.
                "endpoints": [{"port": "http", "honorLabels": True, "interval": "30s"}],
            },
            opts=self.opts(self.stack),
        )
        return deployment

"""The Spark operator, watching the team namespaces, and the Hadoop settings feature jobs mount."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pulumi
import pulumi_kubernetes as k8s

from infra.components.base import ALWAYS_PULL, OPERATOR_RESOURCES, PART_OF, PlatformComponent
from infra.config import SparkOperator as SparkOperatorConfig
from infra.target import WEBHOOK_PORTS, ClusterTarget

NAMESPACE = "spark-operator"
HADOOP_CONFIGMAP = "mlkit-feature-store-hadoop"  # named in the team profile; charts/feature-job mounts it


class SparkOperator(PlatformComponent):
    def __init__(
        self,
        name: str,
        target: ClusterTarget,
        config: SparkOperatorConfig,
        job_namespaces: list[k8s.core.v1.Namespace],
        monitoring: pulumi.Resource | None = None,
        opts=None,
        sources=None,
    ):
        """``job_namespaces``: the team namespaces it watches (the chart needs them to exist);
        ``monitoring``: the release bringing the PodMonitor CRD, without which the chart refuses a PodMonitor."""
        super().__init__("SparkOperator", name, target, opts, sources)
        namespace = self.namespace(NAMESPACE, "restricted")  # the chart's pods meet it as they come
        self.operator = self.release(
            "spark-operator",
            "spark-operator",
            config.version,
            namespace.metadata.name,
            {
                "spark": {
                    # Never empty: an empty list makes the operator watch every namespace, cluster-wide.
                    "jobNamespaces": [ns.metadata.name for ns in job_namespaces] or [NAMESPACE],
                    "serviceAccount": {"create": False},
                    "rbac": {"create": False},
                },
                "image": ALWAYS_PULL,
                "controller": {"resources": OPERATOR_RESOURCES},
                # Its mutating webhook sets pod fields; served by the operator pod, so only where pods run.
                "webhook": {
                    "enable": target.pods_run,
                    "port": WEBHOOK_PORTS["spark-operator"],
                    "resources": OPERATOR_RESOURCES,
                },
                "prometheus": {
                    "metrics": {"enable": True},
                    "podMonitor": {"create": monitoring is not None, "labels": {}},
                },
            },
            namespace,
            *job_namespaces,
            *([monitoring] if monitoring else []),
        )
        self.register_outputs({})


def core_site(conf: dict[str, str]) -> str:
    properties = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>\n"
        for k, v in sorted(conf.items())
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{properties}</configuration>\n'


def hadoop_configmap(
    component: PlatformComponent, namespace: str, *depends_on: pulumi.Resource
) -> k8s.core.v1.ConfigMap:
    """The target's filesystem settings as core-site.xml, which the Spark operator mounts (``hadoopConfigMap``)."""
    return k8s.core.v1.ConfigMap(
        f"{component.name}-feature-store-hadoop",
        metadata={"name": HADOOP_CONFIGMAP, "namespace": namespace, "labels": PART_OF},
        data={"core-site.xml": pulumi.Output.all(**component.target.hadoop_conf()).apply(core_site)},
        opts=component.opts(*depends_on),
    )

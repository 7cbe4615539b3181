"""The Spark operator, watching the team namespaces, and the feature store settings feature jobs mount."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pulumi
import pulumi_kubernetes as k8s

from infra.components.base import PART_OF, PlatformComponent
from infra.config import SparkOperator as SparkOperatorConfig
from infra.target import ClusterTarget
from workloads.common.spark import HUDI_SPARK_CONF  # one place for Hudi's Spark settings, local and in-cluster

NAMESPACE = "spark-operator"
FEATURE_STORE_CONFIGMAP = "mlkit-feature-store"
HADOOP_CONFIGMAP = "mlkit-feature-store-hadoop"  # charts/feature-job's default hadoopConfigMap


class SparkOperator(PlatformComponent):
    def __init__(
        self, name: str, target: ClusterTarget, config: SparkOperatorConfig, job_namespaces: list[str], opts=None
    ):
        super().__init__("SparkOperator", name, target, opts)
        namespace = self.namespace(NAMESPACE)
        self.operator = self.release(
            "spark-operator",
            "spark-operator",
            config.version,
            namespace.metadata.name,
            {
                "spark": {
                    "jobNamespaces": job_namespaces,
                    "serviceAccount": {"create": False},
                    "rbac": {"create": False},
                },
                "webhook": {"enable": True},
                "prometheus": {"metrics": {"enable": True}, "podMonitor": {"create": True, "labels": {}}},
            },
            namespace,
        )
        self.register_outputs({})


def core_site(conf: dict[str, str]) -> str:
    properties = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>\n"
        for k, v in sorted(conf.items())
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{properties}</configuration>\n'


def feature_store_configmaps(
    component: PlatformComponent, namespace: str, root: pulumi.Output[str], *depends_on: pulumi.Resource
) -> list[k8s.core.v1.ConfigMap]:
    """The feature store is no server: a root URI, Hudi's Spark settings and the target's filesystem settings."""
    hadoop = component.target.hadoop_conf()
    spark_defaults = pulumi.Output.all(**hadoop).apply(
        lambda conf: "".join(
            f"{k} {v}\n"
            for k, v in sorted({**HUDI_SPARK_CONF, **{f"spark.hadoop.{k}": v for k, v in conf.items()}}.items())
        )
    )
    return [
        k8s.core.v1.ConfigMap(
            f"{component.name}-feature-store",
            metadata={"name": FEATURE_STORE_CONFIGMAP, "namespace": namespace, "labels": PART_OF},
            data={"MLKIT_FEATURE_STORE": root, "spark-defaults.conf": spark_defaults},
            opts=component.opts(*depends_on),
        ),
        k8s.core.v1.ConfigMap(
            f"{component.name}-feature-store-hadoop",
            metadata={"name": HADOOP_CONFIGMAP, "namespace": namespace, "labels": PART_OF},
            data={"core-site.xml": pulumi.Output.all(**hadoop).apply(core_site)},
            opts=component.opts(*depends_on),
        ),
    ]

"""MLflow tracking server: PostgreSQL for runs and the registry, artifacts on the platform bucket.

The database is in the cluster unless config names a managed one (platform.mlflow.databaseUrl).
Artifacts go through the server (--serve-artifacts) with the server's own bound identity:
no static cloud keys on cloud targets.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.components.base import PART_OF, PlatformComponent, bound_service_account
from infra.config import Mlflow as MlflowConfig
from infra.target import ClusterTarget

NAMESPACE = "mlflow"
PORT = 5000
ARTIFACT_PREFIX = "mlflow"
# The in-cluster names clients reach the server by, and a port-forward's localhost.
ALLOWED_HOSTS = (
    f"mlflow.{NAMESPACE}.svc.cluster.local:{PORT}",
    f"mlflow.{NAMESPACE}.svc:{PORT}",
    f"mlflow.{NAMESPACE}:{PORT}",
    f"mlflow:{PORT}",
    f"localhost:{PORT}",
    f"127.0.0.1:{PORT}",
)
RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class Mlflow(PlatformComponent):
    def __init__(self, name: str, target: ClusterTarget, config: MlflowConfig, image: str, opts=None):
        super().__init__("Mlflow", name, target, opts)
        namespace = self.namespace(NAMESPACE)
        database_url = self._database(config, namespace)
        database = k8s.core.v1.Secret(
            f"{name}-database-url",
            metadata={"name": "mlflow-database", "namespace": NAMESPACE, "labels": PART_OF},
            string_data={"url": database_url},
            opts=self.opts(namespace),
        )
        account, binding = bound_service_account(self, "server", "mlflow", NAMESPACE, ARTIFACT_PREFIX, namespace)
        self.artifacts = target.object_store.uri(ARTIFACT_PREFIX)
        env = [
            {
                "name": "MLFLOW_BACKEND_STORE_URI",
                "valueFrom": {"secretKeyRef": {"name": "mlflow-database", "key": "url"}},
            },
            {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        ]
        if target.object_store.endpoint:
            env.append({"name": "MLFLOW_S3_ENDPOINT_URL", "value": target.object_store.endpoint})
        labels = {"app.kubernetes.io/name": "mlflow", **PART_OF}
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata={"name": "mlflow", "namespace": NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
                "template": {
                    "metadata": {"labels": {**labels, **binding.pod_labels}},
                    "spec": {
                        "serviceAccountName": "mlflow",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
                        "containers": [
                            {
                                "name": "mlflow",
                                "image": image,
                                "args": [
                                    "mlflow",
                                    "server",
                                    "--host",
                                    "0.0.0.0",
                                    "--port",
                                    str(PORT),
                                    "--backend-store-uri",
                                    "$(MLFLOW_BACKEND_STORE_URI)",
                                    "--serve-artifacts",
                                    "--artifacts-destination",
                                    self.artifacts,
                                    # MLflow 3 answers 403 to a Host it does not know (its /health stays 200).
                                    "--allowed-hosts",
                                    ",".join(ALLOWED_HOSTS),
                                ],
                                "ports": [{"name": "http", "containerPort": PORT}],
                                "env": env,
                                "envFrom": [{"secretRef": {"name": "mlflow-object-store"}}]
                                if binding.credentials
                                else [],
                                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": "http"},
                                    "initialDelaySeconds": 30,
                                    "periodSeconds": 20,
                                },
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "512Mi"},
                                    "limits": {"memory": "2Gi"},
                                },
                                "securityContext": RESTRICTED,
                            }
                        ],
                    },
                },
            },
            opts=self.opts(account, database),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": "mlflow", "namespace": NAMESPACE, "labels": labels},
            spec={
                "selector": {"app.kubernetes.io/name": "mlflow"},
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
            opts=self.opts(namespace),
        )
        self.url = f"http://mlflow.{NAMESPACE}.svc.cluster.local:{PORT}"
        self.register_outputs({"url": self.url})

    def _database(self, config: MlflowConfig, namespace) -> pulumi.Input[str]:
        if config.database_url:
            return pulumi.Output.secret(config.database_url if isinstance(config.database_url, str) else "")
        import pulumi_random as random

        password = random.RandomPassword(
            f"{self.name}-postgres", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        k8s.core.v1.Secret(
            f"{self.name}-postgres",
            metadata={"name": "mlflow-postgres", "namespace": NAMESPACE, "labels": PART_OF},
            string_data={"POSTGRES_PASSWORD": password.result},
            opts=self.opts(namespace),
        )
        labels = {"app.kubernetes.io/name": "mlflow-postgres", **PART_OF}
        k8s.apps.v1.StatefulSet(
            f"{self.name}-postgres",
            metadata={"name": "mlflow-postgres", "namespace": NAMESPACE, "labels": labels},
            spec={
                "serviceName": "mlflow-postgres",
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow-postgres"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "fsGroup": 999},
                        "containers": [
                            {
                                "name": "postgres",
                                "image": versions.POSTGRES_IMAGE,
                                "env": [
                                    {"name": "POSTGRES_DB", "value": "mlflow"},
                                    {"name": "POSTGRES_USER", "value": "mlflow"},
                                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                ],
                                "envFrom": [{"secretRef": {"name": "mlflow-postgres"}}],
                                "ports": [{"name": "postgres", "containerPort": 5432}],
                                "readinessProbe": {
                                    "exec": {"command": ["pg_isready", "-U", "mlflow"]},
                                    "periodSeconds": 10,
                                },
                                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "512Mi"},
                                    "limits": {"memory": "1Gi"},
                                },
                                "securityContext": RESTRICTED,
                            }
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": self.target.storage_class,
                            "resources": {"requests": {"storage": "20Gi"}},
                        },
                    }
                ],
            },
            opts=self.opts(namespace),
        )
        k8s.core.v1.Service(
            f"{self.name}-postgres",
            metadata={"name": "mlflow-postgres", "namespace": NAMESPACE, "labels": labels},
            spec={
                "clusterIP": "None",
                "selector": {"app.kubernetes.io/name": "mlflow-postgres"},
                "ports": [{"name": "postgres", "port": 5432}],
            },
            opts=self.opts(namespace),
        )
        return pulumi.Output.secret(
            password.result.apply(
                lambda p: f"postgresql://mlflow:{p}@mlflow-postgres.{NAMESPACE}.svc.cluster.local:5432/mlflow"
            )
        )

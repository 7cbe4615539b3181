"""MLflow tracking server: PostgreSQL for runs and the registry, artifacts on the platform bucket.

The database is in the cluster unless config names a managed one (platform.mlflow.databaseUrl).
Artifacts go through the server (--serve-artifacts) with the server's own bound identity:
no static cloud keys on cloud targets.

Teams do not share it unchecked: the server runs MLflow's basic-auth app with no access by default,
and each team has one MLflow user whose credentials are the Secret ``mlflow-credentials`` in its
namespace (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, which MLflow's client reads). A user
reaches what it created, the artifacts behind it included; docs/security.md says what that covers.
"""

from __future__ import annotations

import hashlib
import urllib.parse

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.components.base import (
    PART_OF,
    RESTRICTED,
    TEAM_NAMESPACES,
    PlatformComponent,
    bound_service_account,
    http_probes,
    namespaces_named,
    pod_security,
)
from infra.components.pipelines import NAMESPACE as PIPELINES_NAMESPACE
from infra.config import Mlflow as MlflowConfig
from infra.target import ClusterTarget
from mlkit_contract import CREDENTIALS_SECRET
from workloads.mlflow import auth

NAMESPACE = "mlflow"
# The root filesystems are read-only: uploads, gunicorn's and Postgres' scratch files go here.
TMP_VOLUME: k8s.core.v1.VolumeArgsDict = {"name": "tmp", "empty_dir": {}}  # unbounded, as the root filesystem was
TMP_MOUNT: k8s.core.v1.VolumeMountArgsDict = {"name": "tmp", "mount_path": "/tmp"}
PORT = 5000
SERVER_POD = {"app.kubernetes.io/name": "mlflow"}  # the labels its pods carry
POSTGRES_POD = {"app.kubernetes.io/name": "mlflow-postgres"}
ARTIFACT_PREFIX = "mlflow"
URL = f"http://mlflow.{NAMESPACE}.svc.cluster.local:{PORT}"  # how team pods reach it (the team profile's trackingUri)
# The in-cluster names clients reach the server by, and a port-forward's localhost.
ALLOWED_HOSTS = (
    f"mlflow.{NAMESPACE}.svc.cluster.local:{PORT}",
    f"mlflow.{NAMESPACE}.svc:{PORT}",
    f"mlflow.{NAMESPACE}:{PORT}",
    f"mlflow:{PORT}",
    f"localhost:{PORT}",
    f"127.0.0.1:{PORT}",
)
# The teams' MLflow passwords are HMACs of the database credential: a short one could be guessed offline
# by anyone holding one team's password.
MIN_DATABASE_PASSWORD = 16


class Mlflow(PlatformComponent):
    """The tracking server; ``teams`` maps each team to its namespace, where its MLflow credentials go."""

    def __init__(
        self,
        name: str,
        target: ClusterTarget,
        config: MlflowConfig,
        image: str,
        teams: dict[str, k8s.core.v1.Namespace] | None = None,
        opts=None,
    ):
        super().__init__("Mlflow", name, target, opts)
        namespace = self.namespace(NAMESPACE, "restricted")  # every pod here is the kit's own
        database_url = self._database(config, namespace)
        auth_secrets = self._auth(database_url, teams or {}, namespace)
        database = k8s.core.v1.Secret(
            f"{name}-database-url",
            metadata={"name": "mlflow-database", "namespace": NAMESPACE, "labels": PART_OF},
            string_data={"url": database_url},
            opts=self.opts(namespace),
        )
        account, binding = bound_service_account(self, "server", "mlflow", NAMESPACE, ARTIFACT_PREFIX, namespace)
        self.artifacts = target.object_store.uri(ARTIFACT_PREFIX)
        env: list[k8s.core.v1.EnvVarArgsDict] = [
            {
                "name": "MLFLOW_BACKEND_STORE_URI",
                "value_from": {"secret_key_ref": {"name": "mlflow-database", "key": "url"}},
            },
            *({"name": k, "value": v} for k, v in auth.server_env().items()),
            {
                "name": "MLFLOW_FLASK_SERVER_SECRET_KEY",
                "value_from": {"secret_key_ref": {"name": "mlflow-auth", "key": "flask-secret-key"}},
            },
        ]
        if target.object_store.endpoint:
            env.append({"name": "MLFLOW_S3_ENDPOINT_URL", "value": target.object_store.endpoint})
        labels = {**SERVER_POD, **PART_OF}
        auth_mounts: list[k8s.core.v1.VolumeMountArgsDict] = [
            {"name": "auth", "mount_path": auth.AUTH_DIR, "read_only": True},
            {"name": "users", "mount_path": auth.USERS_DIR, "read_only": True},
        ]
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata={"name": "mlflow", "namespace": NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"match_labels": SERVER_POD},
                "template": {
                    "metadata": {
                        "labels": {**labels, **binding.pod_labels},
                        # A team added or removed, or a credential rotated: a new pod, whose init container syncs the users.
                        "annotations": {"mlkit.io/auth-revision": auth_secrets["revision"]},
                    },
                    "spec": {
                        "service_account_name": "mlflow",
                        "security_context": pod_security(versions.KIT_IMAGE_USER),
                        # The teams' users into the auth store before the server answers anyone.
                        "init_containers": [
                            {
                                "name": "sync-users",
                                "image": image,
                                "image_pull_policy": self.target.image_pull_policy,
                                "args": ["python", auth.IMAGE_PATH, "sync", "--users", auth.USERS_DIR],
                                "env": env,
                                "volume_mounts": [*auth_mounts, TMP_MOUNT],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "64Mi"},
                                    "limits": {"memory": "512Mi", "ephemeral-storage": "256Mi"},
                                },
                                "security_context": RESTRICTED,
                            }
                        ],
                        "containers": [
                            {
                                "name": "mlflow",
                                "image": image,
                                "image_pull_policy": self.target.image_pull_policy,
                                "args": [
                                    *auth.server_args(
                                        host="0.0.0.0",
                                        port=PORT,
                                        backend_store_uri="$(MLFLOW_BACKEND_STORE_URI)",
                                        artifacts_destination=self.artifacts,
                                    ),
                                    # MLflow 3 answers 403 to a Host it does not know (its /health stays 200).
                                    "--allowed-hosts",
                                    ",".join(ALLOWED_HOSTS),
                                ],
                                "ports": [{"name": "http", "container_port": PORT}],
                                "env": env,
                                "volume_mounts": [auth_mounts[0], TMP_MOUNT],
                                "env_from": [{"secret_ref": {"name": "mlflow-object-store"}}]
                                if binding.credentials
                                else [],
                                **http_probes("/health", None, live_delay_s=30),
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "256Mi"},
                                    "limits": {"memory": "2Gi", "ephemeral-storage": "2Gi"},
                                },
                                "security_context": RESTRICTED,
                            }
                        ],
                        "volumes": [
                            {"name": "auth", "secret": {"secret_name": "mlflow-auth", "default_mode": 0o440}},
                            {"name": "users", "secret": {"secret_name": "mlflow-users", "default_mode": 0o440}},
                            TMP_VOLUME,
                        ],
                    },
                },
            },
            opts=self.opts(account, database, *auth_secrets["resources"]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": "mlflow", "namespace": NAMESPACE, "labels": labels},
            spec={
                "selector": SERVER_POD,
                "ports": [{"name": "http", "port": PORT, "target_port": "http"}],
            },
            opts=self.opts(namespace),
        )
        # Teams and pipeline steps (KFP runs them in its namespace) reach the server; MLflow authenticates each.
        self.ingress_policy(
            "mlflow", NAMESPACE, SERVER_POD, PORT, [TEAM_NAMESPACES, namespaces_named(PIPELINES_NAMESPACE)], namespace
        )
        self.url = URL
        self.register_outputs({"url": self.url})

    def _auth(self, database_url: pulumi.Input[str], teams: dict[str, k8s.core.v1.Namespace], namespace) -> dict:
        """The auth app's config, the server's copy of the team users, and each team's own credentials.

        Every password is derived from the database credential (workloads/mlflow/auth.py): nothing is
        generated at deploy time, and Pulumi keeps each value as a secret.
        """
        root = pulumi.Output.secret(database_url)
        config = k8s.core.v1.Secret(
            f"{self.name}-auth",
            metadata={"name": "mlflow-auth", "namespace": NAMESPACE, "labels": PART_OF},
            string_data={
                auth.AUTH_CONFIG: root.apply(lambda r: auth.auth_config(r, auth.admin_password(r))),
                "flask-secret-key": root.apply(auth.flask_secret_key),
                "admin-username": auth.ADMIN_USERNAME,
                "admin-password": root.apply(auth.admin_password),
            },
            opts=self.opts(namespace),
        )
        passwords = {team: root.apply(lambda r, t=team: auth.team_password(r, t)) for team in sorted(teams)}
        users = k8s.core.v1.Secret(
            f"{self.name}-users",
            metadata={"name": "mlflow-users", "namespace": NAMESPACE, "labels": PART_OF},
            string_data={auth.team_username(team): password for team, password in passwords.items()},
            opts=self.opts(namespace),
        )
        for team, password in passwords.items():
            k8s.core.v1.Secret(
                f"{self.name}-credentials-{team}",
                metadata={"name": CREDENTIALS_SECRET, "namespace": team, "labels": PART_OF},
                string_data={auth.USERNAME_KEY: auth.team_username(team), auth.PASSWORD_KEY: password},
                opts=self.opts(teams[team]),
            )
        # Nothing derived from a secret goes into the pod template (a hash of a weak one can be guessed
        # offline): the team list only. After rotating the database credential, restart the Deployment.
        revision = hashlib.sha256(",".join(sorted(teams)).encode()).hexdigest()[:16]
        return {"resources": [config, users], "revision": revision}

    def _database(self, config: MlflowConfig, namespace) -> pulumi.Input[str]:
        if isinstance(config.database_url, str):
            password = urllib.parse.urlsplit(config.database_url).password or ""
            if len(password) < MIN_DATABASE_PASSWORD:
                raise pulumi.RunError(
                    f"platform.mlflow.databaseUrl: its password has {len(password)} characters, expected at least "
                    f"{MIN_DATABASE_PASSWORD}: the teams' MLflow credentials are derived from it (docs/security.md); "
                    "use a generated one"
                )
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
        labels = {**POSTGRES_POD, **PART_OF}
        k8s.apps.v1.StatefulSet(
            f"{self.name}-postgres",
            metadata={"name": "mlflow-postgres", "namespace": NAMESPACE, "labels": labels},
            spec={
                "service_name": "mlflow-postgres",
                "replicas": 1,
                "selector": {"match_labels": POSTGRES_POD},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        # Not the image's own postgres user (999): its entrypoint runs initdb as any user (nss_wrapper).
                        "security_context": pod_security(versions.KIT_IMAGE_USER),
                        "containers": [
                            {
                                "name": "postgres",
                                "image": versions.POSTGRES_IMAGE,
                                "image_pull_policy": "Always",  # from its public registry on every target
                                "env": [
                                    {"name": "POSTGRES_DB", "value": "mlflow"},
                                    {"name": "POSTGRES_USER", "value": "mlflow"},
                                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                ],
                                "env_from": [{"secret_ref": {"name": "mlflow-postgres"}}],
                                "ports": [{"name": "postgres", "container_port": 5432}],
                                "readiness_probe": {
                                    "exec_": {"command": ["pg_isready", "-U", "mlflow"]},
                                    "period_seconds": 10,
                                },
                                "volume_mounts": [
                                    {"name": "data", "mount_path": "/var/lib/postgresql/data"},
                                    TMP_MOUNT,
                                    {"name": "socket", "mount_path": "/var/run/postgresql"},
                                ],
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "256Mi"},
                                    "limits": {"memory": "1Gi", "ephemeral-storage": "1Gi"},
                                },
                                "security_context": RESTRICTED,
                            }
                        ],
                        "volumes": [TMP_VOLUME, {"name": "socket", "empty_dir": {"medium": "Memory"}}],
                    },
                },
                "volume_claim_templates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "access_modes": ["ReadWriteOnce"],
                            "storage_class_name": self.target.storage_class,
                            "resources": {"requests": {"storage": "20Gi"}},
                        },
                    }
                ],
            },
            opts=self.opts(namespace),
        )
        # The database answers the tracking server only.
        self.ingress_policy(
            "mlflow-postgres",
            NAMESPACE,
            POSTGRES_POD,
            5432,
            [{"pod_selector": {"match_labels": SERVER_POD}}],
            namespace,
        )
        k8s.core.v1.Service(
            f"{self.name}-postgres",
            metadata={"name": "mlflow-postgres", "namespace": NAMESPACE, "labels": labels},
            spec={
                "cluster_ip": "None",
                "selector": POSTGRES_POD,
                "ports": [{"name": "postgres", "port": 5432}],
            },
            opts=self.opts(namespace),
        )
        return pulumi.Output.secret(
            password.result.apply(
                lambda p: f"postgresql://mlflow:{p}@mlflow-postgres.{NAMESPACE}.svc.cluster.local:5432/mlflow"
            )
        )

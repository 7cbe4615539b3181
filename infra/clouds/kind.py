"""kind target: a local Kubernetes-in-Docker cluster and an in-cluster S3-compatible store.

The store is SeaweedFS (Apache-2.0, actively maintained, and what Kubeflow Pipelines moved to):
MinIO's server repository was archived upstream in 2026 and is AGPL-licensed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

import pulumi
import yaml
from pydantic import Field

from infra import versions
from infra.clouds.common import s3a_conf, taint_string
from infra.clouds.registry import TargetPlugin, register
from infra.config import DnsLabel, NodePool, TargetConfig
from infra.sources import Sources
from infra.target import (
    Access,
    ClusterArgs,
    ClusterTarget,
    IdentityBinding,
    ObjectStore,
    gpu_scheduling,
    pod_security_labels,
    pool_labels,
    pool_taints,
    prefix_of,
)


class KindConfig(TargetConfig):
    """``mlkit:target`` with ``type: kind``. Node pools become kind worker nodes (minSize of each)."""

    type: Literal["kind"]  # pyright: ignore[reportIncompatibleVariableOverride] - each block narrows its tag
    # The control-plane node runs system pods, and workers are containers, not machines.
    provisions_nodes: ClassVar[bool] = False
    store_keys: ClassVar[bool] = True  # the in-cluster SeaweedFS keys, in each team namespace

    cluster_name: DnsLabel = "mlkit"
    node_image: str = Field(default="kindest/node:v1.34.0", description="pins the Kubernetes version of the nodes")

    def node_pool_problems(self, pool: NodePool) -> list[tuple[str, str]]:
        problems = super().node_pool_problems(pool)
        if pool.machine_type:
            problems.append(("machineType", "kind nodes are containers on this machine; remove machineType"))
        return problems


def credential_problem(config: KindConfig, env: Mapping[str, str], home: Path) -> str | None:
    # kind needs no cloud account, but it needs a running Docker engine, not only the client.
    docker = shutil.which("docker", path=env.get("PATH", ""))
    if not docker:
        return None  # the docker tool check already names this
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        info = None
    if info is None or info.returncode != 0 or not info.stdout.strip():
        return "the Docker engine is not running (`docker info` fails): start Docker Desktop or `sudo systemctl start docker`"
    return None


# --- provisioning ----------------------------------------------------------------------------------

STORE_NAMESPACE = "mlkit-system"
STORE_ENDPOINT = f"http://seaweedfs-s3.{STORE_NAMESPACE}.svc.cluster.local:8333"


def kind_config(cluster: KindConfig, pools: list[NodePool]) -> str:
    """kind's cluster file: a control plane, and minSize workers per pool with the pool's labels and taints."""
    nodes = [{"role": "control-plane", "image": cluster.node_image}]
    for pool in pools:
        taints = ",".join(taint_string(t) for t in pool_taints(pool))
        patch = (
            {"kind": "JoinConfiguration", "nodeRegistration": {"kubeletExtraArgs": {"register-with-taints": taints}}}
            if taints
            else None
        )
        for _ in range(pool.min_size):
            node = {"role": "worker", "image": cluster.node_image, "labels": pool_labels(pool)}
            if patch:
                node["kubeadmConfigPatches"] = [yaml.safe_dump(patch)]
            nodes.append(node)
    return yaml.safe_dump(
        {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": cluster.cluster_name, "nodes": nodes},
        sort_keys=False,
    )


def store_identity(name: str, access_key: str, secret_key: str, actions: list[str]) -> dict:
    return {"name": name, "credentials": [{"accessKey": access_key, "secretKey": secret_key}], "actions": actions}


class KindCluster(pulumi.ComponentResource, ClusterTarget):
    """A kind cluster created by the kind CLI, and SeaweedFS as its S3-compatible store with a key per binding."""

    def __init__(self, name: str, args: ClusterArgs[KindConfig], opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:KindCluster", name, None, opts)
        import pulumi_command as command
        import pulumi_kubernetes as k8s

        cfg = args.config
        self.name, self.node_pools, self._bucket = name, args.node_pools, args.storage.bucket
        self._sources = Sources(args.charts)
        child = pulumi.ResourceOptions(parent=self)
        config_file = kind_config(cfg, list(args.node_pools))
        cluster = command.local.Command(
            f"{name}-kind",
            create=f"kind create cluster --name {cfg.cluster_name} --wait 180s --config -",
            delete=f"kind delete cluster --name {cfg.cluster_name}",
            stdin=config_file,
            triggers=[config_file],  # a changed node layout recreates the cluster
            # One name, one cluster: the old one must go before `kind create` can make the new one.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        # Read again whenever the cluster is made anew: a new cluster has a new port and CA.
        kubeconfig = command.local.Command(
            f"{name}-kubeconfig",
            create=f"kind get kubeconfig --name {cfg.cluster_name}",
            triggers=[cluster.id, config_file],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster], additional_secret_outputs=["stdout"]),
        )
        self.nodes_ready = (cluster,)
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=kubeconfig.stdout, opts=child)
        self._k8s = pulumi.ResourceOptions(parent=self, provider=self.provider)
        # Privileged: the SeaweedFS chart keeps its data on hostPath volumes, which baseline refuses.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-store",
            metadata={"name": STORE_NAMESPACE, "labels": pod_security_labels("privileged")},
            opts=self._k8s,
        )
        self._admin = self._key_pair("admin")
        self._identities: list[pulumi.Output[dict]] = [
            pulumi.Output.all(*self._admin).apply(
                lambda k: store_identity("admin", k[0], k[1], ["Admin", "Read", "Write", "List", "Tagging"])
            )
        ]
        self.object_store = ObjectStore(
            scheme="s3", bucket=args.storage.bucket, endpoint=STORE_ENDPOINT, region="us-east-1", path_style=True
        )
        self.gpu = gpu_scheduling(list(args.node_pools), device_plugin_managed=False)
        self.storage_class = "standard"  # kind's local-path provisioner
        self.image_pull_policy = "IfNotPresent"  # `make images KIND_CLUSTER=...` loads images into the nodes
        self.register_outputs({"clusterName": cfg.cluster_name})

    def _key_pair(self, key: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        import pulumi_random as random

        opts = pulumi.ResourceOptions(parent=self)
        access = random.RandomString(
            f"{self.name}-{key}-access", length=20, special=False, upper=True, lower=False, opts=opts
        )
        secret = random.RandomPassword(f"{self.name}-{key}-secret", length=40, special=False, opts=opts)
        return access.result, secret.result

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        key_prefix = prefix_of(prefix)
        access_key, secret_key = self._key_pair(f"{namespace}-{service_account}")
        scope = f"{self._bucket}/{key_prefix}"
        actions = [f"Read:{scope}", f"List:{scope}"] + ([f"Write:{scope}"] if access == "readwrite" else [])
        self._identities.append(
            pulumi.Output.all(access_key, secret_key).apply(
                lambda k: store_identity(f"{namespace}-{service_account}", k[0], k[1], actions)
            )
        )
        credentials = {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "MLKIT_S3_ENDPOINT": STORE_ENDPOINT,
        }
        return IdentityBinding(service_account, namespace, key_prefix, access, credentials=credentials)

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        # Keys come from the pod's environment (the binding's Secret); the store answers path-style over HTTP.
        return s3a_conf(
            endpoint=STORE_ENDPOINT,
            path_style=True,
            credentials="software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
        )

    def complete(self) -> None:
        """SeaweedFS with every identity the bindings asked for, and the platform bucket."""
        import pulumi_kubernetes as k8s

        config = pulumi.Output.all(*self._identities).apply(lambda ids: json.dumps({"identities": ids}))
        secret = k8s.core.v1.Secret(
            f"{self.name}-store-identities",
            metadata={"name": "seaweedfs-s3-identities", "namespace": STORE_NAMESPACE},
            string_data={"seaweedfs_s3_config": config},
            opts=pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(depends_on=[self.namespace])),
        )
        k8s.helm.v3.Release(
            f"{self.name}-seaweedfs",
            name="seaweedfs",
            **self._sources.chart("seaweedfs", versions.SEAWEEDFS_CHART),
            namespace=STORE_NAMESPACE,
            values={
                "master": {"replicas": 1},
                "volume": {"replicas": 1},
                "filer": {
                    "replicas": 1,
                    "s3": {
                        "enabled": True,
                        "enableAuth": True,
                        "existingConfigSecret": "seaweedfs-s3-identities",
                        "createBuckets": [{"name": self._bucket, "anonymousRead": False}],
                    },
                },
                "s3": {"enabled": True, "enableAuth": True, "existingConfigSecret": "seaweedfs-s3-identities"},
            },
            opts=pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(depends_on=[secret])),
        )


PLUGIN = register(
    TargetPlugin(
        config=KindConfig,
        provision=KindCluster,
        required_tools=("docker", "kind"),
        charts={"seaweedfs": versions.SEAWEEDFS_CHART},
        credential_problem=credential_problem,
    )
)

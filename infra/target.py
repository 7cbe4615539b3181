"""The ClusterTarget contract: what every target hands the platform layer, and nothing more.

Below it, one module per target (infra/clouds/<target>.py) provisions what differs between
clouds. Above it, everything is written once. A difference between targets is a field here,
never an `if` above.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import pulumi

from infra.config import NodePool, Taint

Access = Literal["read", "readwrite"]

# Every GPU node pool, on every target, carries these: the platform schedules by them alone.
GPU_TAINT = Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")
GPU_NODE_LABEL = "mlkit.io/gpu"  # value: the cloud-neutral GPU type (t4, a10g, ...)
POOL_LABEL = "mlkit.io/pool"


def pool_labels(pool: NodePool) -> dict[str, str]:
    """The labels a pool's nodes get: the user's, the pool name, and the GPU type on GPU pools."""
    labels = {**pool.labels, POOL_LABEL: pool.name}
    if pool.gpu:
        labels[GPU_NODE_LABEL] = pool.gpu.type
    return labels


def pool_taints(pool: NodePool) -> list[Taint]:
    """The taints a pool's nodes get: the user's, plus the GPU taint on GPU pools."""
    taints = list(pool.taints)
    if pool.gpu and all(t.key != GPU_TAINT.key for t in taints):
        taints.append(GPU_TAINT)
    return taints


@dataclass(frozen=True)
class ObjectStore:
    """The platform bucket as workloads address it."""

    scheme: Literal["s3", "gs", "abfss"]
    bucket: pulumi.Input[str]
    region: str | None = None
    endpoint: pulumi.Input[str] | None = None  # None: the cloud's own endpoint
    account: pulumi.Input[str] | None = None  # the Azure storage account holding the container
    path_style: bool = False

    def uri(self, prefix: str = "") -> pulumi.Output[str]:
        """e.g. s3://bucket/features/team, abfss://container@account.dfs.core.windows.net/features/team."""
        prefix = prefix.strip("/")
        if self.scheme == "abfss":
            return pulumi.Output.format("abfss://{0}@{1}.dfs.core.windows.net/{2}", self.bucket, self.account, prefix)
        return pulumi.Output.format("{0}://{1}/{2}", self.scheme, self.bucket, prefix)


@dataclass(frozen=True)
class GpuScheduling:
    """How GPU workloads reach GPU nodes on this target."""

    node_selector: dict[str, str]
    tolerations: list[dict]
    device_plugin_managed: bool  # True: the target installs the NVIDIA device plugin itself
    has_gpu_nodes: bool
    resource_name: str = "nvidia.com/gpu"


def gpu_scheduling(pools: list[NodePool], *, device_plugin_managed: bool) -> GpuScheduling:
    """The same selector and toleration on every target, from the labels and taint every GPU pool gets."""
    return GpuScheduling(
        node_selector={},  # pods select a GPU type with GPU_NODE_LABEL themselves; the plugin runs on any GPU node
        tolerations=[{"key": GPU_TAINT.key, "operator": "Exists", "effect": GPU_TAINT.effect}],
        device_plugin_managed=device_plugin_managed,
        has_gpu_nodes=any(p.gpu for p in pools),
    )


@dataclass
class IdentityBinding:
    """What a Kubernetes service account needs to read (and write) one storage prefix on this target."""

    service_account: str
    namespace: str
    prefix: str
    access: Access
    annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)  # on the ServiceAccount
    pod_labels: dict[str, str] = field(default_factory=dict)  # on pods running as it
    # S3 keys for targets without a cloud identity (kind, existing): the workspace puts them in a Secret.
    credentials: dict[str, pulumi.Input[str]] | None = None
    resources: list[pulumi.Resource] = field(default_factory=list)  # what was created, for depends_on


class ClusterTarget(ABC):
    """The same outputs on every target. Subclasses are ComponentResources in infra/clouds/."""

    name: str
    provider: pulumi.ProviderResource  # a pulumi_kubernetes Provider for the cluster
    object_store: ObjectStore
    gpu: GpuScheduling
    storage_class: str
    node_pools: list[NodePool]
    # False where nodes are simulated (kwok): no pod really runs, so an admission webhook served by a
    # platform pod would never answer and block what it guards; components leave such webhooks out.
    pods_run: bool = True

    @abstractmethod
    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        """Let ``namespace/service_account`` reach ``prefix`` of the platform bucket, and nothing else."""

    @abstractmethod
    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        """Spark's Hadoop settings (fs.*) so the same job reads and writes the store on this target."""

    def complete(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called once every binding is made; targets that configure bindings centrally finish here."""


def prefix_of(prefix: str) -> str:
    """A prefix as object keys start with it: no leading slash, one trailing slash."""
    prefix = prefix.strip("/")
    if not prefix:
        raise ValueError("a binding needs a non-empty prefix: a whole-bucket grant is never made")
    return prefix + "/"

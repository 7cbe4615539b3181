"""The ClusterTarget contract: what every target hands the platform layer, and nothing more.

Below it, one module per target (infra/clouds/<target>.py) provisions what differs between
clouds. Above it, everything is written once. A difference between targets is a field here,
never an `if` above.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import pulumi

from infra.config import ChartSource, NodePool, ObjectStorage, Taint, TargetConfig

if TYPE_CHECKING:
    from pulumi_kubernetes.networking.v1 import NetworkPolicyEgressRuleArgsDict as EgressRule
else:
    EgressRule = dict

Access = Literal["read", "readwrite"]

# Every GPU node pool, on every target, carries these: the platform schedules by them alone.
GPU_TAINT = Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")
GPU_NODE_LABEL = "mlkit.io/gpu"  # value: the cloud-neutral GPU type (t4, a10g, ...)
POOL_LABEL = "mlkit.io/pool"
# Ports of the admission webhooks platform pods serve (spark-operator, seldon-core-operator): the
# components set them, and targets whose control plane reaches nodes through a firewall open them.
WEBHOOK_PORTS = {"spark-operator": 9443, "seldon-core-operator": 4443}


def pool_labels(pool: NodePool) -> dict[str, str]:
    """The labels a pool's nodes get: the user's, the pool name, and the GPU type on GPU pools."""
    labels = {**pool.labels, POOL_LABEL: pool.name}
    if pool.gpu:
        labels[GPU_NODE_LABEL] = pool.gpu.type
    return labels


def pool_taints(pool: NodePool, imposed: tuple[Taint, ...] = ()) -> list[Taint]:
    """The taints a pool's nodes get: the user's, the GPU taint on GPU pools, and any the target imposes."""
    taints = list(pool.taints)
    for extra in ((GPU_TAINT,) if pool.gpu else ()) + imposed:
        if all(t.key != extra.key for t in taints):
            taints.append(extra)
    return taints


def toleration(taint: Taint) -> dict[str, str]:
    """The toleration a pod needs to run on nodes carrying ``taint``."""
    if taint.value:
        return {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
    return {"key": taint.key, "operator": "Exists", "effect": taint.effect}


@dataclass(frozen=True)
class PoolPlacement:
    """How a pod lands on one node pool: select it by its label, tolerate every taint its nodes carry."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]


def placement(pool: NodePool, imposed: tuple[Taint, ...] = ()) -> PoolPlacement:
    return PoolPlacement({POOL_LABEL: pool.name}, [toleration(t) for t in pool_taints(pool, imposed)])


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


C = TypeVar("C", bound=TargetConfig)


@dataclass(frozen=True)
class ClusterArgs(Generic[C]):
    """What a target's component is given: its own config block and the few stack facts below the contract."""

    config: C
    node_pools: tuple[NodePool, ...]
    storage: ObjectStorage
    kubernetes_version: str
    charts: ChartSource = field(default_factory=lambda: ChartSource())
    # The target provider's own stack settings (`aws:profile`, `azure-native:subscriptionId`, ...), as
    # keyword arguments of its explicit Provider: an explicit provider reads none of them by itself.
    provider_settings: Mapping[str, Any] = field(default_factory=dict)


# Pod Security Admission levels, least to most strict (docs/security.md lists each namespace's and why).
PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


def pod_security_labels(enforce: PodSecurityLevel) -> dict[str, str]:
    """The API server refuses pods below ``enforce``; below restricted, it still warns and audits what
    restricted would refuse, so a chart upgrade that could go stricter shows up in `kubectl` and the audit log."""
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


class ClusterTarget(ABC):
    """The same outputs on every target. Subclasses are ComponentResources in infra/clouds/."""

    name: str
    provider: pulumi.ProviderResource  # a pulumi_kubernetes Provider for the cluster
    object_store: ObjectStore
    gpu: GpuScheduling
    storage_class: str
    node_pools: tuple[NodePool, ...]
    # False where nodes are simulated (kwok): no pod really runs, so an admission webhook served by a
    # platform pod would never answer and block what it guards; components leave such webhooks out.
    pods_run: bool = True
    # What must exist before anything is scheduled: the node groups/pools. Helm releases wait for
    # their pods, so a release started while nodes are still being created times out.
    nodes_ready: tuple[pulumi.Resource, ...] = ()
    # NetworkPolicy egress rules team pods need on this target beyond the platform's own openings,
    # e.g. GKE's metadata server, through which Workload Identity hands out credentials.
    egress: tuple[EgressRule, ...] = ()
    # Taints the target puts on a pool's nodes by itself (AKS: spot pools), besides the user's and the GPU taint.
    imposed_taints: Mapping[str, tuple[Taint, ...]] = MappingProxyType({})
    # How kubelets pull the kit's images (its own pods and, through the team profile, the charts'): Always
    # checks a pod's right to a private image at every start; a target that side-loads images says IfNotPresent.
    image_pull_policy: Literal["Always", "IfNotPresent"] = "Always"

    def placements(self) -> dict[str, PoolPlacement]:
        """Per pool: the node selector and every toleration a pod needs to run there."""
        return {p.name: placement(p, self.imposed_taints.get(p.name, ())) for p in self.node_pools}

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

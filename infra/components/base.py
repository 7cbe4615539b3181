"""What every platform component shares: its type token, its children's options, a namespace."""

from __future__ import annotations

from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s

from infra.config import ChartSource
from infra.sources import Sources
from infra.target import Access, ClusterTarget, PodSecurityLevel, pod_security_labels

PART_OF = {"app.kubernetes.io/part-of": "mlkit"}
# The label TeamWorkspace gives each team namespace (its value the team).
TEAM_LABEL = "mlkit.io/team"
TEAM_NAMESPACES: k8s.networking.v1.NetworkPolicyPeerArgsDict = {
    "namespace_selector": {"match_expressions": [{"key": TEAM_LABEL, "operator": "Exists"}]}
}


def namespaces_named(*names: str) -> k8s.networking.v1.NetworkPolicyPeerArgsDict:
    return {
        "namespace_selector": {
            "match_expressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(names)}]
        }
    }


# What Pod Security's "restricted" level asks of every container the kit writes itself, and a read-only
# root filesystem (the policy pack's kit-workloads-hardened): what a container writes goes to a volume.
RESTRICTED: k8s.core.v1.SecurityContextArgsDict = {
    "run_as_non_root": True,
    "read_only_root_filesystem": True,
    "allow_privilege_escalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccomp_profile": {"type": "RuntimeDefault"},
}

# What an upstream operator's container gets where its chart takes a resources value: a request to be
# scheduled with, a memory limit, and a bound on what it writes to the node's disk (no CPU limit, as ours).
OPERATOR_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
    "limits": {"memory": "1Gi", "ephemeral-storage": "512Mi"},
}
# Upstream images are pulled at each start: a pinned tag, and the node's copy is checked against the registry.
ALWAYS_PULL = {"pullPolicy": "Always"}


def pod_security(user: int) -> k8s.core.v1.PodSecurityContextArgsDict:
    """A pod's security context: non-root as ``user`` (a group of the same number, which owns its volumes)."""
    return {"run_as_non_root": True, "run_as_user": user, "run_as_group": user, "fs_group": user}


# The same, as Helm values spell it: for upstream charts that take a container securityContext.
RESTRICTED_VALUES = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class HttpProbes(TypedDict):
    readiness_probe: k8s.core.v1.ProbeArgsDict
    liveness_probe: k8s.core.v1.ProbeArgsDict


def http_probes(ready: str, live: str | None, *, live_delay_s: int) -> HttpProbes:
    """Readiness and liveness probes over the container's `http` port.

    ``live`` None: the server has one health endpoint, and liveness only checks that it accepts connections,
    so a server too busy to answer in time is taken out of its Service, not restarted.
    """
    liveness: k8s.core.v1.ProbeArgsDict = {"initial_delay_seconds": live_delay_s, "period_seconds": 20}
    if live is None:
        liveness["tcp_socket"] = {"port": "http"}
    else:
        liveness["http_get"] = {"path": live, "port": "http"}
    return {
        "readiness_probe": {"http_get": {"path": ready, "port": "http"}, "period_seconds": 10},
        "liveness_probe": liveness,
    }


class PlatformComponent(pulumi.ComponentResource):
    """A component over the contract: children get the cluster's provider and this component as parent."""

    def __init__(
        self,
        kind: str,
        name: str,
        target: ClusterTarget,
        opts: pulumi.ResourceOptions | None = None,
        sources: Sources | None = None,
    ):
        super().__init__(f"mlkit:platform:{kind}", name, None, opts)
        self.name, self.target = name, target
        self.sources = sources or Sources(ChartSource())
        self.k8s_opts = pulumi.ResourceOptions(parent=self, provider=target.provider)

    def opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for a child that waits for ``depends_on`` and for the target's nodes.

        Releases wait for their pods, and pods for nodes: on a new cluster the node pools are still
        being created (minutes) when the cluster itself answers.
        """
        waits = [*self.target.nodes_ready, *depends_on]
        return pulumi.ResourceOptions.merge(self.k8s_opts, pulumi.ResourceOptions(depends_on=waits))

    def namespace(
        self, name: str, pod_security: PodSecurityLevel, labels: dict[str, str] | None = None
    ) -> k8s.core.v1.Namespace:
        """A namespace whose pods the API server holds to ``pod_security`` (the strictest its workloads allow)."""
        return k8s.core.v1.Namespace(
            f"{self.name}-ns-{name}",
            metadata={"name": name, "labels": {**PART_OF, **pod_security_labels(pod_security), **(labels or {})}},
            opts=self.k8s_opts,
        )

    def ingress_policy(
        self,
        key: str,
        namespace: str,
        pods: dict[str, str],
        port: int,
        peers: list[k8s.networking.v1.NetworkPolicyPeerArgsDict],
        *depends_on: pulumi.Resource,
    ) -> k8s.networking.v1.NetworkPolicy:
        """Only ``peers`` reach the ``pods`` (by labels), and only on ``port``. Egress stays open: the object
        store, a managed database and the cloud's identity endpoints differ per target."""
        return k8s.networking.v1.NetworkPolicy(
            f"{self.name}-{key}-ingress",
            metadata={"name": f"{key}-ingress", "namespace": namespace, "labels": PART_OF},
            spec={
                "pod_selector": {"match_labels": pods},
                "policy_types": ["Ingress"],
                "ingress": [{"from_": peers, "ports": [{"protocol": "TCP", "port": port}]}],
            },
            opts=self.opts(*depends_on),
        )

    def release(
        self,
        key: str,
        chart: str,
        version: str,
        namespace: pulumi.Input[str],
        values: dict,
        *depends_on: pulumi.Resource,
    ) -> k8s.helm.v3.Release:
        """A Helm release of a pinned chart version, from the stack's chart source."""
        return k8s.helm.v3.Release(
            f"{self.name}-{key}",
            name=key,
            **self.sources.chart(chart, version),
            namespace=namespace,
            values=values,
            opts=self.opts(*depends_on),
        )


def store_keys_secret(service_account: str) -> str:
    """The Secret of object-store keys that pods running as ``service_account`` load, where the target uses keys."""
    return f"{service_account}-object-store"


def bound_service_account(
    component: PlatformComponent,
    key: str,
    name: str,
    namespace: pulumi.Input[str],
    prefix: str,
    *depends_on: pulumi.Resource,
    access: Access = "readwrite",
    created_elsewhere: bool = False,
):
    """A ServiceAccount bound by the target to ``prefix`` of the platform bucket; its Secret of keys where the target uses keys.

    Returns (service account, binding). Pods running as it add ``binding.pod_labels``, and
    ``envFrom`` the Secret ``<name>-object-store`` when ``binding.credentials`` is set.
    ``created_elsewhere``: the account comes with another install (``depends_on`` it); it is patched,
    since creating it again fails with AlreadyExists.
    """
    binding = component.target.bind(name, namespace if isinstance(namespace, str) else key, prefix, access)
    kind = k8s.core.v1.ServiceAccountPatch if created_elsewhere else k8s.core.v1.ServiceAccount
    account = kind(
        f"{component.name}-{key}-sa",
        metadata={"name": name, "namespace": namespace, "annotations": binding.annotations, "labels": PART_OF},
        opts=component.opts(*depends_on, *binding.resources),
    )
    if binding.credentials:
        k8s.core.v1.Secret(
            f"{component.name}-{key}-keys",
            metadata={"name": store_keys_secret(name), "namespace": namespace, "labels": PART_OF},
            string_data={k: pulumi.Output.secret(v) for k, v in binding.credentials.items()},
            opts=component.opts(*depends_on),
        )
    return account, binding

"""GCP target: VPC, GKE (Dataplane V2, Workload Identity, Google Groups for RBAC), node pools, GCS with managed folders."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pulumi
from pydantic import Field, model_validator

from infra.clouds.common import EFFECT_ENUMS, bounded_name, exec_kubeconfig, gcs_conf
from infra.clouds.registry import TargetPlugin, register
from infra.config import Cidr, NodePool, ObjectStorage, TargetConfig, Team, cidr_overlaps
from infra.target import (
    WEBHOOK_PORTS,
    Access,
    ClusterArgs,
    ClusterTarget,
    EgressRule,
    IdentityBinding,
    ObjectStore,
    gpu_scheduling,
    pool_labels,
    pool_taints,
    prefix_of,
)

# Cloud-neutral GPU type -> GKE accelerator type (a few machine series need their own, see accelerator()).
ACCELERATORS = {
    "t4": "nvidia-tesla-t4",
    "v100": "nvidia-tesla-v100",
    "l4": "nvidia-l4",
    "a100": "nvidia-tesla-a100",
    "a100-80gb": "nvidia-a100-80gb",
    "h100": "nvidia-h100-80gb",
    "h200": "nvidia-h200-141gb",
}
# g2 machines carry a fixed number of L4s by size; other GPU series say it in the name (a2-highgpu-4g).
G2_GPUS = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")


def accelerator(gpu_type: str, machine_type: str) -> str:
    """The accelerator GKE expects for this GPU on this machine series."""
    if gpu_type == "h100" and machine_type.startswith("a3-megagpu-"):
        return "nvidia-h100-mega-80gb"
    return ACCELERATORS[gpu_type]


class GcpConfig(TargetConfig):
    """``mlkit:target`` with ``type: gcp``."""

    type: Literal["gcp"]  # pyright: ignore[reportIncompatibleVariableOverride] - each block narrows its tag
    # Accelerators attach to N1 machines; the newer ones come only with their own series.
    cluster_name_rule: ClassVar[tuple[str, str]] = (
        r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?",
        "lowercase letters, digits and '-', at most 40 characters (a GKE rule)",
    )
    gpu_machine_types: ClassVar[dict[str, str]] = {
        "t4": r"n1-",
        "v100": r"n1-",
        "l4": r"g2-standard-",
        "a100": r"a2-(highgpu|megagpu)-",
        "a100-80gb": r"a2-ultragpu-",
        "h100": r"a3-(highgpu|megagpu|edgegpu)-",
        "h200": r"a3-ultragpu-",
    }
    pool_name_rule: ClassVar[tuple[str, str]] = (
        r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?",
        "lowercase letters, digits and '-', at most 40 characters",
    )

    project: str = Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    region: str = Field(pattern=r"^[a-z]+-[a-z]+\d$")
    zones: list[str] = Field(min_length=1)
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] | None = Field(
        default="REGULAR", description="unset pins kubernetes.version with no automatic upgrades"
    )
    private_nodes: bool = True
    public_access_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"], description="who may reach the public API endpoint"
    )
    rbac_security_group: str | None = Field(
        default=None,
        description="the gke-security-groups@<domain> Google Group whose member groups team RBAC may name",
    )
    subnet_cidr: Cidr = "10.0.0.0/20"
    pods_cidr: Cidr = "10.4.0.0/14"
    services_cidr: Cidr = "10.8.0.0/20"
    master_cidr: Cidr = "172.16.0.32/28"

    @model_validator(mode="after")
    def _consistent_network(self) -> GcpConfig:
        strays = [z for z in self.zones if not re.fullmatch(re.escape(self.region) + r"-[a-z]", z)]
        if strays:
            raise ValueError(f"zones {strays} are not zones of region {self.region!r} (e.g. {self.region}-a)")
        overlaps = cidr_overlaps(self.subnet_cidr, self.pods_cidr, self.services_cidr, self.master_cidr)
        if overlaps:
            raise ValueError(f"network ranges overlap: {overlaps}")
        if self.rbac_security_group is not None and not self.rbac_security_group.startswith("gke-security-groups@"):
            raise ValueError(
                f"rbacSecurityGroup {self.rbac_security_group!r}: GKE accepts only gke-security-groups@<your domain>"
            )
        return self

    def gpu_counts(self, machine_type: str) -> tuple[int, ...] | None:
        if match := re.fullmatch(r"g2-standard-(\d+)", machine_type):
            size = int(match.group(1))
            return (G2_GPUS[size],) if size in G2_GPUS else None
        if match := re.fullmatch(r"a[23]-\w+-(\d+)g", machine_type):
            return (int(match.group(1)),)
        return None  # N1 takes 1, 2, 4 (or 8) of its accelerator

    def team_problems(self, team: Team) -> list[tuple[str, str]]:
        # GKE maps Google accounts to RBAC users; groups only through Google Groups for RBAC.
        problems = [
            (f"members.{i}", f"{m!r} is not a Google account: GKE knows users by email")
            for i, m in enumerate(team.members)
            if not _EMAIL.match(m)
        ]
        for i, group in enumerate(team.groups):
            if not _EMAIL.match(group):
                problems.append((f"groups.{i}", f"{group!r} is not a Google Group: GKE knows groups by email"))
            elif self.rbac_security_group is None:
                problems.append(
                    (
                        f"groups.{i}",
                        "GKE sees no group without Google Groups for RBAC: set mlkit:target.rbacSecurityGroup "
                        "to gke-security-groups@<your domain> and make this group a member of it",
                    )
                )
        return problems


def credential_problem(config: GcpConfig, env: Mapping[str, str], home: Path) -> str | None:
    if env.get("GOOGLE_APPLICATION_CREDENTIALS") or env.get("GOOGLE_CREDENTIALS"):
        return None
    if (home / ".config" / "gcloud" / "application_default_credentials.json").is_file():
        return None
    return "no Google credentials: run `gcloud auth application-default login`"


# --- provisioning ----------------------------------------------------------------------------------

# Workload Identity hands out tokens through the GKE metadata server; Dataplane V2 also serves it on .252:988.
METADATA_EGRESS: tuple[EgressRule, ...] = (
    {"to": [{"ip_block": {"cidr": "169.254.169.254/32"}}], "ports": [{"protocol": "TCP", "port": 80}]},
    {"to": [{"ip_block": {"cidr": "169.254.169.252/32"}}], "ports": [{"protocol": "TCP", "port": 988}]},
)
OBJECT_ROLES = {"readwrite": "roles/storage.objectUser", "read": "roles/storage.objectViewer"}


class GcpNetwork(pulumi.ComponentResource):
    """A VPC with the nodes' subnet and its pod and service ranges, Cloud NAT for private nodes."""

    def __init__(self, name: str, config: GcpConfig, opts: pulumi.ResourceOptions):
        super().__init__("mlkit:gcp:Network", name, None, opts)
        import pulumi_gcp as gcp

        child = pulumi.ResourceOptions(parent=self)
        self.network = gcp.compute.Network(f"{name}-vpc", auto_create_subnetworks=False, opts=child)
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            network=self.network.id,
            region=config.region,
            ip_cidr_range=config.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": "pods", "ip_cidr_range": config.pods_cidr},
                {"range_name": "services", "ip_cidr_range": config.services_cidr},
            ],
            opts=child,
        )
        router = gcp.compute.Router(f"{name}-router", network=self.network.id, region=config.region, opts=child)
        gcp.compute.RouterNat(
            f"{name}-nat",
            router=router.name,
            region=config.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            opts=child,
        )
        self.register_outputs({"network": self.network.id})


class GkeCluster(pulumi.ComponentResource):
    """GKE with its own node service account, Dataplane V2, Workload Identity, authorised networks, and the webhook firewall."""

    def __init__(self, name: str, config: GcpConfig, version: str, network: GcpNetwork, opts: pulumi.ResourceOptions):
        super().__init__("mlkit:gcp:GkeCluster", name, None, opts)
        import pulumi_gcp as gcp

        child = pulumi.ResourceOptions(parent=self)
        self.node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=bounded_name(f"{name}-nodes", 30),
            display_name=f"{name} GKE nodes",
            opts=child,
        )
        self.node_member = self.node_account.email.apply(lambda e: f"serviceAccount:{e}")
        for role in ("roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/artifactregistry.reader"):
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[-1]}",
                project=config.project,
                role=role,
                member=self.node_member,
                opts=child,
            )
        self.cluster = gcp.container.Cluster(
            f"{name}-gke",
            name=name,
            location=config.region,
            node_locations=config.zones,
            network=network.network.id,
            subnetwork=network.subnet.id,
            remove_default_node_pool=True,
            initial_node_count=1,
            # The short-lived default pool runs as the kit's node account too, not the default compute one.
            node_config={
                "service_account": self.node_account.email,
                "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            },
            deletion_protection=False,
            release_channel={"channel": config.release_channel or "UNSPECIFIED"},
            min_master_version=None if config.release_channel else version,
            workload_identity_config={"workload_pool": f"{config.project}.svc.id.goog"},
            ip_allocation_policy={"cluster_secondary_range_name": "pods", "services_secondary_range_name": "services"},
            private_cluster_config={
                "enable_private_nodes": True,
                "enable_private_endpoint": False,
                "master_ipv4_cidr_block": config.master_cidr,
            }
            if config.private_nodes
            else None,
            master_authorized_networks_config={
                "cidr_blocks": [
                    {"cidr_block": c, "display_name": f"allowed-{i}"} for i, c in enumerate(config.public_access_cidrs)
                ],
                "gcp_public_cidrs_access_enabled": False,
            },
            # Dataplane V2 (eBPF) enforces NetworkPolicy itself; the legacy Calico add-on is not needed.
            datapath_provider="ADVANCED_DATAPATH",
            authenticator_groups_config={"security_group": config.rbac_security_group}
            if config.rbac_security_group
            else None,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["nodeConfig"]),
        )
        if config.private_nodes:
            # Private nodes: the control plane reaches them on 443 and 10250 only, unless a rule opens more.
            gcp.compute.Firewall(
                f"{name}-webhooks",
                network=network.network.id,
                direction="INGRESS",
                source_ranges=[config.master_cidr],
                target_service_accounts=[self.node_account.email],
                allows=[{"protocol": "tcp", "ports": [str(p) for p in sorted(WEBHOOK_PORTS.values())]}],
                description="GKE control plane to the platform's admission webhooks",
                opts=child,
            )
        ca = self.cluster.master_auth.apply(lambda m: m.cluster_ca_certificate or "")
        self.kubeconfig = exec_kubeconfig(
            self.cluster.endpoint.apply(lambda e: f"https://{e}"),
            ca,
            self.cluster.name,
            "gke-gcloud-auth-plugin",
            provide_cluster_info=True,
        )
        self.register_outputs({"clusterName": self.cluster.name})


class GkeNodePools(pulumi.ComponentResource):
    """A node pool per stack pool: autoscaled by region-wide totals, GPUs with managed drivers, GKE metadata for pods."""

    def __init__(
        self,
        name: str,
        config: GcpConfig,
        cluster: GkeCluster,
        pools: tuple[NodePool, ...],
        opts: pulumi.ResourceOptions,
    ):
        super().__init__("mlkit:gcp:GkeNodePools", name, None, opts)
        import pulumi_gcp as gcp

        zones = max(len(config.zones), 1)
        self.pools: dict[str, pulumi.Resource] = {}
        for pool in pools:
            assert pool.machine_type, "validation requires a machine type on GCP"
            accelerators: list[gcp.container.NodePoolNodeConfigGuestAcceleratorArgsDict] = (
                [
                    {
                        "type": accelerator(pool.gpu.type, pool.machine_type),
                        "count": pool.gpu.count,
                        "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"},
                    }
                ]
                if pool.gpu
                else []
            )
            node_config: gcp.container.NodePoolNodeConfigArgsDict = {
                "machine_type": pool.machine_type,
                "spot": pool.spot,
                "disk_size_gb": pool.disk_size_gb,
                "service_account": cluster.node_account.email,
                "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                "labels": pool_labels(pool),
                "taints": [
                    {"key": t.key, "value": t.value, "effect": EFFECT_ENUMS[t.effect]} for t in pool_taints(pool)
                ],
                "workload_metadata_config": {"mode": "GKE_METADATA"},  # pods get Workload Identity, not the node's SA
                "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
                "guest_accelerators": accelerators or None,
            }
            self.pools[pool.name] = gcp.container.NodePool(
                f"{name}-{pool.name}",
                # A prefix, not a name: a change that replaces the pool creates the new one beside the old.
                # GKE appends 26 characters to a prefix and allows 40 in all.
                name_prefix=bounded_name(pool.name, 13) + "-",
                cluster=cluster.cluster.id,
                location=config.region,
                # Totals across the region's zones, so min/max mean what the stack file says.
                autoscaling={
                    "total_min_node_count": pool.min_size,
                    "total_max_node_count": pool.max_size,
                    "location_policy": "ANY" if pool.spot else "BALANCED",
                },
                # Per zone; rounded up, so a minimum of 1 over 2 zones still starts a node.
                initial_node_count=math.ceil(pool.min_size / zones),
                management={"auto_repair": True, "auto_upgrade": True},
                node_config=node_config,
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
            )
        self.register_outputs({})


class GcsBucket(pulumi.ComponentResource):
    """The platform bucket: uniform access, never public, versioned, old versions deleted."""

    def __init__(self, name: str, config: GcpConfig, storage: ObjectStorage, opts: pulumi.ResourceOptions):
        super().__init__("mlkit:gcp:Bucket", name, None, opts)
        import pulumi_gcp as gcp

        old_versions: gcp.storage.BucketLifecycleRuleArgsDict = {
            "action": {"type": "Delete"},
            "condition": {"days_since_noncurrent_time": storage.noncurrent_version_days, "with_state": "ARCHIVED"},
        }
        retention: list[gcp.storage.BucketLifecycleRuleArgsDict] = (
            [{"action": {"type": "Delete"}, "condition": {"age": storage.retention_days}}]
            if storage.retention_days
            else []
        )
        # Data at rest is always encrypted on GCS (Google-managed keys); `encryption` needs no resource here.
        self.bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            name=storage.bucket,
            location=config.region.upper(),
            uniform_bucket_level_access=True,  # managed folders (per-prefix IAM) need it
            public_access_prevention="enforced" if storage.block_public_access else "inherited",
            versioning={"enabled": storage.versioning},
            lifecycle_rules=[old_versions, *retention],
            force_destroy=storage.force_destroy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"bucket": self.bucket.name})


class GcpCluster(pulumi.ComponentResource, ClusterTarget):
    """Network, GKE and its node pools, the platform bucket, a Google service account per binding on a managed folder."""

    def __init__(self, name: str, args: ClusterArgs[GcpConfig], opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:GcpCluster", name, None, opts)
        import pulumi_gcp as gcp
        import pulumi_kubernetes as k8s

        config = args.config
        self.name, self._gcp, self._project = name, gcp, config.project
        self.node_pools = args.node_pools
        provider = gcp.Provider(
            f"{name}-gcp",
            project=config.project,
            region=config.region,
            default_labels={"mlkit-stack": name, "managed-by": "pulumi"},
            **args.provider_settings,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._child = child = pulumi.ResourceOptions(parent=self, provider=provider)
        network = GcpNetwork(name, config, child)
        self.gke = GkeCluster(name, config, args.kubernetes_version, network, child)
        self.nodes_ready = tuple(GkeNodePools(name, config, self.gke, args.node_pools, child).pools.values())
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.gke.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )
        self.bucket = GcsBucket(name, config, args.storage, child).bucket
        self._folders: dict[str, Any] = {}
        self._force_destroy = args.storage.force_destroy  # prefix -> gcp.storage.ManagedFolder
        self.object_store = ObjectStore(scheme="gs", bucket=self.bucket.name, region=config.region)
        self.gpu = gpu_scheduling(list(args.node_pools), device_plugin_managed=True)  # GKE installs driver and plugin
        self.storage_class = "standard-rwo"
        self.egress = METADATA_EGRESS
        self.register_outputs({"clusterName": self.gke.cluster.name, "bucket": self.bucket.name})

    def _folder(self, prefix: str):
        """One managed folder per prefix: IAM on it covers its objects and listing them, and nothing else in the bucket."""
        if prefix not in self._folders:
            self._folders[prefix] = self._gcp.storage.ManagedFolder(
                f"{self.name}-folder-{prefix.strip('/').replace('/', '-')}",
                bucket=self.bucket.name,
                name=prefix,
                force_destroy=self._force_destroy,
                opts=self._child,
            )
        return self._folders[prefix]

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        gcp = self._gcp
        key_prefix = prefix_of(prefix)
        # Account ids are 6-30 characters; a hash keeps them unique for any namespace and name.
        account_id = f"wi-{hashlib.sha256(f'{self.name}/{namespace}/{service_account}'.encode()).hexdigest()[:12]}"
        key = f"{self.name}-{namespace}-{service_account}"
        gsa = gcp.serviceaccount.Account(
            key, account_id=account_id, display_name=f"{namespace}/{service_account} on {self.name}", opts=self._child
        )
        # The identity pool <project>.svc.id.goog exists only once the project's first WI cluster does.
        workload_identity = gcp.serviceaccount.IAMMember(
            key,
            service_account_id=gsa.name,
            role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{self._project}.svc.id.goog[{namespace}/{service_account}]",
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=[self.gke.cluster])),
        )
        folder = self._folder(key_prefix)
        folder_access = gcp.storage.ManagedFolderIamMember(
            key,
            bucket=self.bucket.name,
            managed_folder=folder.name,
            role=OBJECT_ROLES[access],
            member=gsa.email.apply(lambda e: f"serviceAccount:{e}"),
            opts=self._child,
        )
        return IdentityBinding(
            service_account,
            namespace,
            key_prefix,
            access,
            annotations={"iam.gke.io/gcp-service-account": gsa.email},
            resources=[gsa, workload_identity, folder_access],
        )

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        # The GCS connector picks up Workload Identity through the metadata server.
        return gcs_conf(self._project)


PLUGIN = register(
    TargetPlugin(
        config=GcpConfig,
        provision=GcpCluster,
        required_tools=("gcloud",),
        provider_namespace="gcp",
        provider_keys=(
            "credentials",
            "accessToken",
            "impersonateServiceAccount",
            "billingProject",
            "userProjectOverride",
        ),
        credential_problem=credential_problem,
    )
)

"""GCP target: VPC, GKE with Workload Identity, node pools, GCS."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

import pulumi
from pydantic import Field, model_validator

from infra.config import Cidr, TargetConfig, cidr_overlaps
from infra.target import (
    Access,
    ClusterTarget,
    IdentityBinding,
    ObjectStore,
    gpu_scheduling,
    pool_labels,
    pool_taints,
    prefix_of,
)

# Cloud-neutral GPU type -> GKE accelerator type.
ACCELERATORS = {
    "t4": "nvidia-tesla-t4",
    "v100": "nvidia-tesla-v100",
    "l4": "nvidia-l4",
    "a100": "nvidia-tesla-a100",
    "a100-80gb": "nvidia-a100-80gb",
    "h100": "nvidia-h100-80gb",
    "h200": "nvidia-h200-141gb",
}


class GcpConfig(TargetConfig):
    """The ``gcp:`` block of a stack."""

    # Accelerators attach to N1 machines; the newer ones come only with their own series.
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
    required_tools: ClassVar[tuple[str, ...]] = ("gcloud",)

    project: str = Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    region: str = Field(pattern=r"^[a-z]+-[a-z]+\d$")
    zones: list[str] = Field(min_length=1)
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] | None = Field(
        "REGULAR", description="unset pins kubernetes.version with no automatic upgrades"
    )
    private_nodes: bool = True
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
        return self

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if env.get("GOOGLE_APPLICATION_CREDENTIALS") or env.get("GOOGLE_CREDENTIALS"):
            return None
        if (home / ".config" / "gcloud" / "application_default_credentials.json").is_file():
            return None
        return "no Google credentials: run `gcloud auth application-default login`"

    def provision(self, name: str, stack, opts=None):
        return GcpCluster(name, stack, opts)


# --- provisioning ----------------------------------------------------------------------------------


def prefix_condition(bucket: str, prefix: str) -> dict:
    """IAM condition: objects under the prefix, and bucket-level calls (listing) on this bucket only."""
    return {
        "title": f"only {prefix}",
        "description": f"objects under gs://{bucket}/{prefix} (listing is granted on the bucket, reading only under the prefix)",
        "expression": f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}") || resource.name == "projects/_/buckets/{bucket}"',
    }


class GcpCluster(pulumi.ComponentResource, ClusterTarget):
    """VPC with secondary ranges and Cloud NAT, GKE with Workload Identity, node pools, GCS, per-account GSAs."""

    def __init__(self, name: str, stack, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:GcpCluster", name, None, opts)
        import pulumi_gcp as gcp
        import pulumi_kubernetes as k8s

        self.name, self._gcp = name, gcp
        cfg: GcpConfig = stack.gcp
        self._project = cfg.project
        self.node_pools = stack.node_pools
        provider = gcp.Provider(
            f"{name}-gcp",
            project=cfg.project,
            region=cfg.region,
            default_labels={"mlkit-stack": name, "managed-by": "pulumi"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._child = child = pulumi.ResourceOptions(parent=self, provider=provider)

        network = gcp.compute.Network(f"{name}-vpc", auto_create_subnetworks=False, opts=child)
        subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            network=network.id,
            region=cfg.region,
            ip_cidr_range=cfg.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": "pods", "ip_cidr_range": cfg.pods_cidr},
                {"range_name": "services", "ip_cidr_range": cfg.services_cidr},
            ],
            opts=child,
        )
        router = gcp.compute.Router(f"{name}-router", network=network.id, region=cfg.region, opts=child)
        gcp.compute.RouterNat(
            f"{name}-nat",
            router=router.name,
            region=cfg.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            opts=child,
        )

        node_sa = gcp.serviceaccount.Account(
            f"{name}-nodes", account_id=f"{name}-nodes"[:30], display_name=f"{name} GKE nodes", opts=child
        )
        for role in ("roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/artifactregistry.reader"):
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[-1]}",
                project=cfg.project,
                role=role,
                member=node_sa.email.apply(lambda e: f"serviceAccount:{e}"),
                opts=child,
            )

        self.cluster = gcp.container.Cluster(
            f"{name}-gke",
            name=name,
            location=cfg.region,
            node_locations=cfg.zones,
            network=network.id,
            subnetwork=subnet.id,
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=False,
            release_channel={"channel": cfg.release_channel} if cfg.release_channel else {"channel": "UNSPECIFIED"},
            min_master_version=None if cfg.release_channel else stack.kubernetes.version,
            workload_identity_config={"workload_pool": f"{cfg.project}.svc.id.goog"},
            ip_allocation_policy={"cluster_secondary_range_name": "pods", "services_secondary_range_name": "services"},
            private_cluster_config={
                "enable_private_nodes": cfg.private_nodes,
                "enable_private_endpoint": False,
                "master_ipv4_cidr_block": cfg.master_cidr,
            }
            if cfg.private_nodes
            else None,
            network_policy={"enabled": True, "provider": "CALICO"},
            opts=child,
        )
        for pool in stack.node_pools:
            node_config = {
                "machine_type": pool.machine_type,
                "spot": pool.spot,
                "disk_size_gb": pool.disk_size_gb,
                "service_account": node_sa.email,
                "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                "labels": pool_labels(pool),
                "taints": [{"key": t.key, "value": t.value, "effect": EFFECTS[t.effect]} for t in pool_taints(pool)],
                "workload_metadata_config": {"mode": "GKE_METADATA"},  # pods get Workload Identity, not the node's SA
                "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
            }
            if pool.gpu:
                node_config["guest_accelerators"] = [
                    {
                        "type": ACCELERATORS[pool.gpu.type],
                        "count": pool.gpu.count,
                        "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"},
                    }
                ]
            gcp.container.NodePool(
                f"{name}-{pool.name}",
                name=pool.name,
                cluster=self.cluster.id,
                location=cfg.region,
                # Totals across the region's zones, so min/max mean what the stack file says.
                autoscaling={
                    "total_min_node_count": pool.min_size,
                    "total_max_node_count": pool.max_size,
                    "location_policy": "ANY" if pool.spot else "BALANCED",
                },
                initial_node_count=pool.min_size // max(len(cfg.zones), 1) if pool.min_size else 0,
                management={"auto_repair": True, "auto_upgrade": True},
                node_config=node_config,
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["initialNodeCount"])),
            )
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self._kubeconfig(), opts=pulumi.ResourceOptions(parent=self)
        )

        storage = stack.storage
        rules = [
            {
                "action": {"type": "Delete"},
                "condition": {"days_since_noncurrent_time": storage.noncurrent_version_days, "with_state": "ARCHIVED"},
            }
        ]
        if storage.retention_days:
            rules.append({"action": {"type": "Delete"}, "condition": {"age": storage.retention_days}})
        self.bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            name=storage.bucket,
            location=cfg.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced" if storage.block_public_access else "inherited",
            versioning={"enabled": storage.versioning},
            lifecycle_rules=rules,
            force_destroy=storage.force_destroy,
            opts=child,
        )
        # Data at rest is always encrypted on GCS (Google-managed keys); `encryption` needs no resource here.
        self.object_store = ObjectStore(scheme="gs", bucket=self.bucket.name, region=cfg.region)
        self.gpu = gpu_scheduling(stack.node_pools, device_plugin_managed=True)  # GKE installs driver and plugin
        self.storage_class = "standard-rwo"
        self.register_outputs({"clusterName": self.cluster.name, "bucket": self.bucket.name})

    def _kubeconfig(self) -> pulumi.Output[str]:
        def render(args):
            endpoint, ca, cluster = args
            return json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": cluster,
                            "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca},
                        }
                    ],
                    "users": [
                        {
                            "name": cluster,
                            "user": {
                                "exec": {
                                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                                    "command": "gke-gcloud-auth-plugin",
                                    "provideClusterInfo": True,
                                }
                            },
                        }
                    ],
                    "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
                    "current-context": cluster,
                }
            )

        ca = self.cluster.master_auth.apply(lambda m: m.cluster_ca_certificate)
        return pulumi.Output.secret(pulumi.Output.all(self.cluster.endpoint, ca, self.cluster.name).apply(render))

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        gcp = self._gcp
        key_prefix = prefix_of(prefix)
        # Account ids are 6-30 characters; a hash keeps them unique for any namespace and name.
        account_id = f"wi-{hashlib.sha256(f'{self.name}/{namespace}/{service_account}'.encode()).hexdigest()[:12]}"
        key = f"{self.name}-{namespace}-{service_account}"
        gsa = gcp.serviceaccount.Account(
            key, account_id=account_id, display_name=f"{namespace}/{service_account} on {self.name}", opts=self._child
        )
        workload_identity = gcp.serviceaccount.IAMMember(
            key,
            service_account_id=gsa.name,
            role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{self._project}.svc.id.goog[{namespace}/{service_account}]",
            opts=self._child,
        )
        bucket_access = gcp.storage.BucketIAMMember(
            key,
            bucket=self.bucket.name,
            role="roles/storage.objectUser" if access == "readwrite" else "roles/storage.objectViewer",
            member=gsa.email.apply(lambda e: f"serviceAccount:{e}"),
            condition=self.bucket.name.apply(lambda b: prefix_condition(b, key_prefix)),
            opts=self._child,
        )
        return IdentityBinding(
            service_account,
            namespace,
            key_prefix,
            access,
            annotations={"iam.gke.io/gcp-service-account": gsa.email},
            resources=[gsa, workload_identity, bucket_access],
        )

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        # The GCS connector picks up Workload Identity through the metadata server.
        return {
            "fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
            "fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
            "fs.gs.project.id": self._project,
        }


EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}

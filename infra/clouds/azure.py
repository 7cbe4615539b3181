"""Azure target: resource group, VNet, AKS with workload identity, ADLS Gen2."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pulumi
from pydantic import Field

from infra.config import Cidr, TargetConfig
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


class AzureConfig(TargetConfig):
    """The ``azure:`` block of a stack. The stack's storage bucket is a container in ``storageAccount``."""

    # VM size families by the GPU they carry.
    gpu_machine_types: ClassVar[dict[str, str]] = {
        "t4": r"Standard_NC\d+as_T4_v3$",
        "v100": r"Standard_NC\d+s_v3$",
        "a10": r"Standard_NV\d+ads_A10_v5$",
        "a100": r"Standard_(NC\d+ads_A100_v4|ND96asr_v4)$",
        "a100-80gb": r"Standard_ND96amsr_A100_v4$",
        "h100": r"Standard_(NC\d+ads_H100_v5|ND96isr_H100_v5)$",
    }
    # AKS: Linux agent pool names are 1-12 lowercase letters and digits.
    pool_name_rule: ClassVar[tuple[str, str]] = (
        r"[a-z][a-z0-9]{0,11}",
        "1-12 lowercase letters and digits, starting with a letter (an AKS rule)",
    )
    required_tools: ClassVar[tuple[str, ...]] = ("az",)

    location: str = Field(pattern=r"^[a-z]+[a-z0-9]*$")
    resource_group: str | None = Field(None, description="defaults to mlkit-<stack>")
    storage_account: str = Field(pattern=r"^[a-z0-9]{3,24}$")
    vnet_cidr: Cidr = "10.20.0.0/16"
    private_cluster: bool = False

    def bucket_name_problem(self, name: str) -> str | None:
        if not re.fullmatch(r"[a-z0-9](-?[a-z0-9])+", name) or len(name) > 63:
            return f"{name!r} is not a valid blob container name: 3-63 lowercase letters, digits and single '-'"
        return None

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if env.get("ARM_CLIENT_ID") or env.get("AZURE_CLIENT_ID"):
            return None
        if (home / ".azure" / "azureProfile.json").is_file():
            return None
        return "no Azure credentials: run `az login` (and `az account set --subscription ...`)"

    def provision(self, name: str, stack, opts=None):
        return AzureCluster(name, stack, opts)


# --- provisioning ----------------------------------------------------------------------------------

# Built-in role definitions (the same ids in every tenant).
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


def prefix_condition(prefix: str) -> str:
    """ABAC condition: blob data actions only on paths under the prefix, listing only with that prefix."""
    return (
        "("
        f" ( !(ActionMatches{{'{BLOBS}/read'}} AND NOT SubOperationMatches{{'Blob.List'}})"
        f"   AND !(ActionMatches{{'{BLOBS}/write'}}) AND !(ActionMatches{{'{BLOBS}/delete'}})"
        f"   AND !(ActionMatches{{'{BLOBS}/add/action'}}) AND !(ActionMatches{{'{BLOBS}/move/action'}}) )"
        f" OR (@Resource[{BLOBS}:path] StringStartsWith '{prefix}')"
        ") AND ("
        f" !(ActionMatches{{'{BLOBS}/read'}} AND SubOperationMatches{{'Blob.List'}})"
        f" OR (@Request[{BLOBS}:prefix] StringStartsWith '{prefix}')"
        ")"
    )


class AzureCluster(pulumi.ComponentResource, ClusterTarget):
    """Resource group, VNet, AKS with OIDC issuer and workload identity, agent pools, ADLS Gen2, federated identities."""

    def __init__(self, name: str, stack, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:AzureCluster", name, None, opts)
        import pulumi_azure_native as azure
        import pulumi_kubernetes as k8s

        self.name, self._azure = name, azure
        cfg: AzureConfig = stack.azure
        self.node_pools = stack.node_pools
        provider = azure.Provider(f"{name}-azure", location=cfg.location, opts=pulumi.ResourceOptions(parent=self))
        self._child = child = pulumi.ResourceOptions(parent=self, provider=provider)
        tags = {"mlkit-stack": name, "managed-by": "pulumi"}

        self.group = azure.resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=cfg.resource_group or f"mlkit-{name}",
            location=cfg.location,
            tags=tags,
            opts=child,
        )
        vnet = azure.network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=self.group.name,
            location=cfg.location,
            address_space={"address_prefixes": [cfg.vnet_cidr]},
            tags=tags,
            opts=child,
        )
        subnet = azure.network.Subnet(
            f"{name}-nodes",
            resource_group_name=self.group.name,
            virtual_network_name=vnet.name,
            address_prefix=cfg.vnet_cidr,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["delegations"])),
        )

        def profile(pool) -> dict:
            spot = (
                {"scale_set_priority": "Spot", "scale_set_eviction_policy": "Delete", "spot_max_price": -1}
                if pool.spot
                else {}
            )
            return {
                "vm_size": pool.machine_type,
                "os_type": "Linux",
                "type": "VirtualMachineScaleSets",
                "vnet_subnet_id": subnet.id,
                "enable_auto_scaling": True,
                "min_count": pool.min_size,
                "max_count": pool.max_size,
                "count": pool.min_size,
                "os_disk_size_gb": pool.disk_size_gb,
                "node_labels": pool_labels(pool),
                "node_taints": [
                    f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in pool_taints(pool)
                ],
                **spot,
            }

        # AKS needs its system pool inline: the first always-on CPU pool (the schema guarantees one).
        system = next(p for p in stack.node_pools if p.gpu is None and p.min_size >= 1 and not p.spot)
        self.cluster = azure.containerservice.ManagedCluster(
            f"{name}-aks",
            resource_name_=name,
            resource_group_name=self.group.name,
            location=cfg.location,
            dns_prefix=name,
            kubernetes_version=stack.kubernetes.version,
            identity={"type": "SystemAssigned"},
            agent_pool_profiles=[{"name": system.name, "mode": "System", **profile(system)}],
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            network_profile={"network_plugin": "azure", "network_policy": "azure"},
            api_server_access_profile={"enable_private_cluster": cfg.private_cluster},
            auto_upgrade_profile={"upgrade_channel": "patch"},
            tags=tags,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(ignore_changes=["agentPoolProfiles[0].count"])
            ),
        )
        for pool in stack.node_pools:
            if pool is system:
                continue
            azure.containerservice.AgentPool(
                f"{name}-{pool.name}",
                agent_pool_name=pool.name,
                resource_name_=self.cluster.name,
                resource_group_name=self.group.name,
                mode="User",
                **profile(pool),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["count"])),
            )
        credentials = azure.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=self.group.name,
            resource_name=self.cluster.name,
            opts=pulumi.InvokeOptions(provider=provider),
        )
        kubeconfig = credentials.kubeconfigs.apply(lambda k: base64.b64decode(k[0].value).decode())
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=pulumi.Output.secret(kubeconfig), opts=pulumi.ResourceOptions(parent=self)
        )

        storage = stack.storage
        self.account = azure.storage.StorageAccount(
            f"{name}-storage",
            account_name=cfg.storage_account,
            resource_group_name=self.group.name,
            location=cfg.location,
            kind="StorageV2",
            sku={"name": "Standard_ZRS"},
            is_hns_enabled=True,  # ADLS Gen2: real directories, abfss://
            allow_blob_public_access=not storage.block_public_access,
            allow_shared_key_access=False,  # Entra ID (workload identity) only, no account keys
            minimum_tls_version="TLS1_2",
            enable_https_traffic_only=True,
            encryption={
                "key_source": "Microsoft.Storage",
                "services": {"blob": {"enabled": storage.encryption, "key_type": "Account"}},
            },
            tags=tags,
            opts=child,
        )
        # ADLS Gen2 has no blob versioning: overwritten and deleted data stays recoverable through soft delete.
        azure.storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=self.account.name,
            resource_group_name=self.group.name,
            blob_services_name="default",
            delete_retention_policy={"enabled": storage.versioning, "days": storage.noncurrent_version_days},
            container_delete_retention_policy={"enabled": True, "days": 7},
            opts=child,
        )
        if storage.retention_days:
            azure.storage.ManagementPolicy(
                f"{name}-retention",
                account_name=self.account.name,
                resource_group_name=self.group.name,
                management_policy_name="default",
                policy={
                    "rules": [
                        {
                            "name": "retention",
                            "type": "Lifecycle",
                            "enabled": True,
                            "definition": {
                                "actions": {
                                    "base_blob": {
                                        "delete": {"days_after_modification_greater_than": storage.retention_days}
                                    }
                                },
                                "filters": {"blob_types": ["blockBlob"]},
                            },
                        }
                    ]
                },
                opts=child,
            )
        self.container = azure.storage.BlobContainer(
            f"{name}-container",
            account_name=self.account.name,
            resource_group_name=self.group.name,
            container_name=storage.bucket,
            public_access="None",
            opts=child,
        )
        self._subscription = azure.authorization.get_client_config_output(
            opts=pulumi.InvokeOptions(provider=provider)
        ).subscription_id
        self.object_store = ObjectStore(
            scheme="abfss", bucket=self.container.name, account=self.account.name, region=cfg.location
        )
        self.gpu = gpu_scheduling(stack.node_pools, device_plugin_managed=False)  # AKS installs drivers, not the plugin
        self.storage_class = "managed-csi"
        self.register_outputs({"clusterName": self.cluster.name, "storageAccount": self.account.name})

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        azure = self._azure
        key_prefix = prefix_of(prefix)
        key = f"{self.name}-{namespace}-{service_account}"
        identity = azure.managedidentity.UserAssignedIdentity(
            key, resource_group_name=self.group.name, opts=self._child
        )
        federation = azure.managedidentity.FederatedIdentityCredential(
            key,
            resource_name_=identity.name,
            resource_group_name=self.group.name,
            issuer=self.cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url),
            subject=f"system:serviceaccount:{namespace}:{service_account}",
            audiences=["api://AzureADTokenExchange"],
            opts=self._child,
        )
        role = BLOB_DATA_CONTRIBUTOR if access == "readwrite" else BLOB_DATA_READER
        assignment = azure.authorization.RoleAssignment(
            key,
            principal_id=identity.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=self._subscription.apply(
                lambda s: f"/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{role}"
            ),
            scope=self.container.id,  # this container only, and within it the prefix, by the condition
            condition=prefix_condition(key_prefix),
            condition_version="2.0",
            opts=self._child,
        )
        return IdentityBinding(
            service_account,
            namespace,
            key_prefix,
            access,
            annotations={"azure.workload.identity/client-id": identity.client_id},
            pod_labels={"azure.workload.identity/use": "true"},
            resources=[identity, federation, assignment],
        )

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        # ABFS exchanges the pod's federated token (AZURE_FEDERATED_TOKEN_FILE) for an Entra ID token.
        return {
            "fs.azure.account.auth.type": "OAuth",
            "fs.azure.account.oauth.provider.type": "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider",
        }

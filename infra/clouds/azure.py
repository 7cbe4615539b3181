"""Azure target: resource group, VNet, AKS with Entra ID and workload identity, ADLS Gen2."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pulumi
import yaml
from pydantic import Field

from infra.clouds.common import abfs_conf, exec_kubeconfig, taint_string
from infra.clouds.registry import TargetPlugin, register
from infra.config import Cidr, NodePool, ObjectStorage, Taint, TargetConfig, Team
from infra.target import (
    Access,
    ClusterArgs,
    ClusterTarget,
    IdentityBinding,
    ObjectStore,
    gpu_scheduling,
    pool_labels,
    pool_taints,
    prefix_of,
)

_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# AKS puts this on every spot pool's nodes by itself; pods must tolerate it to run there.
SPOT_TAINT = Taint(key="kubernetes.azure.com/scalesetpriority", value="spot", effect="NoSchedule")
# The AKS AAD server application every Entra ID token for a cluster is issued to (the same in every tenant).
AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"


class AzureConfig(TargetConfig):
    """``mlkit:target`` with ``type: azure``. The stack's storage bucket is a container in ``storageAccount``."""

    type: Literal["azure"]  # pyright: ignore[reportIncompatibleVariableOverride] - each block narrows its tag
    # VM size families by the GPU they carry.
    # The cluster name is also its DNS prefix: at most 54 characters.
    cluster_name_rule: ClassVar[tuple[str, str]] = (
        r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,52}[a-zA-Z0-9])?",
        "letters, digits and '-', at most 54 characters (an AKS DNS-prefix rule)",
    )
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

    location: str = Field(pattern=r"^[a-z]+[a-z0-9]*$")
    resource_group: str | None = Field(default=None, description="defaults to mlkit-<stack>, the cluster's name")
    storage_account: str = Field(pattern=r"^[a-z0-9]{3,24}$")
    vnet_cidr: Cidr = "10.20.0.0/16"
    private_cluster: bool = False
    # Local accounts are off: without an admin group, nobody (the deployer included) may install the platform.
    admin_group_object_ids: list[Annotated[str, Field(pattern=f"^{_GUID}$")]] = Field(
        min_length=1,
        description="Entra ID groups (object ids) with admin rights on the whole cluster; include the deployer",
    )

    def team_problems(self, team: Team) -> list[tuple[str, str]]:
        # With Entra ID, AKS names users by their user principal name and groups by their object id.
        problems = [
            (f"groups.{i}", f"{g!r} is not an Entra ID group object id: AKS knows groups by object id (a GUID)")
            for i, g in enumerate(team.groups)
            if not re.fullmatch(_GUID, g)
        ]
        problems += [
            (f"members.{i}", f"{m!r} is not a user principal name: AKS knows Entra ID users as user@tenant-domain")
            for i, m in enumerate(team.members)
            if "@" not in m
        ]
        return problems

    def bucket_name_problem(self, name: str) -> str | None:
        if not re.fullmatch(r"[a-z0-9](-?[a-z0-9])+", name) or len(name) > 63:
            return f"{name!r} is not a valid blob container name: 3-63 lowercase letters, digits and single '-'"
        return None


def credential_problem(config: AzureConfig, env: Mapping[str, str], home: Path) -> str | None:
    if env.get("ARM_CLIENT_ID") or env.get("AZURE_CLIENT_ID"):
        return None
    if (home / ".azure" / "azureProfile.json").is_file():
        return None
    return "no Azure credentials: run `az login` (and `az account set --subscription ...`)"


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


def agent_pool_profile(pool: NodePool, subnet_id: pulumi.Input[str]) -> dict[str, Any]:
    """An AKS agent pool as the ManagedCluster and AgentPool APIs both take it."""
    spot = (
        {"scale_set_priority": "Spot", "scale_set_eviction_policy": "Delete", "spot_max_price": -1} if pool.spot else {}
    )
    return {
        "vm_size": pool.machine_type,
        "os_type": "Linux",
        "type": "VirtualMachineScaleSets",
        "vnet_subnet_id": subnet_id,
        "enable_auto_scaling": True,
        "min_count": pool.min_size,
        "max_count": pool.max_size,
        "count": pool.min_size,
        "os_disk_size_gb": pool.disk_size_gb,
        "node_labels": pool_labels(pool),
        # Stated in full, the spot taint included: what AKS puts on the nodes is what the stack says.
        "node_taints": [taint_string(t) for t in pool_taints(pool, imposed_taints(pool))],
        **spot,
    }


def imposed_taints(pool: NodePool) -> tuple[Taint, ...]:
    return (SPOT_TAINT,) if pool.spot else ()


def kubelogin_kubeconfig(admin_kubeconfig_b64: str, cluster: str) -> tuple[str, str]:
    """The server and CA of the kubeconfig AKS returns; the user part is replaced by kubelogin."""
    document = yaml.safe_load(base64.b64decode(admin_kubeconfig_b64).decode())
    entry = next(c["cluster"] for c in document["clusters"] if c["name"] == cluster or len(document["clusters"]) == 1)
    return entry["server"], entry["certificate-authority-data"]


class AzureNetwork(pulumi.ComponentResource):
    """The resource group, a VNet and the nodes' subnet."""

    def __init__(self, name: str, config: AzureConfig, tags: dict[str, str], opts: pulumi.ResourceOptions):
        super().__init__("mlkit:azure:Network", name, None, opts)
        import pulumi_azure_native as azure

        child = pulumi.ResourceOptions(parent=self)
        self.group = azure.resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=config.resource_group or name,
            location=config.location,
            tags=tags,
            opts=child,
        )
        vnet = azure.network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=self.group.name,
            location=config.location,
            address_space={"address_prefixes": [config.vnet_cidr]},
            tags=tags,
            opts=child,
        )
        self.subnet = azure.network.Subnet(
            f"{name}-nodes",
            resource_group_name=self.group.name,
            virtual_network_name=vnet.name,
            address_prefix=config.vnet_cidr,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["delegations"]),
        )
        self.register_outputs({"resourceGroup": self.group.name})


class AksCluster(pulumi.ComponentResource):
    """AKS with Entra ID (no local accounts), the OIDC issuer and workload identity; the system pool inline, user pools one at a time."""

    def __init__(
        self,
        name: str,
        config: AzureConfig,
        version: str,
        pools: tuple[NodePool, ...],
        network: AzureNetwork,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions,
    ):
        super().__init__("mlkit:azure:AksCluster", name, None, opts)
        import pulumi_azure_native as azure

        # AKS needs its system pool inline: the first always-on, on-demand CPU pool (the schema guarantees one).
        system = next(p for p in pools if p.gpu is None and p.min_size >= 1 and not p.spot)
        group = network.group
        self.cluster = azure.containerservice.ManagedCluster(
            f"{name}-aks",
            resource_name_=name,
            resource_group_name=group.name,
            location=config.location,
            dns_prefix=name,
            kubernetes_version=version,
            identity={"type": azure.containerservice.ResourceIdentityType.SYSTEM_ASSIGNED},
            agent_pool_profiles=[
                azure.containerservice.ManagedClusterAgentPoolProfileArgs(
                    name=system.name, mode="System", **agent_pool_profile(system, network.subnet.id)
                )
            ],
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            # People sign in with Entra ID; Kubernetes RBAC (the teams' RoleBindings) decides what they may do.
            aad_profile={
                "managed": True,
                "enable_azure_rbac": False,
                "admin_group_object_ids": config.admin_group_object_ids,
            },
            disable_local_accounts=True,
            network_profile={"network_plugin": "azure", "network_policy": "azure"},
            api_server_access_profile={"enable_private_cluster": config.private_cluster},
            auto_upgrade_profile={"upgrade_channel": "patch"},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["agentPoolProfiles[0].count"]),
        )
        # AKS takes one agent-pool operation at a time (409 OperationNotAllowed otherwise): each waits for the last.
        self.pools: dict[str, pulumi.Resource] = {system.name: self.cluster}
        previous: pulumi.Resource = self.cluster
        for pool in pools:
            if pool is system:
                continue
            previous = self.pools[pool.name] = azure.containerservice.AgentPool(
                f"{name}-{pool.name}",
                agent_pool_name=pool.name,
                resource_name_=self.cluster.name,
                resource_group_name=group.name,
                mode="User",
                **agent_pool_profile(pool, network.subnet.id),
                # A pool's name is fixed and unique: a replacement must delete the old pool first.
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[previous], ignore_changes=["count"], delete_before_replace=True
                ),
            )
        credentials = azure.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=self.cluster.name,
            opts=pulumi.InvokeOptions(parent=self),
        )
        returned = credentials.kubeconfigs.apply(lambda k: k[0].value)
        endpoint = pulumi.Output.all(returned, self.cluster.name).apply(lambda a: kubelogin_kubeconfig(a[0], a[1]))
        # kubelogin turns the caller's `az login` into an Entra ID token for this cluster: no static certificate.
        self.kubeconfig = exec_kubeconfig(
            endpoint.apply(lambda e: e[0]),
            endpoint.apply(lambda e: e[1]),
            self.cluster.name,
            "kubelogin",
            ["get-token", "--login", "azurecli", "--server-id", AKS_SERVER_ID],
        )
        self.register_outputs({"clusterName": self.cluster.name})


class AdlsStorage(pulumi.ComponentResource):
    """The platform container in an ADLS Gen2 account: Entra ID only (no account keys), TLS 1.2, soft delete, retention."""

    def __init__(
        self,
        name: str,
        config: AzureConfig,
        storage: ObjectStorage,
        group,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions,
    ):
        super().__init__("mlkit:azure:Storage", name, None, opts)
        import pulumi_azure_native as azure

        child = pulumi.ResourceOptions(parent=self)
        self.account = azure.storage.StorageAccount(
            f"{name}-storage",
            account_name=config.storage_account,
            resource_group_name=group.name,
            location=config.location,
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
            resource_group_name=group.name,
            blob_services_name="default",
            delete_retention_policy={"enabled": storage.versioning, "days": storage.noncurrent_version_days},
            container_delete_retention_policy={"enabled": True, "days": 7},
            opts=child,
        )
        if storage.retention_days:
            azure.storage.ManagementPolicy(
                f"{name}-retention",
                account_name=self.account.name,
                resource_group_name=group.name,
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
            resource_group_name=group.name,
            container_name=storage.bucket,
            public_access=azure.storage.PublicAccess.NONE,
            opts=child,
        )
        self.register_outputs({"storageAccount": self.account.name})


class AzureCluster(pulumi.ComponentResource, ClusterTarget):
    """Network, AKS and its agent pools, ADLS Gen2, a federated managed identity per binding."""

    def __init__(self, name: str, args: ClusterArgs[AzureConfig], opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:AzureCluster", name, None, opts)
        import pulumi_azure_native as azure
        import pulumi_kubernetes as k8s

        config = args.config
        self.name, self._azure = name, azure
        self.node_pools = args.node_pools
        provider = azure.Provider(
            f"{name}-azure",
            location=config.location,
            **args.provider_settings,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._child = child = pulumi.ResourceOptions(parent=self, provider=provider)
        tags = {"mlkit-stack": name, "managed-by": "pulumi"}
        network = AzureNetwork(name, config, tags, child)
        self.group = network.group
        self.aks = AksCluster(name, config, args.kubernetes_version, args.node_pools, network, tags, child)
        self.cluster = self.aks.cluster
        self.nodes_ready = tuple(self.aks.pools.values())
        self.imposed_taints = {p.name: imposed_taints(p) for p in args.node_pools if imposed_taints(p)}
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.aks.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )

        store = AdlsStorage(name, config, args.storage, self.group, tags, child)
        self.account, self.container = store.account, store.container
        self._subscription = azure.authorization.get_client_config_output(
            opts=pulumi.InvokeOptions(parent=self, provider=provider)
        ).subscription_id
        self.object_store = ObjectStore(
            scheme="abfss", bucket=self.container.name, account=self.account.name, region=config.location
        )
        # AKS installs the GPU drivers, not the device plugin.
        self.gpu = gpu_scheduling(list(args.node_pools), device_plugin_managed=False)
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
            issuer=self.cluster.oidc_issuer_profile.apply(_issuer_url),
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
        return abfs_conf()


def _issuer_url(profile) -> str:
    assert profile and profile.issuer_url, "the cluster is created with its OIDC issuer enabled"
    return profile.issuer_url


PLUGIN = register(
    TargetPlugin(
        config=AzureConfig,
        provision=AzureCluster,
        required_tools=("az", "kubelogin"),
        provider_namespace="azure-native",
        provider_keys=(
            "subscriptionId",
            "tenantId",
            "clientId",
            "clientSecret",
            "clientCertificatePath",
            "clientCertificatePassword",
            "environment",
            "useOidc",
            "useMsi",
            "oidcToken",
            "oidcRequestToken",
            "oidcRequestUrl",
            "auxiliaryTenantIds",
        ),
        credential_problem=credential_problem,
    )
)

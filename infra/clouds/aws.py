"""AWS target: VPC, EKS with managed node groups and access entries, S3 and IRSA."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

import pulumi
from pydantic import Field, model_validator

from infra import versions
from infra.clouds.common import EFFECT_ENUMS, bounded_name, exec_kubeconfig, s3a_conf
from infra.clouds.registry import TargetPlugin, register
from infra.config import Cidr, ConfigModel, NodePool, ObjectStorage, TargetConfig, Team
from infra.sources import Sources
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

CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


class AccessEntry(ConfigModel):
    """An IAM principal let into the cluster: EKS maps it to a Kubernetes user and groups (team RBAC names these)."""

    principal_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
    groups: list[str] = Field(
        default_factory=list, description="Kubernetes groups, e.g. a team's `groups` entry; never system:*"
    )
    username: str | None = Field(default=None, description="the Kubernetes user name (a team's `members` entry)")
    cluster_admin: bool = Field(
        default=False, description="full admin on the whole cluster (AmazonEKSClusterAdminPolicy)"
    )

    @model_validator(mode="after")
    def _no_system_groups(self) -> AccessEntry:
        reserved = [g for g in self.groups if g.startswith("system:")]
        if reserved:
            raise ValueError(f"groups {reserved}: EKS refuses system: groups in access entries; use clusterAdmin")
        return self


class AwsConfig(TargetConfig):
    """``mlkit:target`` with ``type: aws``."""

    type: Literal["aws"]  # pyright: ignore[reportIncompatibleVariableOverride] - each block narrows its tag
    # Instance families by the GPU they carry.
    cluster_name_rule: ClassVar[tuple[str, str]] = (
        r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}",
        "letters, digits, '-' and '_', at most 100 characters (an EKS rule)",
    )
    gpu_machine_types: ClassVar[dict[str, str]] = {
        "t4": r"g4dn\.",
        "a10g": r"g5\.",
        "l4": r"g6\.",
        "l40s": r"g6e\.",
        "v100": r"p3(dn)?\.",
        "a100": r"p4d\.",
        "a100-80gb": r"p4de\.",
        "h100": r"p5\.",
        "h200": r"p5e[n]?\.",
    }

    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    availability_zones: list[str] = Field(min_length=2, description="at least two, for the private subnets")
    vpc_cidr: Cidr = "10.0.0.0/16"
    private_endpoint: bool = Field(default=False, description="API server reachable only from inside the VPC")
    public_access_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"], description="who may reach a public API endpoint"
    )
    gpu_ami_type: Literal["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"] = Field(
        default="AL2023_x86_64_NVIDIA",
        description="Bottlerocket ships the NVIDIA device plugin; AL2023 leaves it to the platform",
    )
    nat_gateway_per_zone: bool = Field(
        default=False, description="one NAT gateway per zone (resilient) instead of one (cheaper)"
    )
    access_entries: list[AccessEntry] = Field(
        default_factory=list, description="IAM principals let into the cluster, and the Kubernetes groups they get"
    )

    @model_validator(mode="after")
    def _zones_in_region(self) -> AwsConfig:
        strays = [z for z in self.availability_zones if not re.fullmatch(re.escape(self.region) + r"[a-z]", z)]
        if strays:
            raise ValueError(
                f"availabilityZones {strays} are not zones of region {self.region!r} (e.g. {self.region}a)"
            )
        return self

    def team_problems(self, team: Team) -> list[tuple[str, str]]:
        # EKS knows only the users and groups its access entries give: any other name in a RoleBinding is dead.
        groups = {g for entry in self.access_entries for g in entry.groups}
        # An entry without a username names a role's sessions `assumed-role/...`, never the role ARN itself.
        users = {entry.username for entry in self.access_entries if entry.username}
        problems = [
            (f"groups.{i}", f"{g!r} is the group of no IAM principal: add it to an entry of mlkit:target.accessEntries")
            for i, g in enumerate(team.groups)
            if g not in groups
        ]
        problems += [
            (
                f"members.{i}",
                f"{m!r} is the user of no IAM principal: give an entry of mlkit:target.accessEntries username: {m}",
            )
            for i, m in enumerate(team.members)
            if m not in users
        ]
        return problems

    def kubernetes_problems(self, version: str) -> list[str]:
        if version not in versions.CLUSTER_AUTOSCALER_IMAGES:
            known = ", ".join(versions.CLUSTER_AUTOSCALER_IMAGES)
            return [f"{version!r} has no cluster-autoscaler release pinned in the kit; expected one of: {known}"]
        return []


def credential_problem(config: AwsConfig, env: Mapping[str, str], home: Path) -> str | None:
    if {"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"} & set(env):
        return None
    if (home / ".aws" / "credentials").is_file() or (home / ".aws" / "config").is_file():
        return None
    return "no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE"


# --- provisioning ----------------------------------------------------------------------------------

MANAGED_POLICY = "arn:aws:iam::aws:policy/"
# What cluster-autoscaler reads to know a pool's nodes carry GPUs, before any exists.
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"


def role_name_prefix(name: str) -> str:
    """IAM role names end at 64 characters; a prefix of at most 38 leaves AWS room for its unique suffix."""
    return bounded_name(name, 37) + "-"


def _assume_role(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def irsa_trust_policy(oidc_arn: str, issuer_url: str, namespace: str, service_account: str) -> str:
    """Only this one Kubernetes service account, through this cluster's OIDC issuer, may assume the role."""
    issuer = issuer_url.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def parent_keys(prefix: str) -> list[str]:
    """The keys above a prefix, as Hadoop's S3A asks for them: ``teams/a/`` -> ``teams``, ``teams/``, ``teams/a``."""
    parts = prefix.strip("/").split("/")
    keys = []
    for i in range(1, len(parts) + 1):
        path = "/".join(parts[:i])
        keys += [path] if i == len(parts) else [path, f"{path}/"]
    return keys


def prefix_policy(bucket: str, key_arn: str, prefix: str, access: str) -> str:
    """S3 rights on one prefix of the bucket (listing included, limited to the prefix), and the bucket key's use.

    Hadoop's S3A probes each parent of a path it writes (HEAD of the key, then a one-level listing with
    delimiter '/'): a 403 there fails the write, so those exact keys are readable and listable one level
    deep (which shows the names directly under ``teams/``, i.e. the team names, and nothing below them).
    """
    actions = ["s3:GetObject"] + (
        ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        if access == "readwrite"
        else []
    )
    parents = parent_keys(prefix)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListThePrefix",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{bucket}",
                    "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
                },
                {
                    "Sid": "ProbeTheParents",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{bucket}",
                    "Condition": {
                        "StringEquals": {"s3:prefix": [k for k in parents if k.endswith("/")], "s3:delimiter": "/"}
                    },
                },
                {
                    "Sid": "HeadTheParents",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": [f"arn:aws:s3:::{bucket}/{k}" for k in parents],
                },
                {
                    "Sid": "LocateTheBucket",
                    "Effect": "Allow",
                    "Action": "s3:GetBucketLocation",
                    "Resource": f"arn:aws:s3:::{bucket}",
                },
                {
                    "Sid": "ObjectsUnderThePrefix",
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
                },
                {
                    "Sid": "TheBucketKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": key_arn,
                },
            ],
        }
    )


# Sizes that m/r/c 5, 5a, 6i, 6a and 7i all offer (c5 has no 8xlarge or 16xlarge, for one).
SHARED_SIZES = {"large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"}


def spot_instance_types(machine_type: str) -> list[str]:
    """A spot pool's instance types: the asked one and its same-size x86 peers, so one reclaimed type does not empty the pool."""
    match = re.fullmatch(r"([mrc])(\d)([a-z]*)\.(\w+)", machine_type)
    if not match or match.group(4) not in SHARED_SIZES:
        return [machine_type]
    family, size = match.group(1), match.group(4)
    peers = [f"{family}{generation}.{size}" for generation in ("6i", "6a", "5", "5a", "7i")]
    return [machine_type, *(p for p in peers if p != machine_type)]


class AwsNetwork(pulumi.ComponentResource):
    """A private and a public subnet per zone, an internet gateway, NAT (one, or one per zone); nodes live in the private ones."""

    def __init__(self, name: str, config: AwsConfig, opts: pulumi.ResourceOptions):
        super().__init__("mlkit:aws:Network", name, None, opts)
        import pulumi_aws as aws

        child = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=config.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=child,
        )
        network = ipaddress.ip_network(config.vpc_cidr)
        blocks = list(network.subnets(new_prefix=network.prefixlen + 4))
        cluster_tag = f"kubernetes.io/cluster/{name}"
        private, public = [], []
        for i, zone in enumerate(config.availability_zones):
            for kind, block, role, into in (
                ("private", blocks[i], "kubernetes.io/role/internal-elb", private),
                ("public", blocks[8 + i], "kubernetes.io/role/elb", public),
            ):
                into.append(
                    aws.ec2.Subnet(
                        f"{name}-{kind}-{zone}",
                        vpc_id=vpc.id,
                        cidr_block=str(block),
                        availability_zone=zone,
                        map_public_ip_on_launch=False,
                        tags={"Name": f"{name}-{kind}-{zone}", role: "1", cluster_tag: "shared"},
                        opts=child,
                    )
                )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=vpc.id, routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}], opts=child
        )
        nats = []
        for i, subnet in enumerate(public):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=subnet.id, route_table_id=public_routes.id, opts=child
            )
            if i == 0 or config.nat_gateway_per_zone:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", opts=child)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}",
                        subnet_id=subnet.id,
                        allocation_id=eip.id,
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )
        for i, subnet in enumerate(private):
            nat = nats[i] if config.nat_gateway_per_zone else nats[0]
            routes = aws.ec2.RouteTable(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=routes.id, opts=child
            )
        self.private_subnet_ids = [s.id for s in private]
        self.register_outputs({"vpcId": vpc.id})


class EksCluster(pulumi.ComponentResource):
    """EKS with secrets in KMS, the OIDC issuer for IRSA, access entries for people, and the add-ons nodes need."""

    def __init__(
        self,
        name: str,
        config: AwsConfig,
        version: str,
        subnet_ids: list,
        opts: pulumi.ResourceOptions,
        profile: str | None = None,
    ):
        super().__init__("mlkit:aws:EksCluster", name, None, opts)
        import pulumi_aws as aws

        child = pulumi.ResourceOptions(parent=self)
        secrets_key = aws.kms.Key(
            f"{name}-secrets", description=f"{name} EKS secrets", enable_key_rotation=True, opts=child
        )
        role = aws.iam.Role(
            f"{name}-cluster",
            name_prefix=role_name_prefix(f"{name}-cluster"),
            assume_role_policy=_assume_role("eks.amazonaws.com"),
            opts=child,
        )
        policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster", role=role.name, policy_arn=MANAGED_POLICY + "AmazonEKSClusterPolicy", opts=child
        )
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=name,
            role_arn=role.arn,
            version=version,
            vpc_config={
                "subnet_ids": subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": not config.private_endpoint,
                "public_access_cidrs": None if config.private_endpoint else config.public_access_cidrs,
            },
            encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
            # Access entries only (no aws-auth ConfigMap); whoever runs `pulumi up` is admin from the start.
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        issuer = self.cluster.identities.apply(_oidc_issuer)
        self.oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], opts=child
        )
        for i, entry in enumerate(config.access_entries):
            access = aws.eks.AccessEntry(
                f"{name}-access-{i}",
                cluster_name=self.cluster.name,
                principal_arn=entry.principal_arn,
                kubernetes_groups=entry.groups or None,
                user_name=entry.username,
                type="STANDARD",
                opts=child,
            )
            if entry.cluster_admin:
                aws.eks.AccessPolicyAssociation(
                    f"{name}-access-{i}-admin",
                    cluster_name=self.cluster.name,
                    principal_arn=access.principal_arn,
                    policy_arn=CLUSTER_ADMIN_POLICY,
                    access_scope={"type": "cluster"},
                    opts=child,
                )
        # The VPC CNI's network-policy agent: without it EKS accepts NetworkPolicies and enforces none.
        aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name="vpc-cni",
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=child,
        )
        ca = self.cluster.certificate_authority.apply(lambda c: c.data or "")
        self.kubeconfig = exec_kubeconfig(
            self.cluster.endpoint,
            ca,
            self.cluster.name,
            "aws",
            # The same principal as the AWS provider's: the one EKS made admin when it created the cluster.
            ["eks", "get-token", "--cluster-name", name, "--region", config.region]
            + (["--profile", profile] if profile else []),
        )
        self.register_outputs({"clusterName": self.cluster.name})


class EksNodeGroups(pulumi.ComponentResource):
    """A managed node group per pool, labelled and tainted, with the tags cluster-autoscaler scales them by."""

    def __init__(
        self,
        name: str,
        config: AwsConfig,
        cluster: EksCluster,
        subnet_ids: list,
        pools: tuple[NodePool, ...],
        opts: pulumi.ResourceOptions,
    ):
        super().__init__("mlkit:aws:EksNodeGroups", name, None, opts)
        import pulumi_aws as aws

        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-nodes",
            name_prefix=role_name_prefix(f"{name}-nodes"),
            assume_role_policy=_assume_role("ec2.amazonaws.com"),
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{policy}", role=role.name, policy_arn=MANAGED_POLICY + policy, opts=child
            )
            for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
        ]
        self.groups: dict[str, pulumi.Resource] = {}
        for pool in pools:
            labels = pool_labels(pool)
            if pool.gpu:
                labels[ACCELERATOR_LABEL] = f"nvidia-{pool.gpu.type}"
            assert pool.machine_type, "validation requires a machine type on AWS"
            self.groups[pool.name] = aws.eks.NodeGroup(
                f"{name}-{pool.name}",
                cluster_name=cluster.cluster.name,
                # A prefix, not a name: a change that replaces the group creates the new one beside the old.
                # EKS appends 26 characters to a prefix and allows 63 in all.
                node_group_name_prefix=bounded_name(pool.name, 36) + "-",
                node_role_arn=role.arn,
                subnet_ids=subnet_ids,
                scaling_config={"min_size": pool.min_size, "max_size": pool.max_size, "desired_size": pool.min_size},
                instance_types=spot_instance_types(pool.machine_type) if pool.spot else [pool.machine_type],
                capacity_type="SPOT" if pool.spot else "ON_DEMAND",
                ami_type=config.gpu_ami_type if pool.gpu else "AL2023_x86_64_STANDARD",
                disk_size=pool.disk_size_gb,
                labels=labels,
                taints=[
                    {"key": t.key, "value": t.value or None, "effect": EFFECT_ENUMS[t.effect]}
                    for t in pool_taints(pool)
                ],
                # What cluster-autoscaler needs to scale a pool up from zero nodes.
                tags={
                    **{f"k8s.io/cluster-autoscaler/node-template/label/{k}": v for k, v in labels.items()},
                    **{
                        f"k8s.io/cluster-autoscaler/node-template/taint/{t.key}": f"{t.value}:{t.effect}"
                        for t in pool_taints(pool)
                    },
                },
                # The autoscaler owns the node count between min and max.
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=attachments, ignore_changes=["scalingConfig.desiredSize"]
                ),
            )
        self.register_outputs({})


class S3Bucket(pulumi.ComponentResource):
    """The platform bucket: KMS-encrypted, versioned, never public, TLS only, old versions expire."""

    def __init__(self, name: str, storage: ObjectStorage, opts: pulumi.ResourceOptions):
        super().__init__("mlkit:aws:Bucket", name, None, opts)
        import pulumi_aws as aws

        child = pulumi.ResourceOptions(parent=self)
        self.key = aws.kms.Key(
            f"{name}-bucket", description=f"{name} platform bucket", enable_key_rotation=True, opts=child
        )
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket", bucket=storage.bucket, force_destroy=storage.force_destroy, opts=child
        )
        if storage.encryption:
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-bucket",
                bucket=self.bucket.id,
                rules=[
                    {
                        "apply_server_side_encryption_by_default": {
                            "sse_algorithm": "aws:kms",
                            "kms_master_key_id": self.key.arn,
                        },
                        "bucket_key_enabled": True,
                    }
                ],
                opts=child,
            )
        aws.s3.BucketVersioning(
            f"{name}-bucket",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled" if storage.versioning else "Suspended"},
            opts=child,
        )
        if storage.block_public_access:
            aws.s3.BucketPublicAccessBlock(
                f"{name}-bucket",
                bucket=self.bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=child,
            )
        aws.s3.BucketPolicy(
            f"{name}-bucket-tls", bucket=self.bucket.id, policy=self.bucket.arn.apply(_tls_only_policy), opts=child
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket",
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": storage.noncurrent_version_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                    "expiration": {"days": storage.retention_days} if storage.retention_days else None,
                }
            ],
            opts=child,
        )
        self.register_outputs({"bucket": self.bucket.bucket})


class AwsCluster(pulumi.ComponentResource, ClusterTarget):
    """Network, EKS and its node groups, the platform bucket, IRSA roles per binding, EBS CSI and cluster-autoscaler."""

    def __init__(self, name: str, args: ClusterArgs[AwsConfig], opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:AwsCluster", name, None, opts)
        import pulumi_aws as aws
        import pulumi_kubernetes as k8s

        config = args.config
        self.name, self._aws, self._sources = name, aws, Sources(args.charts)
        self.node_pools = args.node_pools
        provider = aws.Provider(
            f"{name}-aws",
            region=config.region,
            default_tags={"tags": {"mlkit:stack": name, "managed-by": "pulumi"}},
            **args.provider_settings,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._child = child = pulumi.ResourceOptions(parent=self, provider=provider)
        network = AwsNetwork(name, config, child)
        self.eks = EksCluster(
            name,
            config,
            args.kubernetes_version,
            network.private_subnet_ids,
            child,
            args.provider_settings.get("profile"),
        )
        nodes = EksNodeGroups(name, config, self.eks, network.private_subnet_ids, args.node_pools, child)
        self.nodes_ready = tuple(nodes.groups.values())
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.eks.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )
        self.store = S3Bucket(name, args.storage, child)
        self.object_store = ObjectStore(scheme="s3", bucket=self.store.bucket.bucket, region=config.region)
        self.gpu = gpu_scheduling(
            list(args.node_pools), device_plugin_managed=config.gpu_ami_type.startswith("BOTTLEROCKET")
        )
        self.storage_class = "gp3"
        self._cluster_addons(name, config.region, args.kubernetes_version)
        self.register_outputs({"clusterName": self.eks.cluster.name, "bucket": self.store.bucket.bucket})

    def _irsa_role(self, key: str, namespace: str, service_account: str, policy: pulumi.Input[str] | None):
        """A role only ``namespace/service_account`` can assume, with ``policy`` inline (None: attach one later)."""
        aws = self._aws
        trust = pulumi.Output.all(self.eks.oidc.arn, self.eks.oidc.url).apply(
            lambda a: irsa_trust_policy(a[0], a[1], namespace, service_account)
        )
        role = aws.iam.Role(
            f"{self.name}-{key}",
            name_prefix=role_name_prefix(f"{self.name}-{key}"),
            assume_role_policy=trust,
            opts=self._child,
        )
        role_policy = (
            aws.iam.RolePolicy(f"{self.name}-{key}", role=role.id, policy=policy, opts=self._child)
            if policy is not None
            else None
        )
        return role, role_policy

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        key_prefix = prefix_of(prefix)
        policy = pulumi.Output.all(self.store.bucket.bucket, self.store.key.arn).apply(
            lambda a: prefix_policy(a[0], a[1], key_prefix, access)
        )
        role, role_policy = self._irsa_role(f"{namespace}-{service_account}", namespace, service_account, policy)
        return IdentityBinding(
            service_account,
            namespace,
            key_prefix,
            access,
            annotations={"eks.amazonaws.com/role-arn": role.arn},
            resources=[r for r in (role, role_policy) if r is not None],
        )

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        # IRSA: the pod's projected web-identity token, exchanged by the AWS SDK.
        return s3a_conf(
            region=self.object_store.region,
            credentials="software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider",
        )

    def _cluster_addons(self, name: str, region: str, kubernetes_version: str) -> None:
        """EBS CSI driver with a default encrypted gp3 class, and cluster-autoscaler; each with its own IRSA role."""
        import pulumi_kubernetes as k8s

        aws = self._aws
        after_nodes = pulumi.ResourceOptions.merge(
            self._child, pulumi.ResourceOptions(depends_on=list(self.nodes_ready))
        )
        ebs_role, _ = self._irsa_role("ebs-csi", "kube-system", "ebs-csi-controller-sa", None)
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi",
            role=ebs_role.name,
            policy_arn=MANAGED_POLICY + "service-role/AmazonEBSCSIDriverPolicy",
            opts=self._child,
        )
        # Its controller is a Deployment: created before any node exists, the add-on reports degraded.
        aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=self.eks.cluster.name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn,
            opts=after_nodes,
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider)
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=k8s_opts,
        )
        autoscaler_policy = self.eks.cluster.name.apply(_autoscaler_policy)
        autoscaler_role, _ = self._irsa_role(
            "cluster-autoscaler", "kube-system", "cluster-autoscaler", autoscaler_policy
        )
        k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler",
            **self._sources.chart("cluster-autoscaler", versions.CLUSTER_AUTOSCALER_CHART),
            namespace="kube-system",
            values={
                "autoDiscovery": {"clusterName": self.eks.cluster.name},
                "awsRegion": region,
                # The autoscaler's minor must match the cluster's; the chart's default follows the chart.
                "image": {"tag": versions.CLUSTER_AUTOSCALER_IMAGES[kubernetes_version]},
                "rbac": {
                    "serviceAccount": {
                        "name": "cluster-autoscaler",
                        "annotations": {"eks.amazonaws.com/role-arn": autoscaler_role.arn},
                    }
                },
                "extraArgs": {
                    "balance-similar-node-groups": "true",
                    "expander": "least-waste",
                    "skip-nodes-with-system-pods": "false",
                },
            },
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=list(self.nodes_ready))),
        )


def _oidc_issuer(identities) -> str:
    issuer = identities[0].oidcs[0].issuer if identities and identities[0].oidcs else None
    assert issuer, "EKS reports an OIDC issuer for every cluster"
    return issuer


def _tls_only_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def _autoscaler_policy(cluster_name: str) -> str:
    """cluster-autoscaler may resize only this cluster's node groups (tag-scoped), and read what it must."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
                    },
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        "eks:DescribeNodegroup",
                    ],
                    "Resource": "*",
                },
            ],
        }
    )


PLUGIN = register(
    TargetPlugin(
        config=AwsConfig,
        provision=AwsCluster,
        required_tools=("aws",),
        charts={"cluster-autoscaler": versions.CLUSTER_AUTOSCALER_CHART},
        provider_namespace="aws",
        provider_keys=(
            "profile",
            "sharedConfigFiles",
            "sharedCredentialsFiles",
            "allowedAccountIds",
            "forbiddenAccountIds",
            "assumeRoles",
            "accessKey",
            "secretKey",
            "token",
        ),
        credential_problem=credential_problem,
    )
)

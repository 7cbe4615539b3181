"""AWS target: VPC, EKS with managed node groups, S3 and IRSA."""

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
from infra.config import Cidr, TargetConfig
from infra.sources import Sources
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


class AwsConfig(TargetConfig):
    """The ``aws:`` block of a stack."""

    # Instance families by the GPU they carry.
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
    required_tools: ClassVar[tuple[str, ...]] = ("aws",)
    charts: ClassVar[dict[str, str]] = {"cluster-autoscaler": versions.CLUSTER_AUTOSCALER_CHART}

    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    availability_zones: list[str] = Field(min_length=2, description="at least two, for the private subnets")
    vpc_cidr: Cidr = "10.0.0.0/16"
    private_endpoint: bool = Field(False, description="API server reachable only from inside the VPC")
    public_access_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"], description="who may reach a public API endpoint"
    )
    gpu_ami_type: Literal["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"] = Field(
        "AL2023_x86_64_NVIDIA",
        description="Bottlerocket ships the NVIDIA device plugin; AL2023 leaves it to the platform",
    )
    nat_gateway_per_zone: bool = Field(
        False, description="one NAT gateway per zone (resilient) instead of one (cheaper)"
    )

    @model_validator(mode="after")
    def _zones_in_region(self) -> AwsConfig:
        strays = [z for z in self.availability_zones if not re.fullmatch(re.escape(self.region) + r"[a-z]", z)]
        if strays:
            raise ValueError(
                f"availabilityZones {strays} are not zones of region {self.region!r} (e.g. {self.region}a)"
            )
        return self

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if {"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"} & set(env):
            return None
        if (home / ".aws" / "credentials").is_file() or (home / ".aws" / "config").is_file():
            return None
        return "no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE"

    def provision(self, name: str, stack, opts=None):
        return AwsCluster(name, stack, opts)


# --- provisioning ----------------------------------------------------------------------------------

EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
MANAGED_POLICY = "arn:aws:iam::aws:policy/"


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


def prefix_policy(bucket: str, key_arn: str, prefix: str, access: str) -> str:
    """S3 rights on one prefix of the bucket (listing included, limited to the prefix), and the bucket key's use."""
    actions = ["s3:GetObject"] + (
        ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        if access == "readwrite"
        else []
    )
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


class AwsCluster(pulumi.ComponentResource, ClusterTarget):
    """VPC (private subnets in every zone, NAT), EKS with managed node groups, KMS, S3, IRSA, cluster-autoscaler."""

    def __init__(self, name: str, stack, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:AwsCluster", name, None, opts)
        import pulumi_aws as aws
        import pulumi_kubernetes as k8s

        self.name, self._aws, self._sources = name, aws, Sources(stack.charts)
        cfg: AwsConfig = stack.aws
        self.node_pools = stack.node_pools
        provider = aws.Provider(
            f"{name}-aws",
            region=cfg.region,
            default_tags={"tags": {"mlkit:stack": name, "managed-by": "pulumi"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._child = pulumi.ResourceOptions(parent=self, provider=provider)
        child = self._child

        # Network: a private and a public subnet per zone; nodes live in the private ones.
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cfg.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=child,
        )
        blocks = list(
            ipaddress.ip_network(cfg.vpc_cidr).subnets(new_prefix=ipaddress.ip_network(cfg.vpc_cidr).prefixlen + 4)
        )
        cluster_tag = f"kubernetes.io/cluster/{name}"
        private, public = [], []
        for i, zone in enumerate(cfg.availability_zones):
            private.append(
                aws.ec2.Subnet(
                    f"{name}-private-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=str(blocks[i]),
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={
                        "Name": f"{name}-private-{zone}",
                        "kubernetes.io/role/internal-elb": "1",
                        cluster_tag: "shared",
                    },
                    opts=child,
                )
            )
            public.append(
                aws.ec2.Subnet(
                    f"{name}-public-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=str(blocks[8 + i]),
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={"Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1", cluster_tag: "shared"},
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
            if i == 0 or cfg.nat_gateway_per_zone:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", opts=child)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}",
                        subnet_id=subnet.id,
                        allocation_id=eip.id,
                        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[igw])),
                    )
                )
        for i, subnet in enumerate(private):
            nat = nats[i] if cfg.nat_gateway_per_zone else nats[0]
            routes = aws.ec2.RouteTable(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=routes.id, opts=child
            )

        # Cluster: secrets encrypted with a KMS key; API endpoint public only if asked, and then only to given CIDRs.
        secrets_key = aws.kms.Key(
            f"{name}-secrets", description=f"{name} EKS secrets", enable_key_rotation=True, opts=child
        )
        cluster_role = aws.iam.Role(f"{name}-cluster", assume_role_policy=_assume_role("eks.amazonaws.com"), opts=child)
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster", role=cluster_role.name, policy_arn=MANAGED_POLICY + "AmazonEKSClusterPolicy", opts=child
        )
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=name,
            role_arn=cluster_role.arn,
            version=stack.kubernetes.version,
            vpc_config={
                "subnet_ids": [s.id for s in private],
                "endpoint_private_access": True,
                "endpoint_public_access": not cfg.private_endpoint,
                "public_access_cidrs": None if cfg.private_endpoint else cfg.public_access_cidrs,
            },
            encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
            access_config={"authentication_mode": "API_AND_CONFIG_MAP"},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[cluster_policy])),
        )
        issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], opts=child
        )

        node_role = aws.iam.Role(f"{name}-nodes", assume_role_policy=_assume_role("ec2.amazonaws.com"), opts=child)
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{policy}", role=node_role.name, policy_arn=MANAGED_POLICY + policy, opts=child
            )
            for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
        ]
        self.node_groups = {}
        for pool in stack.node_pools:
            self.node_groups[pool.name] = aws.eks.NodeGroup(
                f"{name}-{pool.name}",
                cluster_name=self.cluster.name,
                node_group_name=pool.name,
                node_role_arn=node_role.arn,
                subnet_ids=[s.id for s in private],
                scaling_config={"min_size": pool.min_size, "max_size": pool.max_size, "desired_size": pool.min_size},
                instance_types=[pool.machine_type],
                capacity_type="SPOT" if pool.spot else "ON_DEMAND",
                ami_type=cfg.gpu_ami_type if pool.gpu else "AL2023_x86_64_STANDARD",
                disk_size=pool.disk_size_gb,
                labels=pool_labels(pool),
                taints=[
                    {"key": t.key, "value": t.value or None, "effect": EFFECTS[t.effect]} for t in pool_taints(pool)
                ],
                # What cluster-autoscaler needs to scale a pool up from zero nodes.
                tags={
                    **{f"k8s.io/cluster-autoscaler/node-template/label/{k}": v for k, v in pool_labels(pool).items()},
                    **{
                        f"k8s.io/cluster-autoscaler/node-template/taint/{t.key}": f"{t.value}:{t.effect}"
                        for t in pool_taints(pool)
                    },
                },
                # The autoscaler owns the node count between min and max.
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=attachments, ignore_changes=["scalingConfig.desiredSize"])
                ),
            )

        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self._kubeconfig(cfg.region), opts=pulumi.ResourceOptions(parent=self)
        )

        # The platform bucket: KMS-encrypted, versioned, never public, TLS only, old versions expire.
        self.bucket_key = aws.kms.Key(
            f"{name}-bucket", description=f"{name} platform bucket", enable_key_rotation=True, opts=child
        )
        storage = stack.storage
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
                            "kms_master_key_id": self.bucket_key.arn,
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
        rule = {
            "id": "expire-old-versions",
            "status": "Enabled",
            "filter": {},
            "noncurrent_version_expiration": {"noncurrent_days": storage.noncurrent_version_days},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        }
        if storage.retention_days:
            rule["expiration"] = {"days": storage.retention_days}
        aws.s3.BucketLifecycleConfiguration(f"{name}-bucket", bucket=self.bucket.id, rules=[rule], opts=child)

        self.object_store = ObjectStore(scheme="s3", bucket=self.bucket.bucket, region=cfg.region)
        self.gpu = gpu_scheduling(stack.node_pools, device_plugin_managed=cfg.gpu_ami_type.startswith("BOTTLEROCKET"))
        self.storage_class = "gp3"
        self._cluster_addons(name, cfg.region)
        self.register_outputs({"clusterName": self.cluster.name, "bucket": self.bucket.bucket})

    def _kubeconfig(self, region: str) -> pulumi.Output[str]:
        def render(args):
            endpoint, ca, cluster = args
            user = {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "aws",
                    "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region],
                }
            }
            return json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
                    "users": [{"name": cluster, "user": user}],
                    "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
                    "current-context": cluster,
                }
            )

        ca = self.cluster.certificate_authority.apply(lambda c: c.data)
        return pulumi.Output.secret(pulumi.Output.all(self.cluster.endpoint, ca, self.cluster.name).apply(render))

    def _irsa_role(self, key: str, namespace: str, service_account: str, policy: pulumi.Input[str] | None):
        """A role only ``namespace/service_account`` can assume, with ``policy`` inline (None: attach one later)."""
        aws = self._aws
        trust = pulumi.Output.all(self.oidc.arn, self.oidc.url).apply(
            lambda a: irsa_trust_policy(a[0], a[1], namespace, service_account)
        )
        role = aws.iam.Role(f"{self.name}-{key}", assume_role_policy=trust, opts=self._child)
        role_policy = (
            aws.iam.RolePolicy(f"{self.name}-{key}", role=role.id, policy=policy, opts=self._child)
            if policy is not None
            else None
        )
        return role, role_policy

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        key_prefix = prefix_of(prefix)
        policy = pulumi.Output.all(self.bucket.bucket, self.bucket_key.arn).apply(
            lambda a: prefix_policy(a[0], a[1], key_prefix, access)
        )
        role, role_policy = self._irsa_role(f"{namespace}-{service_account}", namespace, service_account, policy)
        return IdentityBinding(
            service_account,
            namespace,
            key_prefix,
            access,
            annotations={"eks.amazonaws.com/role-arn": role.arn},
            resources=[role, role_policy],
        )

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        # IRSA: the pod's projected web-identity token, exchanged by the AWS SDK.
        return {
            "fs.s3a.aws.credentials.provider": "com.amazonaws.auth.WebIdentityTokenCredentialsProvider",
            "fs.s3a.endpoint.region": self.object_store.region,
        }

    def _cluster_addons(self, name: str, region: str) -> None:
        """EBS CSI driver with a default encrypted gp3 class, and cluster-autoscaler; each with its own IRSA role."""
        import pulumi_kubernetes as k8s

        aws = self._aws
        ebs_role, _ = self._irsa_role("ebs-csi", "kube-system", "ebs-csi-controller-sa", None)
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi",
            role=ebs_role.name,
            policy_arn=MANAGED_POLICY + "service-role/AmazonEBSCSIDriverPolicy",
            opts=self._child,
        )
        aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=self.cluster.name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn,
            opts=self._child,
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
        autoscaler_policy = self.cluster.name.apply(_autoscaler_policy)
        autoscaler_role, _ = self._irsa_role(
            "cluster-autoscaler", "kube-system", "cluster-autoscaler", autoscaler_policy
        )
        k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler",
            **self._sources.chart("cluster-autoscaler", versions.CLUSTER_AUTOSCALER_CHART),
            namespace="kube-system",
            values={
                "autoDiscovery": {"clusterName": self.cluster.name},
                "awsRegion": region,
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
            opts=pulumi.ResourceOptions.merge(
                k8s_opts, pulumi.ResourceOptions(depends_on=list(self.node_groups.values()))
            ),
        )


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

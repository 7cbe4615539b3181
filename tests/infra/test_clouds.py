"""The cloud layer under Pulumi mocks: one conformance suite over all five stacks, then each target's properties.

Assertions read what would be sent to the cloud (resolved resource inputs): policy documents,
IAM conditions, taints, scaling ranges, encryption and public-access settings.
"""

from __future__ import annotations

import ast
import json

import pulumi
import pytest
import yaml

from infra.stack import REPO_ROOT, parse_stack
from infra.target import GPU_NODE_LABEL, ClusterTarget, IdentityBinding
from tests.infra.pulumi_mocks import Recorder, deploy
from tests.infra.pulumi_mocks import provision as provision_target
from tests.infra.test_schema import stack_values

STACKS = ["local", "aws", "gcp", "azure", "onprem"]
CLOUD_SDKS = ("pulumi_aws", "pulumi_gcp", "pulumi_azure_native", "pulumi_eks")


def config_of(stack: str, **overrides):
    values = {**stack_values(stack), **overrides}
    if stack == "onprem":  # under `pulumi up` these secrets arrive decrypted
        store = values["target"]["objectStore"]
        store.update(accessKeyId="AKIAONPREM", secretAccessKey="onprem-secret")
        store["teamKeys"] = {
            t: {"accessKeyId": f"AKIA{t.upper()}", "secretAccessKey": f"{t}-secret"} for t in store["teamKeys"]
        }
    return parse_stack(values, stack, decrypted=True)


def provision(stack: str, teams=("churn", "fraud")) -> tuple[Recorder, ClusterTarget, dict[str, IdentityBinding], dict]:
    """Provision a stack's target, bind a Spark account per team, and resolve what the contract returns."""
    found: dict = {}

    def build(config):
        target = provision_target(config, f"mlkit-{stack}")
        found["target"] = target
        found["bindings"] = {team: target.bind("spark", team, f"features/{team}") for team in teams}
        target.complete()
        found["uri"] = target.object_store.uri("features/churn").apply(lambda u: found.__setitem__("resolved_uri", u))
        found["conf"] = pulumi.Output.all(**target.hadoop_conf()).apply(lambda c: found.__setitem__("resolved_conf", c))

    mocks = deploy(config_of(stack), build)
    return mocks, found["target"], found["bindings"], found


@pytest.fixture(scope="module", params=STACKS)
def provisioned(request):
    return request.param, *provision(request.param)


# --- conformance: the same contract on every target ---------------------------------------------

EXPECTED_URIS = {
    "local": "s3://mlkit-local/features/churn",
    "aws": "s3://acme-mlkit-prod-eu-west-1/features/churn",
    "gcp": "gs://acme-mlkit-prod-europe-west4/features/churn",
    "azure": "abfss://platform@acmemlkitprod.dfs.core.windows.net/features/churn",
    "onprem": "s3://mlkit/features/churn",
}


def test_every_target_returns_the_contract(provisioned):
    stack, mocks, target, _bindings, found = provisioned
    assert isinstance(target, ClusterTarget)
    assert any(r.type == "pulumi:providers:kubernetes" for r in mocks.resources)
    assert found["resolved_uri"] == EXPECTED_URIS[stack]
    assert target.storage_class
    assert all(k.startswith("fs.") for k in found["resolved_conf"])


def test_every_target_schedules_gpus_the_same_way(provisioned):
    stack, _, target, _, _ = provisioned
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in target.gpu.tolerations
    assert target.gpu.resource_name == "nvidia.com/gpu"
    assert target.gpu.has_gpu_nodes == any(p.gpu for p in config_of(stack).node_pools)


def test_every_binding_is_per_account_and_per_prefix(provisioned):
    _stack, _, _, bindings, _ = provisioned
    for team, binding in bindings.items():
        assert (binding.namespace, binding.service_account, binding.prefix) == (team, "spark", f"features/{team}/")
        # A cloud identity (annotation) or, where there is none, keys for a Secret: never neither.
        assert binding.annotations or binding.credentials


def test_a_whole_bucket_grant_is_refused(provisioned):
    _, _, target, _, _ = provisioned
    with pytest.raises(ValueError, match="non-empty prefix"):
        target.bind("spark", "churn", "/")


# --- AWS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws():
    return provision("aws")[0]


def test_aws_gpu_pool_is_tainted_labelled_and_scales_from_zero(aws):
    group = aws.one("aws:eks/nodeGroup:NodeGroup", "mlkit-aws-gpu-a10g").inputs
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in group["taints"]
    assert group["labels"][GPU_NODE_LABEL] == "a10g"
    assert group["amiType"] == "AL2023_x86_64_NVIDIA" and group["instanceTypes"] == ["g5.2xlarge"]
    assert (group["scalingConfig"]["minSize"], group["scalingConfig"]["maxSize"]) == (0, 4)
    assert group["tags"]["k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"] == "present:NoSchedule"


def test_aws_cpu_pools_follow_config(aws):
    spark = aws.one("aws:eks/nodeGroup:NodeGroup", "mlkit-aws-spark").inputs
    system = aws.one("aws:eks/nodeGroup:NodeGroup", "mlkit-aws-system").inputs
    assert spark["capacityType"] == "SPOT" and system["capacityType"] == "ON_DEMAND"
    assert (system["scalingConfig"]["minSize"], system["scalingConfig"]["maxSize"]) == (2, 6)
    assert system["amiType"] == "AL2023_x86_64_STANDARD"
    assert not system.get("taints")  # CPU pools carry no GPU taint


def test_aws_network_is_private_in_every_zone(aws):
    cluster = aws.one("aws:eks/cluster:Cluster").inputs
    private = [r.inputs for r in aws.of_type("aws:ec2/subnet:Subnet") if "private" in r.name]
    assert sorted(s["availabilityZone"] for s in private) == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert len(cluster["vpcConfig"]["subnetIds"]) == 3
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert aws.of_type("aws:ec2/natGateway:NatGateway")
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in aws.of_type("aws:ec2/subnet:Subnet"))
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster["version"] == "1.34"


def test_aws_private_endpoint_option_closes_the_public_endpoint():
    values = stack_values("aws")
    values["target"]["privateEndpoint"] = True
    mocks = deploy(parse_stack(values, "aws", decrypted=True), lambda c: provision_target(c, "mlkit-aws"))
    vpc = mocks.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False and "publicAccessCidrs" not in vpc


def test_aws_bucket_is_encrypted_versioned_private_tls_only_and_expires_old_versions(aws):
    sse = aws.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs
    rule = sse["rules"][0]["applyServerSideEncryptionByDefault"]
    assert rule["sseAlgorithm"] == "aws:kms" and rule["kmsMasterKeyId"].endswith("key/mlkit-aws-bucket")
    assert aws.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    block = aws.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    policy = json.loads(aws.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = aws.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"][0]
    assert lifecycle["noncurrentVersionExpiration"]["noncurrentDays"] == 30 and lifecycle["expiration"]["days"] == 730


def role_policy(mocks: Recorder, key: str) -> dict:
    return json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", key).inputs["policy"])


def test_aws_irsa_role_trusts_only_its_service_account(aws):
    trust = json.loads(aws.one("aws:iam/role:Role", "mlkit-aws-churn-spark").inputs["assumeRolePolicy"])
    statement = trust["Statement"][0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].startswith("arn:aws:iam::111122223333:oidc-provider/")
    conditions = statement["Condition"]["StringEquals"]
    assert sorted(conditions.values()) == ["sts.amazonaws.com", "system:serviceaccount:churn:spark"]


def test_aws_identity_reaches_its_prefix_and_no_other(aws):
    churn, fraud = role_policy(aws, "mlkit-aws-churn-spark"), role_policy(aws, "mlkit-aws-fraud-spark")
    objects = next(s for s in churn["Statement"] if s["Sid"] == "ObjectsUnderThePrefix")
    assert objects["Resource"] == "arn:aws:s3:::acme-mlkit-prod-eu-west-1/features/churn/*"
    listing = next(s for s in churn["Statement"] if s["Sid"] == "ListThePrefix")
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["features/churn/", "features/churn/*"]
    # Nothing in fraud's policy names churn's prefix or the whole bucket's objects.
    fraud_resources = json.dumps(fraud)
    assert "features/churn" not in fraud_resources and "acme-mlkit-prod-eu-west-1/*" not in fraud_resources


def test_aws_cluster_autoscaler_has_its_own_irsa_role(aws):
    release = aws.one("kubernetes:helm.sh/v3:Release", "mlkit-aws-cluster-autoscaler").inputs
    annotation = release["values"]["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert annotation.endswith("role/mlkit-aws-cluster-autoscaler")
    scaling = role_policy(aws, "mlkit-aws-cluster-autoscaler")["Statement"][0]
    assert scaling["Condition"]["StringEquals"] == {"aws:ResourceTag/k8s.io/cluster-autoscaler/mlkit-aws": "owned"}


# --- GCP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp():
    return provision("gcp")[0]


def test_gcp_gpu_pool_has_accelerators_with_managed_drivers_and_scales_from_zero(gcp):
    pool = gcp.one("gcp:container/nodePool:NodePool", "mlkit-gcp-gpu-l4").inputs
    accelerator = pool["nodeConfig"]["guestAccelerators"][0]
    assert accelerator["type"] == "nvidia-l4" and accelerator["count"] == 1
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in pool["nodeConfig"]["taints"]
    assert pool["nodeConfig"]["labels"][GPU_NODE_LABEL] == "l4"
    assert (pool["autoscaling"]["totalMinNodeCount"], pool["autoscaling"]["totalMaxNodeCount"]) == (0, 4)
    spark = gcp.one("gcp:container/nodePool:NodePool", "mlkit-gcp-spark").inputs
    assert spark["nodeConfig"]["spot"] is True and spark["autoscaling"]["totalMaxNodeCount"] == 20


def test_gcp_cluster_is_private_with_workload_identity(gcp):
    cluster = gcp.one("gcp:container/cluster:Cluster").inputs
    assert cluster["workloadIdentityConfig"]["workloadPool"] == "acme-ml-platform.svc.id.goog"
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert cluster["releaseChannel"]["channel"] == "REGULAR"
    assert all(
        p.inputs["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
        for p in gcp.of_type("gcp:container/nodePool:NodePool")
    )
    subnet = gcp.one("gcp:compute/subnetwork:Subnetwork").inputs
    assert {r["rangeName"] for r in subnet["secondaryIpRanges"]} == {"pods", "services"}


def test_gcp_bucket_is_uniform_private_and_versioned(gcp):
    bucket = gcp.one("gcp:storage/bucket:Bucket").inputs
    assert bucket["uniformBucketLevelAccess"] is True and bucket["publicAccessPrevention"] == "enforced"
    assert bucket["versioning"]["enabled"] is True


def test_gcp_identity_is_bound_to_its_service_account_and_prefix(gcp):
    member = gcp.one("gcp:serviceaccount/iAMMember:IAMMember", "mlkit-gcp-churn-spark").inputs
    assert member["role"] == "roles/iam.workloadIdentityUser"
    assert member["member"] == "serviceAccount:acme-ml-platform.svc.id.goog[churn/spark]"
    # Per-prefix IAM on a managed folder: it covers reading and listing that folder alone (issue 12 item 8:
    # a bucket-level grant with a condition let a team list every other team's object names).
    assert gcp.of_type("gcp:storage/bucketIAMMember:BucketIAMMember") == []
    folders = {r.name: r.inputs["name"] for r in gcp.of_type("gcp:storage/managedFolder:ManagedFolder")}
    assert sorted(folders.values()) == ["features/churn/", "features/fraud/"]
    churn = gcp.one("gcp:storage/managedFolderIamMember:ManagedFolderIamMember", "mlkit-gcp-churn-spark").inputs
    fraud = gcp.one("gcp:storage/managedFolderIamMember:ManagedFolderIamMember", "mlkit-gcp-fraud-spark").inputs
    assert churn["managedFolder"] == "features/churn/" and fraud["managedFolder"] == "features/fraud/"
    assert churn["role"] == "roles/storage.objectUser" and churn["member"] != fraud["member"]


def test_gcp_read_access_gets_a_viewer_role():
    def build(config):
        provision_target(config, "mlkit-gcp").bind("reader", "churn", "features/churn", access="read")

    mocks = deploy(config_of("gcp"), build)
    grant = mocks.one("gcp:storage/managedFolderIamMember:ManagedFolderIamMember").inputs
    assert grant["role"] == "roles/storage.objectViewer"


# --- Azure -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azure():
    return provision("azure")[0]


def test_azure_gpu_pool_is_a_tainted_user_pool_from_zero(azure):
    pool = azure.one("azure-native:containerservice:AgentPool", "mlkit-azure-gput4").inputs
    assert pool["mode"] == "User" and pool["vmSize"] == "Standard_NC8as_T4_v3"
    assert "nvidia.com/gpu=present:NoSchedule" in pool["nodeTaints"]
    assert pool["nodeLabels"][GPU_NODE_LABEL] == "t4"
    assert (pool["minCount"], pool["maxCount"], pool["enableAutoScaling"]) == (0, 4, True)
    spark = azure.one("azure-native:containerservice:AgentPool", "mlkit-azure-spark").inputs
    assert spark["scaleSetPriority"] == "Spot"


def test_azure_cluster_has_oidc_and_workload_identity_and_a_system_pool(azure):
    cluster = azure.one("azure-native:containerservice:ManagedCluster").inputs
    assert cluster["oidcIssuerProfile"]["enabled"] is True
    assert cluster["securityProfile"]["workloadIdentity"]["enabled"] is True
    system = cluster["agentPoolProfiles"][0]
    assert (system["name"], system["mode"], system["minCount"], system["maxCount"]) == ("system", "System", 2, 5)


def test_azure_storage_is_adls_private_and_keyless(azure):
    account = azure.one("azure-native:storage:StorageAccount").inputs
    assert account["isHnsEnabled"] is True and account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False and account["minimumTlsVersion"] == "TLS1_2"
    assert account["encryption"]["services"]["blob"]["enabled"] is True
    assert azure.one("azure-native:storage:BlobContainer").inputs["publicAccess"] == "None"


def test_azure_identity_is_federated_to_its_account_and_scoped_to_its_prefix(azure):
    federation = azure.one("azure-native:managedidentity:FederatedIdentityCredential", "mlkit-azure-churn-spark").inputs
    assert federation["subject"] == "system:serviceaccount:churn:spark"
    assert federation["issuer"].startswith("https://westeurope.oic.prod-aks.azure.com/")
    assert federation["audiences"] == ["api://AzureADTokenExchange"]
    churn = azure.one("azure-native:authorization:RoleAssignment", "mlkit-azure-churn-spark").inputs
    fraud = azure.one("azure-native:authorization:RoleAssignment", "mlkit-azure-fraud-spark").inputs
    assert churn["scope"] == "mlkit-azure-container-id"  # the container, not the account
    assert "StringStartsWith 'features/churn/'" in churn["condition"] and churn["conditionVersion"] == "2.0"
    assert "features/churn" not in fraud["condition"]
    assert churn["roleDefinitionId"].endswith("ba92f5b4-2d11-453d-a403-e96b0029c9fe")


# --- kind and existing -------------------------------------------------------------------------------


def test_kind_cluster_is_created_and_deleted_by_the_kind_cli():
    mocks, _target, bindings, _ = provision("local")
    command = mocks.one("command:local:Command", "mlkit-local-kind").inputs
    assert (
        command["create"].startswith("kind create cluster --name mlkit")
        and command["delete"] == "kind delete cluster --name mlkit"
    )
    nodes = yaml.safe_load(command["stdin"])["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    store = mocks.one("kubernetes:helm.sh/v3:Release", "mlkit-local-seaweedfs").inputs
    assert store["chart"] == "seaweedfs" and store["values"]["s3"]["enableAuth"] is True
    identities = json.loads(
        mocks.one("kubernetes:core/v1:Secret").inputs["stringData"]["value"]["seaweedfs_s3_config"]
    )["identities"]
    churn = next(i for i in identities if i["name"] == "churn-spark")
    assert churn["actions"] == [
        "Read:mlkit-local/features/churn/",
        "List:mlkit-local/features/churn/",
        "Write:mlkit-local/features/churn/",
    ]
    keys = {i["credentials"][0]["accessKey"] for i in identities}
    assert len(keys) == len(identities)  # a key pair per identity
    assert set(bindings["churn"].credentials) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLKIT_S3_ENDPOINT"}


def test_existing_target_creates_nothing_below_the_cluster():
    mocks, target, _bindings, found = provision("onprem")
    assert sorted(r.type for r in mocks.resources) == ["mlkit:clouds:ExistingCluster", "pulumi:providers:kubernetes"]
    assert mocks.one("pulumi:providers:kubernetes").inputs["context"] == "onprem-prod"
    assert found["resolved_conf"]["fs.s3a.endpoint"] == "https://s3.storage.acme.internal"
    assert target.gpu.device_plugin_managed is False and target.gpu.has_gpu_nodes is True


# --- the boundary ------------------------------------------------------------------------------------


def test_no_module_outside_infra_clouds_imports_a_cloud_sdk():
    offenders = []
    for path in REPO_ROOT.rglob("*.py"):
        relative = path.relative_to(REPO_ROOT)
        if relative.parts[0] in (".venv", ".cache") or relative.parts[:2] == ("infra", "clouds"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{relative}: {n}" for n in names if n.split(".")[0] in CLOUD_SDKS]
    assert offenders == []


def test_the_import_check_would_catch_an_offender(tmp_path):
    """The check above reads imports, so it can fail: prove it on a planted file."""
    planted = "import pulumi_aws as aws\nfrom pulumi_gcp import storage\n"
    names = [a.name for n in ast.walk(ast.parse(planted)) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(ast.parse(planted)) if isinstance(n, ast.ImportFrom)]
    assert [n for n in names if n.split(".")[0] in CLOUD_SDKS] == ["pulumi_aws", "pulumi_gcp"]

"""What a first `pulumi up` on a clean cloud account needs, one test per finding of issue 13 (and 12.7).

Every test reads what would be sent to the cloud under Pulumi mocks (resolved inputs and resource
options) and fails on the code before the fix.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from infra.clouds.aws import irsa_trust_policy, parent_keys, prefix_policy, spot_instance_types
from infra.stack import REPO_ROOT, parse_stack
from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_KEY, TeamProfile
from tests.infra.pulumi_mocks import deploy, unsecret
from tests.infra.pulumi_mocks import provision as provision_target
from tests.infra.test_clouds import config_of, provision
from tests.infra.test_platform import platform_of, team_objects
from tests.infra.test_schema import problems, stack_values

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


@pytest.fixture(scope="module")
def aws():
    return provision("aws")


@pytest.fixture(scope="module")
def gcp():
    return provision("gcp")


@pytest.fixture(scope="module")
def azure():
    return provision("azure")


@pytest.fixture(scope="module")
def gcp_platform():
    return platform_of(config_of("gcp"))


@pytest.fixture(scope="module")
def aws_platform():
    return platform_of(config_of("aws"))


# 1 --------------------------------------------------------------------------------------------------


def test_1_gke_workload_identity_member_waits_for_the_cluster(gcp):
    """<project>.svc.id.goog exists only once the project's first Workload Identity cluster does."""
    mocks = gcp[0]
    members = mocks.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert members
    for member in members:
        assert "mlkit-gcp-gke" in mocks.waits_for(member.type, member.name), member.name


# 2 --------------------------------------------------------------------------------------------------


def test_2_gke_team_pods_may_reach_the_metadata_server(gcp_platform):
    policies = {p["metadata"]["name"]: p["spec"] for p in team_objects(gcp_platform, NETWORK_POLICY, "churn")}
    egress = policies["target-identity"]["egress"]
    reachable = {(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in egress}
    assert reachable == {("169.254.169.254/32", 80), ("169.254.169.252/32", 988)}


def test_2_targets_without_such_needs_add_no_opening(aws_platform):
    names = {p["metadata"]["name"] for p in team_objects(aws_platform, NETWORK_POLICY, "churn")}
    assert "target-identity" not in names


# 3 --------------------------------------------------------------------------------------------------


def test_3_gke_private_control_plane_reaches_the_platform_webhooks(gcp, gcp_platform):
    firewall = gcp[0].one("gcp:compute/firewall:Firewall").inputs
    assert firewall["sourceRanges"] == ["172.16.0.32/28"] and firewall["direction"] == "INGRESS"
    assert firewall["targetServiceAccounts"] == ["mlkit-gcp-nodes@acme-ml-platform.iam.gserviceaccount.com"]
    assert firewall["allows"] == [{"protocol": "tcp", "ports": ["4443", "9443"]}]
    # ... and those are the ports the webhooks are served on.
    releases = {r.inputs["name"]: r.inputs["values"] for r in gcp_platform.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases["spark-operator"]["webhook"]["port"] == 9443
    assert releases["seldon-core"]["webhook"]["port"] == 4443


# 4 --------------------------------------------------------------------------------------------------


def gcp_with_pools(*pools: dict):
    values = stack_values("gcp")
    values["nodePools"] = [values["nodePools"][0], *pools]
    return parse_stack(values, "gcp", decrypted=True)


def test_4_gke_a3_mega_gets_its_own_accelerator_and_small_minimums_start_a_node():
    config = gcp_with_pools(
        {"name": "h100", "machineType": "a3-megagpu-8g", "maxSize": 2, "gpu": {"type": "h100", "count": 8}},
        {"name": "h100-high", "machineType": "a3-highgpu-8g", "maxSize": 2, "gpu": {"type": "h100", "count": 8}},
    )
    mocks = deploy(config, lambda c: provision_target(c, "mlkit-gcp"))
    pools = {r.name: r.inputs for r in mocks.of_type("gcp:container/nodePool:NodePool")}
    assert pools["mlkit-gcp-h100"]["nodeConfig"]["guestAccelerators"][0]["type"] == "nvidia-h100-mega-80gb"
    assert pools["mlkit-gcp-h100-high"]["nodeConfig"]["guestAccelerators"][0]["type"] == "nvidia-h100-80gb"
    # The shipped system pool: minSize 1 over 2 zones; 1 // 2 was 0 nodes, so no system pod could start.
    assert pools["mlkit-gcp-system"]["initialNodeCount"] == 1


def test_4_gpu_count_must_match_the_machine_type():
    assert "mlkit:nodePools[1].gpu.count: is 1, but a2-highgpu-2g carries 2; set count: 2" in problems(
        stack_values("gcp")
        | {
            "nodePools": [
                stack_values("gcp")["nodePools"][0],
                {"name": "a100", "machineType": "a2-highgpu-2g", "maxSize": 1, "gpu": {"type": "a100"}},
            ]
        }
    )
    assert (
        gcp_with_pools(
            {"name": "l4x2", "machineType": "g2-standard-24", "maxSize": 1, "gpu": {"type": "l4", "count": 2}}
        )
        .node_pools[1]
        .gpu.count
        == 2
    )


# 5 --------------------------------------------------------------------------------------------------


def test_5_aks_spot_pool_states_its_taint_and_the_platform_publishes_the_toleration(azure):
    mocks, target = azure[0], azure[1]
    spark = mocks.one("azure-native:containerservice:AgentPool", "mlkit-azure-spark").inputs
    assert "kubernetes.azure.com/scalesetpriority=spot:NoSchedule" in spark["nodeTaints"]
    spot = {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    }
    placements = target.placements()
    assert spot in placements["spark"].tolerations and placements["spark"].node_selector == {"mlkit.io/pool": "spark"}
    assert spot not in placements["system"].tolerations


def test_5_every_taint_on_every_pool_is_tolerated_by_its_published_placement():
    for stack in ("aws", "gcp", "azure", "local", "onprem"):
        _, target, _, _ = provision(stack, teams=())
        for pool in target.node_pools:
            from infra.target import pool_taints, toleration

            taints = pool_taints(pool, target.imposed_taints.get(pool.name, ()))
            assert [toleration(t) for t in taints] == target.placements()[pool.name].tolerations, (stack, pool.name)


def test_5_team_profile_carries_the_placements():
    mocks = platform_of(config_of("azure"))
    configmap = next(
        c
        for c in team_objects(mocks, "kubernetes:core/v1:ConfigMap", "churn")
        if c["metadata"]["name"] == PROFILE_CONFIGMAP
    )
    pools = TeamProfile.model_validate_json(configmap["data"][PROFILE_KEY]).pools
    assert {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    } in pools["spark"].tolerations


def test_5_aks_user_pools_are_created_one_after_another(azure):
    mocks = azure[0]
    assert mocks.waits_for("azure-native:containerservice:AgentPool", "mlkit-azure-spark") == {"mlkit-azure-aks"}
    assert mocks.waits_for("azure-native:containerservice:AgentPool", "mlkit-azure-gput4") == {"mlkit-azure-spark"}


def test_5_a_spot_only_system_pool_fails_validate_not_up():
    values = stack_values("azure")
    values["nodePools"][0]["spot"] = True
    assert "needs at least one on-demand CPU pool" in problems(values)[0]


# 6 --------------------------------------------------------------------------------------------------


def test_6_kind_cluster_is_replaced_delete_first_and_its_kubeconfig_read_again():
    mocks, *_ = provision("local")
    assert mocks.options[("command:local:Command", "mlkit-local-kind")].delete_before_replace is True
    kubeconfig = mocks.one("command:local:Command", "mlkit-local-kubeconfig").inputs
    cluster = mocks.one("command:local:Command", "mlkit-local-kind").inputs
    assert "mlkit-local-kind-id" in kubeconfig["triggers"] and cluster["stdin"] in kubeconfig["triggers"]


# 7 --------------------------------------------------------------------------------------------------


def test_7_eks_maps_iam_principals_to_the_groups_team_rbac_names(aws):
    mocks = aws[0]
    assert mocks.one("aws:eks/cluster:Cluster").inputs["accessConfig"]["authenticationMode"] == "API"
    entries = {e.inputs["principalArn"]: e.inputs for e in mocks.of_type("aws:eks/accessEntry:AccessEntry")}
    assert entries["arn:aws:iam::111122223333:role/ml-churn"]["kubernetesGroups"] == ["ml-churn"]
    admin = mocks.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation").inputs
    assert admin["policyArn"].endswith("AmazonEKSClusterAdminPolicy") and admin["accessScope"] == {"type": "cluster"}
    # Every group a team's RoleBinding names is given to some principal.
    team_groups = {g for t in config_of("aws").teams for g in t.groups}
    assert team_groups <= {g for e in entries.values() for g in e.get("kubernetesGroups", [])}


def test_7_gke_sees_google_groups_for_rbac(gcp):
    cluster = gcp[0].one("gcp:container/cluster:Cluster").inputs
    assert cluster["authenticatorGroupsConfig"] == {"securityGroup": "gke-security-groups@acme.example"}
    values = stack_values("gcp")
    del values["target"]["rbacSecurityGroup"]
    assert any("Google Groups for RBAC" in p for p in problems(values))


def test_7_aks_signs_people_in_with_entra_id_and_no_static_certificate(azure):
    mocks = azure[0]
    cluster = mocks.one("azure-native:containerservice:ManagedCluster").inputs
    assert cluster["aadProfile"]["managed"] is True and cluster["disableLocalAccounts"] is True
    assert cluster["aadProfile"]["adminGroupObjectIDs"] == ["7d0e3b1a-5c2f-4e8d-9b6a-1f2e3d4c5b6a"]
    kubeconfig = json.loads(unsecret(mocks.one("pulumi:providers:kubernetes").inputs["kubeconfig"]))
    user = kubeconfig["users"][0]["user"]
    assert set(user) == {"exec"} and user["exec"]["command"] == "kubelogin"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://mlkit-azure-abc123.hcp.westeurope.azmk8s.io:443"


# 8 --------------------------------------------------------------------------------------------------


def test_8_platform_releases_wait_for_the_node_groups(aws_platform):
    node_groups = {r.name for r in aws_platform.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert node_groups == {"mlkit-system", "mlkit-spark", "mlkit-gpu-a10g"}
    releases = aws_platform.of_type("kubernetes:helm.sh/v3:Release")
    assert releases
    for release in releases:
        assert node_groups <= aws_platform.waits_for(release.type, release.name), release.name
    assert node_groups <= aws_platform.waits_for("aws:eks/addon:Addon", "mlkit-ebs-csi")


# 9 --------------------------------------------------------------------------------------------------


def test_9_network_policies_are_enforced_on_eks_and_gke(aws, gcp):
    cni = aws[0].one("aws:eks/addon:Addon", "mlkit-aws-vpc-cni").inputs
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}
    cluster = gcp[0].one("gcp:container/cluster:Cluster").inputs
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH" and "networkPolicy" not in cluster


# 10: tests/infra/test_program.py::test_the_stacks_provider_settings_reach_the_explicit_provider

# 11 -------------------------------------------------------------------------------------------------


def test_11_replaced_pools_never_collide_with_their_old_name(aws, gcp, azure):
    for group in aws[0].of_type("aws:eks/nodeGroup:NodeGroup"):
        assert "nodeGroupName" not in group.inputs and group.inputs["nodeGroupNamePrefix"].endswith("-")
    for pool in gcp[0].of_type("gcp:container/nodePool:NodePool"):
        assert "name" not in pool.inputs and pool.inputs["namePrefix"].endswith("-")
    # AKS pool names are fixed (12 characters, no prefix): the old pool goes first.
    for pool in azure[0].of_type("azure-native:containerservice:AgentPool"):
        assert azure[0].options[(pool.type, pool.name)].delete_before_replace is True


# 12 -------------------------------------------------------------------------------------------------


def test_12_gke_endpoint_accepts_only_the_configured_networks_and_nodes_never_use_the_default_account(gcp):
    cluster = gcp[0].one("gcp:container/cluster:Cluster").inputs
    networks = cluster["masterAuthorizedNetworksConfig"]
    assert [b["cidrBlock"] for b in networks["cidrBlocks"]] == ["203.0.113.0/24"]
    assert networks["gcpPublicCidrsAccessEnabled"] is False
    node_account = "mlkit-gcp-nodes@acme-ml-platform.iam.gserviceaccount.com"
    assert cluster["nodeConfig"]["serviceAccount"] == node_account  # the short-lived default pool too


# 13 -------------------------------------------------------------------------------------------------


def test_13_long_names_still_fit_the_clouds_limits():
    team = "t" + "x" * 61  # a 62-character team name, valid in Kubernetes
    mocks, *_ = provision("aws", teams=(team,))
    for role in mocks.of_type("aws:iam/role:Role"):
        # A prefix of at most 38 characters: AWS appends 26 and refuses a name over 64.
        assert len(role.inputs["namePrefix"]) <= 38, role.name
    long_stack = "mlkit-" + "a" * 23  # 29 characters: `<name>-nodes`[:30] ended in '-'
    config = config_of("gcp")
    mocks = deploy(config, lambda c: provision_target(c, long_stack))
    account = next(r for r in mocks.of_type("gcp:serviceaccount/account:Account") if r.name == f"{long_stack}-nodes")
    assert re.fullmatch(r"[a-z]([-a-z0-9]{4,28}[a-z0-9])", account.inputs["accountId"]), account.inputs["accountId"]


# 14 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "key"), [("gs", "fs.gs.impl"), ("abfss", "fs.azure.account.oauth.provider.type")])
def test_14_existing_target_emits_the_settings_of_its_stores_scheme(scheme, key):
    values = stack_values("sim")
    values["target"]["objectStore"] = {"scheme": scheme}
    found: dict = {}

    def build(config):
        import pulumi

        target = provision_target(config, "mlkit-sim")
        pulumi.Output.all(**target.hadoop_conf()).apply(found.update)

    deploy(parse_stack(values, "sim", decrypted=True), build)
    assert key in found and not any(k.startswith("fs.s3a.") for k in found)


# 15 -------------------------------------------------------------------------------------------------


def test_15_s3a_may_probe_the_parents_of_its_prefix_and_nothing_beside_them():
    assert parent_keys("teams/churn/") == ["teams", "teams/", "teams/churn"]
    policy = json.loads(prefix_policy("b", "arn:key", "teams/churn/", "readwrite"))
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["HeadTheParents"]["Action"] == "s3:GetObject"  # HEAD of the keys, nothing written
    assert statements["HeadTheParents"]["Resource"] == [
        "arn:aws:s3:::b/teams",
        "arn:aws:s3:::b/teams/",
        "arn:aws:s3:::b/teams/churn",
    ]
    # Listing above the prefix: one level, with delimiter '/', at the exact parent keys only.
    probe = statements["ProbeTheParents"]["Condition"]["StringEquals"]
    assert probe == {"s3:prefix": ["teams/"], "s3:delimiter": "/"}
    assert not any("teams/fraud" in json.dumps(s) for s in policy["Statement"])


# AWS extras: spot diversification, the accelerator label, the autoscaler's minor -------------------


def test_aws_spot_pools_spread_over_same_size_instance_types(aws):
    spark = aws[0].one("aws:eks/nodeGroup:NodeGroup", "mlkit-aws-spark").inputs
    assert spark["instanceTypes"] == spot_instance_types("r6i.2xlarge")
    assert spark["instanceTypes"][0] == "r6i.2xlarge" and {"r6a.2xlarge", "r5.2xlarge"} <= set(spark["instanceTypes"])
    gpu = aws[0].one("aws:eks/nodeGroup:NodeGroup", "mlkit-aws-gpu-a10g").inputs
    assert gpu["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-a10g"
    assert gpu["tags"]["k8s.io/cluster-autoscaler/node-template/label/k8s.amazonaws.com/accelerator"] == "nvidia-a10g"
    release = aws[0].one("kubernetes:helm.sh/v3:Release", "mlkit-aws-cluster-autoscaler").inputs
    assert release["values"]["image"]["tag"] == "v1.34.0"


def test_irsa_trust_is_unchanged_by_the_split():
    trust = json.loads(irsa_trust_policy("arn:oidc", "https://issuer/id/X", "churn", "spark"))
    assert trust["Statement"][0]["Condition"]["StringEquals"]["issuer/id/X:sub"] == "system:serviceaccount:churn:spark"


# 12.7 ------------------------------------------------------------------------------------------------


def test_existing_target_gives_each_team_its_own_keys_and_the_platform_its_own():
    values = stack_values("onprem")
    values["teams"].append({"name": "fraud"})
    assert any("team 'fraud' has no keys of its own" in p for p in problems(values))
    values["target"]["objectStore"]["shareKeysWithTeams"] = True
    assert parse_stack(values, "onprem", decrypted=False).teams[1].name == "fraud"

    _, _, bindings, _ = provision("onprem", teams=("churn",))
    assert bindings["churn"].credentials["AWS_ACCESS_KEY_ID"] is not None
    found: dict = {}

    def build(config):
        import pulumi

        target = provision_target(config, "mlkit-onprem")
        for namespace in ("churn", "mlflow"):
            binding = target.bind("spark", namespace, f"teams/{namespace}")
            pulumi.Output.from_input(binding.credentials["AWS_ACCESS_KEY_ID"]).apply(
                lambda key, namespace=namespace: found.__setitem__(namespace, key)
            )

    deploy(config_of("onprem"), build)
    assert found == {"churn": "AKIACHURN", "mlflow": "AKIAONPREM"}


# The shipped stack files stay in the new shape ---------------------------------------------------------


def test_no_shipped_stack_uses_the_old_target_shape():
    from infra.stack import REPO_ROOT

    for path in (REPO_ROOT / "stacks").glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        assert isinstance(config["mlkit:target"], dict) and "type" in config["mlkit:target"], path.name


def test_13_a_stack_name_the_cloud_cannot_take_fails_validate(tmp_path):
    """GKE cluster names end at 40 characters; the cluster is named after the stack."""
    from infra.stack import StackConfigError, load_pulumi_config, load_stack_file

    path = tmp_path / "Pulumi.a-very-long-stack-name-for-production-eu.yaml"
    path.write_text((REPO_ROOT / "stacks" / "Pulumi.gcp.yaml").read_text())
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(str(path))
    assert [str(p) for p in caught.value.problems] == [
        "mlkit:target.type: stack 'a-very-long-stack-name-for-production-eu' names its cluster "
        "'mlkit-a-very-long-stack-name-for-production-eu', which this target refuses: expected lowercase letters, "
        "digits and '-', at most 40 characters (a GKE rule); pick a shorter stack name"
    ]
    encoded = {f"mlkit:{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in stack_values("gcp").items()}
    with pytest.raises(StackConfigError, match="names its cluster"):
        load_pulumi_config(encoded, "a-very-long-stack-name-for-production-eu")
    assert load_pulumi_config(encoded, "gcp").target.type == "gcp"


def test_review_findings_names_and_access_that_fit():
    """From the review of this work: prefixes that leave room for the provider's suffix, no instance type that
    does not exist, an AKS stack whose deployer cannot be locked out, EKS users named explicitly."""
    assert spot_instance_types("c5.9xlarge") == ["c5.9xlarge"]  # c6i has no 9xlarge
    assert "m5.4xlarge" in spot_instance_types("m6i.4xlarge")
    values = stack_values("gcp")
    values["nodePools"][1] = {**values["nodePools"][1], "name": "spark-highmem-preemptible"}
    mocks = deploy(parse_stack(values, "gcp", decrypted=True), lambda c: provision_target(c, "mlkit-gcp"))
    prefixes = [p.inputs["namePrefix"] for p in mocks.of_type("gcp:container/nodePool:NodePool")]
    assert all(len(p) + 26 <= 40 for p in prefixes), prefixes
    values = stack_values("azure")
    values["target"]["adminGroupObjectIds"] = []
    assert any("mlkit:target.adminGroupObjectIds" in p for p in problems(values))
    values = stack_values("aws")
    values["teams"][0]["members"] = ["arn:aws:iam::111122223333:role/ml-churn"]  # a role ARN is no EKS user name
    assert any("is the user of no IAM principal" in p for p in problems(values))


def test_the_eks_kubeconfig_signs_in_with_the_stacks_aws_profile():
    found: dict = {}

    def build(config):
        target = provision_target(config, "mlkit-aws", {"profile": "acme-prod"})
        target.provider.kubeconfig.apply(lambda k: found.update(json.loads(k)))

    deploy(config_of("aws"), build)
    assert found["users"][0]["user"]["exec"]["args"][-2:] == ["--profile", "acme-prod"]

"""RBAC and quotas: decided by the API server, so these run for real on every cluster, simulated or not."""

from __future__ import annotations

import pytest

from infra.verify.kube import probe_pod


def test_service_accounts_stay_in_their_namespace(team, deployment, kube, record):
    """The team's service accounts cannot read another team's Secrets or start pods there; Spark's starts its own."""
    profile = deployment.profiles[team]
    accounts = profile.service_accounts
    spark = f"system:serviceaccount:{profile.namespace}:{accounts.spark}"
    # The control: the Spark driver's account starts its executors, so a "no" below is RBAC's answer.
    assert kube.can_i(spark, "create", "pods", profile.namespace), f"{spark} may not create pods in its namespace"
    other = deployment.other_team(team)
    if other is None:
        pytest.skip("the stack has one team: no other namespace to be kept out of")
    other_ns = deployment.profiles[other].namespace
    for account in sorted({accounts.models, accounts.spark}):
        user = f"system:serviceaccount:{profile.namespace}:{account}"
        for verb, resource in (("get", "secrets"), ("create", "pods")):
            assert not kube.can_i(user, verb, resource, other_ns), f"{user} may {verb} {resource} in {other_ns}"
    record(f"{accounts.models}, {accounts.spark}: no Secrets, no pods in {other_ns}")


def test_members_edit_only_their_namespace(team, deployment, kube, record):
    """Each member may create pods in the team namespace and cannot list pods in another team's."""
    members = next(t.members for t in deployment.config.teams if t.name == team)
    if not members:
        pytest.skip(f"team {team} lists no members")
    profile = deployment.profiles[team]
    other = deployment.other_team(team)
    for member in members:
        assert kube.can_i(member, "create", "pods", profile.namespace), f"{member} may not create pods in {team}"
        if other:
            other_ns = deployment.profiles[other].namespace
            assert not kube.can_i(member, "list", "pods", other_ns), f"{member} may list pods in {other_ns}"
    record(f"{', '.join(members)}: edit in {profile.namespace} only")


def test_gpu_quota_is_enforced(team, deployment, kube, pods, record):
    """A pod asking for one GPU more than the team's quota is refused by the API server's quota admission."""
    profile = deployment.profiles[team]
    allowed = next(t.quotas.gpu for t in deployment.config.teams if t.name == team)
    gpus = str(allowed + 1)
    name = pods.name(f"quota-{team}")
    manifest = probe_pod(
        name,
        profile,
        deployment.probe_image,
        deployment.run_id,
        command=["sleep", "1"],
        tolerations=profile.gpu.tolerations,
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {profile.gpu.resource_name: gpus}},
    )
    pods.namespaces.add(profile.namespace)
    refused = kube.create(manifest, check=False)
    if refused.returncode == 0:
        kube.run("delete", "pod", name, "-n", profile.namespace, "--wait=false", check=False)
        raise AssertionError(f"a pod asking for {gpus} GPUs was admitted in {team} (quota {allowed})")
    assert "exceeded quota" in refused.stderr, refused.stderr.strip()
    record(f"{gpus} GPUs refused: exceeded quota (allowed {allowed})")

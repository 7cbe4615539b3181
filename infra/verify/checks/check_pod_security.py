"""Pod Security admission in team namespaces: decided by the API server, so real on every cluster."""

from __future__ import annotations

from infra.verify.kube import probe_pod

ENFORCE = "pod-security.kubernetes.io/enforce"


def test_team_workload_is_admitted(team, deployment, pods, record):
    """A pod as team workloads run (team service account, profile, restricted security context) is admitted and scheduled."""
    pod = pods.team_probe(team)
    record(f"{pod['metadata']['name']} on {pod['spec']['nodeName']}")


def test_privileged_pod_is_refused(team, deployment, kube, pods, record):
    """A privileged pod in the team namespace is refused by the API server (Pod Security, level restricted)."""
    profile = deployment.profiles[team]
    level = kube.get("namespace", profile.namespace)["metadata"].get("labels", {}).get(ENFORCE)
    name = pods.name(f"privileged-{team}")
    manifest = probe_pod(
        name, profile, deployment.probe_image, deployment.run_id, command=["sleep", "1"], privileged=True
    )
    pods.namespaces.add(profile.namespace)
    created = kube.create(manifest, check=False)
    if created.returncode == 0:
        kube.run("delete", "pod", name, "-n", profile.namespace, "--wait=false", check=False)
        raise AssertionError(f"a privileged pod was admitted in namespace {profile.namespace} (enforce: {level})")
    assert "violates PodSecurity" in created.stderr, created.stderr.strip()
    record(f"refused: violates PodSecurity {level!r}")

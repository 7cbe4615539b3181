"""The GPU gate, per GPU pool: scheduling is the API server's (real everywhere); the computation needs a GPU."""

from __future__ import annotations

import pytest

from infra.verify.kube import pod_condition, probe_pod, unschedulable, wait_for
from infra.verify.plugin import run_probe


@pytest.fixture(scope="session")
def gpu_team(deployment) -> str:
    """The first checked team allowed a GPU: GPU pods run under its quota."""
    team = next((t.name for t in deployment.config.teams if t.name in deployment.teams and t.quotas.gpu > 0), None)
    if team is None:
        pytest.skip("no checked team has a GPU quota (mlkit:teams[].quotas.gpu)")
    return team


@pytest.fixture(scope="session")
def gpu_pods(deployment, pods, gpu_team):
    """Per pool, the team's GPU pod (started once, shared by the checks of that pool)."""
    profile = deployment.profiles[gpu_team]
    started: dict[str, dict] = {}

    def gpu_pod(pool: str) -> dict:
        if pool not in started:
            name = pods.name(f"gpu-{pool}")
            placement = profile.pools[pool]
            pods.start(
                probe_pod(
                    name,
                    profile,
                    deployment.gpu_image,
                    deployment.run_id,
                    command=["sleep", "3600"],
                    node_selector={**placement.node_selector, **profile.gpu.node_selector},
                    tolerations=[*profile.gpu.tolerations, *placement.tolerations],
                    resources={
                        "requests": {"cpu": "500m", "memory": "2Gi"},
                        "limits": {"memory": "8Gi", profile.gpu.resource_name: "1"},
                    },
                )
            )
            started[pool] = pods.wait_scheduled(profile.namespace, name)
        return started[pool]

    return gpu_pod


def test_gpu_pod_is_scheduled_on_the_pool(gpu_pool, deployment, gpu_pods, record):
    """A pod with the team's GPU toleration asking for one GPU is scheduled onto a node of the pool."""
    pod = gpu_pods(gpu_pool)
    nodes = deployment.pool_nodes({"mlkit.io/pool": gpu_pool})
    assert pod["spec"]["nodeName"] in nodes, f"scheduled on {pod['spec']['nodeName']}, not a {gpu_pool} node"
    record(f"on {pod['spec']['nodeName']}")


def test_untolerated_pod_is_refused_by_the_pool(gpu_pool, deployment, kube, pods, record):
    """A pod without the GPU toleration, pinned to the pool, stays Pending: the scheduler refuses it for the taint."""
    team = deployment.teams[0]
    profile = deployment.profiles[team]
    name = pods.name(f"untolerated-{gpu_pool}")
    pods.start(
        probe_pod(
            name,
            profile,
            deployment.probe_image,
            deployment.run_id,
            command=["sleep", "1"],
            node_selector=profile.pools[gpu_pool].node_selector,
        )
    )
    pod = wait_for(kube, profile.namespace, name, unschedulable, min(60, deployment.pod_timeout))
    assert not pod["spec"].get("nodeName"), f"scheduled on {pod['spec']['nodeName']} without the toleration"
    condition = pod_condition(pod, "PodScheduled") or {}
    assert unschedulable(pod), f"not refused by the scheduler: {condition or pod['status'].get('phase')}"
    assert "taint" in condition.get("message", ""), condition.get("message")
    events = kube.get("events", "-n", profile.namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    reasons = {e["reason"] for e in events}
    assert "FailedScheduling" in reasons, f"no FailedScheduling event (events: {sorted(reasons)})"
    record(f"Pending, FailedScheduling: {condition['message'].split('. ')[0]}")


def test_cuda_matches_cpu(gpu_pool, deployment, pods, gpu_pods, record):
    """nvidia-smi answers in the GPU pod, and a matrix product on its GPU equals the CPU's."""
    host = pods.container(gpu_pods(gpu_pool))
    answer = run_probe(host, "gpu_probe")
    assert answer["ok"], answer.get("error") or f"GPU and CPU results differ by {answer.get('max_abs_error')}"
    record(f"{answer['device']}, CUDA {answer['cuda']}, max |GPU-CPU| {answer['max_abs_error']:.1e}")

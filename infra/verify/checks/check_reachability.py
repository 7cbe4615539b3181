"""Platform reachability from a team pod, and the NetworkPolicies that keep teams apart."""

from __future__ import annotations

import pytest

from infra.components import mlflow, monitoring, pipelines
from infra.verify.kube import PROBE_PORT
from infra.verify.plugin import run_probe

# What a team pod calls, per platform service: the component's switch and its health URL in the cluster.
SERVICES = {
    "mlflow": ("mlflow", f"{mlflow.URL}/health"),
    "kfp-api": (
        "kubeflow_pipelines",
        f"http://ml-pipeline.{pipelines.NAMESPACE}.svc.cluster.local:8888/apis/v2beta1/healthz",
    ),
    "prometheus": (
        "monitoring",
        f"http://kube-prometheus-stack-prometheus.{monitoring.NAMESPACE}.svc.cluster.local:9090/-/ready",
    ),
}


def test_default_deny_is_in_place(team, deployment, kube, record):
    """The team namespace has a NetworkPolicy denying all ingress and egress its other policies then open."""
    namespace = deployment.profiles[team].namespace
    policies = kube.get("networkpolicies", "-n", namespace)["items"]
    deny_all = [
        p["metadata"]["name"]
        for p in policies
        if p["spec"].get("podSelector") in ({}, None)
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny_all, (
        f"no deny-all NetworkPolicy in {namespace} (has: {sorted(p['metadata']['name'] for p in policies)})"
    )
    record(f"{deny_all[0]} among {len(policies)} policies")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_platform_service_answers(service, team, deployment, pods, record):
    """MLflow, the Kubeflow Pipelines API and Prometheus answer a team pod over HTTP."""
    component, url = SERVICES[service]
    if not getattr(deployment.config.platform, component).enabled:
        pytest.skip(f"{service} is switched off in the stack (mlkit:platform)")
    host = pods.container(pods.team_probe(team))
    answer = run_probe(host, "connect_probe", "http", url)
    assert answer["reached"], f"{url}: {answer['error']}"
    assert answer["status"] < 500, f"{url}: HTTP {answer['status']}"
    record(f"{url}: HTTP {answer['status']}")


def test_other_team_namespace_is_blocked(team, deployment, pods, record):
    """A team pod cannot connect to a pod in another team's namespace, which answers inside its own."""
    other = deployment.other_team(team)
    if other is None:
        pytest.skip("the stack has one team: no other namespace")
    source = pods.container(pods.team_probe(team))
    target_pod = pods.team_probe(other)
    target = pods.container(target_pod)
    # The control: the target's server answers, so a refusal below is the network's, not a dead server.
    assert run_probe(target, "connect_probe", "tcp", "127.0.0.1", str(PROBE_PORT))["reached"], "target not serving"
    address = (
        target_pod["status"].get("podIP")
        or pods.kube.get("pod", target_pod["metadata"]["name"], "-n", target_pod["metadata"]["namespace"])["status"][
            "podIP"
        ]
    )
    answer = run_probe(source, "connect_probe", "tcp", address, str(PROBE_PORT))
    assert not answer["reached"], f"{team} reached {other}'s pod at {address}:{PROBE_PORT}"
    record(f"{address}:{PROBE_PORT} in {other}: {answer['error']}")

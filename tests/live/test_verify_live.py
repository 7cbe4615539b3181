"""`mlkit verify` against a real `pulumi up` of the sim stack on the live control plane, then its stop command.

One deployment for the module (the up is the slow part). The cluster is this module's own, not the session's,
because the last test stops it with its stop command and checks nothing is left. Everything the API server
decides must pass; what needs a running container must be reported not verifiable, by name, never passed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import testinfra

from infra.stack import load_stack_file
from infra.verify.host import cluster_processes, kit_processes, listeners, recorded_pids
from mlkit_dev.local import LocalMlflow
from mlkit_dev.simcluster import SimCluster
from tests.live.harness import REPO, LiveStack

MLKIT = [sys.executable, "-m", "infra.cli", "verify"]
TEAMS = ("churn", "fraud")
# Decided by the API server, scheduler or this machine: real here, so they must pass.
PASSING = {
    *(f"access.service-accounts-stay-in-their-namespace[{t}]" for t in TEAMS),
    *(f"access.members-edit-only-their-namespace[{t}]" for t in TEAMS),
    *(f"access.gpu-quota-is-enforced[{t}]" for t in TEAMS),
    *(f"pod-security.team-workload-is-admitted[{t}]" for t in TEAMS),
    *(f"pod-security.privileged-pod-is-refused[{t}]" for t in TEAMS),
    *(f"reachability.default-deny-is-in-place[{t}]" for t in TEAMS),
    "gpu.gpu-pod-is-scheduled-on-the-pool[gpu-t4]",
    "gpu.untolerated-pod-is-refused-by-the-pool[gpu-t4]",
    "host.kit-listeners-bind-loopback-only",
    "host.keys-and-kubeconfig-are-private",
    "host.every-cluster-process-is-stopped-by-its-stop-command",
}
# Need a container that runs (exec into a pod, a GPU): kwok's nodes run none.
NOT_VERIFIABLE = {
    "gpu.cuda-matches-cpu[gpu-t4]",
    *(f"reachability.platform-service-answers[{t}-{s}]" for t in TEAMS for s in ("kfp-api", "mlflow", "prometheus")),
    *(f"reachability.other-team-namespace-is-blocked[{t}]" for t in TEAMS),
    *(f"storage.own-prefix-write-read-delete[{t}]" for t in TEAMS),
    *(f"storage.other-team-prefix-is-denied[{t}]" for t in TEAMS),
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    cluster = SimCluster(tmp_path_factory.mktemp("verify-cluster"))
    cluster.up(load_stack_file("sim").node_pools)
    yield cluster
    cluster.down()  # a no-op once the last test stopped it


@pytest.fixture(scope="module")
def stack(sim, tmp_path_factory) -> LiveStack:
    live = LiveStack(sim, tmp_path_factory.mktemp("verify-pulumi"))
    live.init()
    live.up()
    return live


def verify(stack: LiveStack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MLKIT, str(stack.config_file), *args],
        cwd=REPO,
        env={**stack.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def report(stack) -> dict:
    result = verify(stack, "--json")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


def test_what_the_api_server_decides_passes_for_real(report):
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert {name for name, status in statuses.items() if status == "passed"} == PASSING, statuses
    assert report["ok"] is True and report["summary"]["failed"] == 0


def test_what_needs_a_running_container_is_not_verifiable_by_name(report):
    flagged = {c["check"]: c["detail"] for c in report["checks"] if c["status"] == "not verifiable on this cluster"}
    assert set(flagged) == NOT_VERIFIABLE
    assert all("is simulated (kwok), no container runs" in detail for detail in flagged.values())
    assert len(report["checks"]) == len(PASSING) + len(NOT_VERIFIABLE)  # nothing skipped, nothing extra


def test_the_real_refusals_are_the_ones_expected(report):
    details = {c["check"]: c["detail"] for c in report["checks"]}
    assert details["access.gpu-quota-is-enforced[churn]"] == "3 GPUs refused: exceeded quota (allowed 2)"
    assert details["pod-security.privileged-pod-is-refused[fraud]"] == "refused: violates PodSecurity 'restricted'"
    assert "untolerated taint" in details["gpu.untolerated-pod-is-refused-by-the-pool[gpu-t4]"]
    assert details["gpu.gpu-pod-is-scheduled-on-the-pool[gpu-t4]"] == "on gpu-t4-0"


def test_the_probe_pods_are_gone_after_the_run(stack, report):
    left = json.loads(stack.cluster.kubectl("get", "pods", "-A", "-l", "mlkit.io/verify-run", "-o", "json").stdout)
    assert left["items"] == []


def test_the_table_lists_each_check_and_the_not_verifiable_ones(stack):
    result = verify(stack, "--team", "churn", "--check", "pod_security or storage")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].strip().startswith("readiness of stack live (https://127.0.0.1:")
    assert any("pod-security.privileged-pod-is-refused[churn]" in line and "passed" in line for line in lines)
    assert lines[-2] == "2 passed, 2 not verifiable on this cluster"
    assert lines[-1] == (
        "not verifiable on this cluster: storage.own-prefix-write-read-delete[churn], "
        "storage.other-team-prefix-is-denied[churn]"
    )


def test_an_admitted_privileged_pod_is_reported_as_a_failure(stack):
    """The check is not a formality: a team namespace let down to `privileged` fails it, exit 1."""
    label = "pod-security.kubernetes.io/enforce"
    stack.cluster.kubectl("label", "namespace", "fraud", f"{label}=privileged", "--overwrite")
    try:
        result = verify(stack, "--team", "fraud", "--check", "privileged", "--json")
    finally:
        stack.cluster.kubectl("label", "namespace", "fraud", f"{label}=restricted", "--overwrite")
    assert result.returncode == 1, result.stdout + result.stderr
    [check] = json.loads(result.stdout)["checks"]
    assert check["status"] == "failed"
    assert check["detail"] == "a privileged pod was admitted in namespace fraud (enforce: privileged)"


def test_the_demos_servers_count_as_kit_listeners_and_stay_on_loopback(stack, tmp_path):
    """While `make demo`'s MLflow server runs (the demo's own helper starts it), the host check covers it."""
    host = testinfra.get_host("local://")
    with LocalMlflow(f"sqlite:///{tmp_path / 'mlflow.db'}") as mlflow:
        kit = kit_processes(host, stack.cluster.directory)
        mine = [s for s in listeners(host) if s.port == mlflow.port]
        assert mine and all(s.loopback and s.pids & set(kit) for s in mine), mine
        result = verify(stack, "--check", "loopback", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c["status"] for c in json.loads(result.stdout)["checks"]] == ["passed"]


def test_the_stop_command_leaves_no_process_of_the_cluster(stack):
    host = testinfra.get_host("local://")
    directory = stack.cluster.directory
    pids = recorded_pids(directory)
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert set(cluster_processes(host, directory)) == set(pids.values())
    stop = subprocess.run(
        [sys.executable, "-m", "mlkit_dev.simcluster", "down", "--dir", str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stop.returncode == 0, stop.stderr
    assert cluster_processes(host, directory) == {}
    assert [pid for pid in pids.values() if host.process.filter(pid=pid)] == []

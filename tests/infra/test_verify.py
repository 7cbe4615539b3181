"""`mlkit verify`: bad input is one line and exit 2; the report, the simulated-node and listener logic; the runner.

No cluster here: stand-in `pulumi` and `kubectl` executables answer as the real ones do. The suite against a
live control plane is tests/live/test_verify_live.py.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from infra.stack import REPO_ROOT, load_stack_file
from infra.verify import Deployment, run_checks
from infra.verify.host import Listener, listeners
from infra.verify.kube import Kube, probe_pod, simulated_nodes
from infra.verify.report import CheckResult, Status, exit_code, summary_line, table, to_json
from infra.versions import KIT_IMAGE_USER
from mlkit_contract import TeamProfile
from tests.infra.helpers import assert_cli, run_cli


def profile(team: str) -> dict:
    root = f"s3://mlkit-sim/teams/{team}"
    toleration = {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
    return TeamProfile.model_validate(
        {
            "team": team,
            "namespace": team,
            "root": root,
            "featureStore": f"{root}/features",
            "models": f"{root}/models",
            "requestLogs": f"{root}/request-logs",
            "objectStore": {"scheme": "s3", "bucket": "mlkit-sim", "endpoint": "http://127.0.0.1:9000"},
            "serviceAccounts": {"models": "ml", "spark": "spark"},
            "podLabels": {},
            "storeKeysSecret": {"models": None, "spark": None},
            "hadoopConf": {},
            "hadoopConfigMap": "mlkit-feature-store-hadoop",
            "gpu": {"resourceName": "nvidia.com/gpu", "nodeSelector": {}, "tolerations": [toleration]},
            "pools": {"cpu": {"nodeSelector": {"mlkit.io/pool": "cpu"}, "tolerations": []}},
            "mlflow": {"trackingUri": "http://mlflow.mlflow.svc.cluster.local:5000"},
        }
    ).model_dump(by_alias=True)


OUTPUTS = {"target": "existing", "teamProfiles": {"churn": profile("churn"), "fraud": profile("fraud")}}


def executable(path: Path, script: str) -> None:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def kubeconfig(path: Path, server: str, context: str = "mlkit-sim") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": context, "cluster": {"server": server}}],
                "users": [{"name": "admin", "user": {}}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": "admin"}}],
                "current-context": context,
            }
        )
    )
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A Pulumi project with the sim stack as stack `t`, its kubeconfig at https://127.0.0.1:6443."""
    root = tmp_path / "project"
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    document = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.sim.yaml").read_text())
    document["config"]["mlkit:target"]["kubeconfig"] = str(
        kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443")
    )
    (root / "stacks" / "Pulumi.t.yaml").write_text(yaml.safe_dump(document))
    return root


@pytest.fixture
def tools(tmp_path):
    """Stand-ins for pulumi and kubectl; set what they answer with ``tools(pulumi=..., kubectl=...)``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def answer(pulumi: str, pulumi_exit: int = 0, kubectl: str = "", kubectl_exit: int = 0) -> dict[str, str]:
        (tmp_path / "pulumi.out").write_text(pulumi)
        (tmp_path / "kubectl.err").write_text(kubectl)
        executable(bin_dir / "pulumi", f"cat '{tmp_path}/pulumi.out' >&{2 if pulumi_exit else 1}\nexit {pulumi_exit}\n")
        executable(bin_dir / "kubectl", f"cat '{tmp_path}/kubectl.err' >&2\nexit {kubectl_exit}\n")
        return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PULUMI_BACKEND_URL": "file:///nowhere"}

    return answer


def assert_bad_input(result, message: str) -> None:
    """Exit 2, one line naming the problem, no stack trace."""
    assert_cli(result, 2, message)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output


def test_a_stack_never_deployed_is_one_line(project, tools):
    env = tools("error: no stack named 't' found", pulumi_exit=255)
    result = run_cli("verify", str(project / "stacks" / "Pulumi.t.yaml"), env=env)
    assert_bad_input(
        result, "mlkit verify: stack t was never deployed: the state backend (file:///nowhere) has no such stack"
    )


def test_a_stack_created_but_never_updated_is_one_line(project, tools):
    result = run_cli("verify", str(project / "stacks" / "Pulumi.t.yaml"), env=tools("{}"))
    assert_bad_input(result, "stack t was never deployed: it has no outputs in file:///nowhere; run `make up STACK=t`")


def test_a_team_that_does_not_exist_is_one_line(project, tools):
    result = run_cli(
        "verify", str(project / "stacks" / "Pulumi.t.yaml"), "--team", "ads", env=tools(json.dumps(OUTPUTS))
    )
    assert_bad_input(result, "team 'ads' does not exist in stack t (its teams: churn, fraud)")


def test_a_kubeconfig_for_another_cluster_is_one_line(project, tools, tmp_path):
    other = kubeconfig(tmp_path / "other", "https://10.0.0.9:6443")
    stack = str(project / "stacks" / "Pulumi.t.yaml")
    result = run_cli("verify", stack, "--kubeconfig", str(other), env=tools(json.dumps(OUTPUTS)))
    assert_bad_input(
        result,
        f"kubeconfig {other} (context mlkit-sim) points at https://10.0.0.9:6443, but stack t was deployed to "
        f"https://127.0.0.1:6443 (context mlkit-sim of {tmp_path / 'kubeconfig'})",
    )


def test_a_kubeconfig_without_the_stacks_context_is_one_line(project, tools, tmp_path):
    other = kubeconfig(tmp_path / "other", "https://127.0.0.1:6443", context="prod")
    result = run_cli(
        "verify", str(project / "stacks" / "Pulumi.t.yaml"), "--kubeconfig", str(other), env=tools(json.dumps(OUTPUTS))
    )
    assert_bad_input(result, f"kubeconfig {other} has no context 'mlkit-sim' (its contexts: prod)")


def test_a_cluster_without_the_stacks_team_profiles_is_another_cluster(project, tools):
    """Same server address, another platform (or none): the team profile ConfigMaps say so."""
    env = tools(
        json.dumps(OUTPUTS), kubectl='Error from server (NotFound): namespaces "churn" not found', kubectl_exit=1
    )
    result = run_cli("verify", str(project / "stacks" / "Pulumi.t.yaml"), env=env)
    assert_bad_input(
        result,
        "the cluster at https://127.0.0.1:6443 is not stack t's: namespace churn holds no mlkit-team-profile "
        "matching the stack's team churn (another kubeconfig or context?)",
    )


def test_an_unreachable_cluster_is_one_line(project, tools):
    env = tools(json.dumps(OUTPUTS), kubectl="The connection to the server 127.0.0.1:6443 was refused", kubectl_exit=1)
    result = run_cli("verify", str(project / "stacks" / "Pulumi.t.yaml"), env=env)
    assert_bad_input(
        result,
        "cannot reach the cluster at https://127.0.0.1:6443: The connection to the server 127.0.0.1:6443 was refused",
    )


def test_an_invalid_stack_file_is_one_line(tmp_path, tools):
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config:\n  mlkit:target: {type: existing}\n")
    result = run_cli("verify", str(bad), env=tools("{}"))
    assert_bad_input(result, f"{bad} is not a valid stack:")


RESULTS = [
    CheckResult("access.gpu-quota-is-enforced[churn]", "quota", Status.PASSED, "3 GPUs refused", 0.1),
    CheckResult("gpu.cuda-matches-cpu[gpu-t4]", "cuda", Status.NOT_VERIFIABLE, "node gpu-t4-0 is simulated", 0.2),
    CheckResult("host.keys-and-kubeconfig-are-private", "keys", Status.NOT_APPLICABLE, "not the local plane", 0.0),
]


def test_the_report_names_every_check_with_its_status_and_detail():
    console = Console(width=200, record=True)
    console.print(table(RESULTS, "readiness of stack sim"))
    text = console.export_text()
    for result in RESULTS:
        row = next(line for line in text.splitlines() if result.check in line)
        assert result.status.value in row and result.detail in row
    assert summary_line(RESULTS) == (
        "1 passed, 1 not verifiable on this cluster, 1 not applicable\n"
        "not verifiable on this cluster: gpu.cuda-matches-cpu[gpu-t4]"
    )


def test_not_verifiable_is_no_failure_and_any_failure_fails():
    assert exit_code(RESULTS) == 0
    failed = CheckResult("pod-security.privileged-pod-is-refused[churn]", "psa", Status.FAILED, "admitted", 0.1)
    assert exit_code([*RESULTS, failed]) == 1
    assert exit_code([]) == 1  # nothing checked proves nothing


def test_the_json_report_carries_each_check_and_the_counts():
    document = json.loads(to_json(RESULTS, "sim"))
    assert document["ok"] is True and document["stack"] == "sim"
    assert document["summary"] == {"passed": 1, "failed": 0, "not verifiable on this cluster": 1, "not applicable": 1}
    assert [c["status"] for c in document["checks"]] == [r.status.value for r in RESULTS]


def node(name: str, fake: bool) -> dict:
    return {"metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"} if fake else {}}}


def test_kwok_nodes_are_simulated_and_real_nodes_are_not():
    nodes = [node("cpu-0", fake=True), node("gpu-0", fake=False)]
    assert simulated_nodes(nodes, whole_cluster_simulated=False) == {"cpu-0"}
    # The sim stack's `simulated: true` marks every node, annotated or not.
    assert simulated_nodes(nodes, whole_cluster_simulated=True) == {"cpu-0", "gpu-0"}


def test_probe_pods_meet_the_restricted_level_and_run_as_the_team():
    team = TeamProfile.model_validate(profile("churn"))
    pod = probe_pod("p", team, "registry/mlkit-training:0.1.0", "run1", command=["sleep", "1"])
    security = pod["spec"]["containers"][0]["securityContext"]
    # What Pod Security's restricted level asks of every container (the kit's RESTRICTED may add more).
    assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]} and security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsUser"] == security["runAsGroup"] == KIT_IMAGE_USER
    assert pod["spec"]["serviceAccountName"] == "ml" and pod["metadata"]["labels"]["mlkit.io/verify-run"] == "run1"
    privileged = probe_pod("p", team, "img", "run1", command=["sleep", "1"], privileged=True)
    assert privileged["spec"]["containers"][0]["securityContext"]["privileged"] is True


class StandInHost:
    def __init__(self, output: str):
        self.output = output

    def check_output(self, command: str) -> str:
        assert command == "ss -Hltnup"
        return self.output


def test_listeners_are_read_from_ss_with_their_pids():
    output = "\n".join(
        [
            'tcp   LISTEN 0 4096       127.0.0.1:2379       0.0.0.0:*    users:(("etcd",pid=101,fd=8))',
            'tcp   LISTEN 0 4096               *:6443             *:*    users:(("kube-apiserver",pid=102,fd=3))',
            'tcp   LISTEN 0 128            [::1]:5000          [::]:*    users:(("mlflow",pid=103,fd=5),("mlflow",pid=104,fd=5))',
            'udp   UNCONN 0 0            0.0.0.0:5353       0.0.0.0:*    users:(("avahi",pid=105,fd=12))',
            "tcp   LISTEN 0 128  [::ffff:127.0.0.1]:8080          [::]:*",
        ]
    )
    found = listeners(StandInHost(output))  # pyright: ignore[reportArgumentType]
    assert [(str(s), s.loopback, set(s.pids)) for s in found] == [
        ("tcp 127.0.0.1:2379", True, {101}),
        ("tcp *:6443", False, {102}),
        ("tcp [::1]:5000", True, {103, 104}),
        ("udp 0.0.0.0:5353", False, {105}),
        ("tcp [::ffff:127.0.0.1]:8080", True, set()),
    ]
    assert not Listener("tcp", "0.0.0.0", 1, frozenset()).loopback


def test_the_host_checks_are_not_applicable_to_a_remote_cluster():
    """The runner end to end, without a cluster: the host checks skip themselves and say why, by name."""
    config = load_stack_file("sim")
    deployment = Deployment(
        stack="sim",
        config=config,
        outputs=OUTPUTS,
        profiles={t: TeamProfile.model_validate(p) for t, p in OUTPUTS["teamProfiles"].items()},
        teams=["churn", "fraud"],
        kube=Kube(),
        server="https://10.0.0.9:6443",
        nodes=[],
        simulated=frozenset(),
        probe_image="img",
        gpu_image="gpu-img",
        local_cluster=None,
    )
    results = run_checks(deployment, select="host")
    assert [(r.check, r.status) for r in results] == [
        ("host.kit-listeners-bind-loopback-only", Status.NOT_APPLICABLE),
        ("host.keys-and-kubeconfig-are-private", Status.NOT_APPLICABLE),
        ("host.every-cluster-process-is-stopped-by-its-stop-command", Status.NOT_APPLICABLE),
    ]
    assert {r.detail for r in results} == {"the cluster is not the kit's local control plane (`make cluster`)"}
    assert all(r.proves for r in results)

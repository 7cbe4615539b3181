"""`mlkit doctor` names each missing tool with an install hint, judged by the PATH it is given."""

import os
import stat
from pathlib import Path

import pytest

from infra.clouds import plugin_of
from infra.stack import load_stack_file
from tests.infra.helpers import assert_cli, run_cli_process


def stand_in(bin_dir: Path, name: str, output: str = "v1.0.0", exit_code: int = 0) -> None:
    """A stand-in executable for a tool this machine lacks (pulumi, kind, a cloud CLI)."""
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\necho '{name} {output}'\nexit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def bin_dir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    return d


def env_with(bin_dir: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": str(bin_dir), "HOME": str(home), "COLUMNS": "200", **extra}


def test_empty_path_names_every_missing_tool(bin_dir, tmp_path):
    result = run_cli_process("doctor", "aws", env=env_with(bin_dir, tmp_path))
    assert_cli(
        result,
        1,
        "pulumi",
        "https://www.pulumi.com/docs/install/",
        "kubectl",
        "helm",
        "aws",
        "no AWS credentials: run `aws configure`",
        "missing: pulumi, kubectl, helm, aws, aws access",
    )


def test_all_present_passes(bin_dir, tmp_path):
    for tool in ("pulumi", "kubectl", "helm", "gcloud"):
        stand_in(bin_dir, tool)
    env = env_with(bin_dir, tmp_path, GOOGLE_APPLICATION_CREDENTIALS="/dev/null", PULUMI_CONFIG_PASSPHRASE="")
    assert_cli(run_cli_process("doctor", "gcp", env=env), 0, "gcloud v1.0.0", "credentials found")


def test_only_the_missing_tool_is_named(bin_dir, tmp_path):
    for tool in ("pulumi", "helm", "docker"):
        stand_in(bin_dir, tool)
    stand_in(bin_dir, "kind", "boom", exit_code=3)
    result = run_cli_process("doctor", "local", env=env_with(bin_dir, tmp_path, PULUMI_CONFIG_PASSPHRASE="x"))
    assert_cli(result, 1, "missing: kubectl, kind")
    assert "`kind version` failed" in result.output


def test_local_stack_needs_a_running_docker_engine(bin_dir, tmp_path):
    for tool in ("pulumi", "kubectl", "helm", "kind"):
        stand_in(bin_dir, tool)
    stand_in(bin_dir, "docker", "", exit_code=1)  # a client whose engine does not answer
    result = run_cli_process("doctor", "local", env=env_with(bin_dir, tmp_path, PULUMI_CONFIG_PASSPHRASE="x"))
    assert_cli(result, 1, "the Docker engine is not running")


def test_existing_stack_checks_the_kubeconfig_context(bin_dir, tmp_path):
    for tool in ("pulumi", "kubectl", "helm"):
        stand_in(bin_dir, tool)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("contexts:\n  - name: staging\n")
    env = env_with(bin_dir, tmp_path, KUBECONFIG=str(kubeconfig), PULUMI_CONFIG_PASSPHRASE="x")
    assert_cli(run_cli_process("doctor", "onprem", env=env), 1, "kubeconfig context 'onprem-prod' not found")
    kubeconfig.write_text("contexts:\n  - name: staging\n  - name: onprem-prod\n")
    assert_cli(run_cli_process("doctor", "onprem", env=env), 0)


def test_file_backend_needs_a_passphrase(bin_dir, tmp_path):
    for tool in ("pulumi", "kubectl", "helm"):
        stand_in(bin_dir, tool)
    local = env_with(bin_dir, tmp_path, PULUMI_BACKEND_URL=f"file://{tmp_path}/state")
    assert_cli(run_cli_process("doctor", env=local), 1, "export PULUMI_CONFIG_PASSPHRASE")
    remote = env_with(bin_dir, tmp_path, PULUMI_BACKEND_URL="s3://state-bucket")
    assert_cli(run_cli_process("doctor", env=remote), 0, "backend s3://state-bucket")


def test_doctor_rejects_an_invalid_stack_before_checking(tmp_path, bin_dir):
    assert_cli(
        run_cli_process("doctor", "tests/stacks/broken/seldon-bsl.yaml", env=env_with(bin_dir, tmp_path)),
        1,
        "Business Source License",
    )


def test_real_binary_on_this_machine_is_found(tmp_path, bin_dir):
    """kubectl ships with this machine: the check runs the real binary, not a stand-in."""
    kubectl = next(
        (Path(p) / "kubectl" for p in os.environ["PATH"].split(os.pathsep) if (Path(p) / "kubectl").exists()), None
    )
    if kubectl is None:
        pytest.skip("kubectl is not installed on this machine")
    (bin_dir / "kubectl").symlink_to(kubectl)
    result = run_cli_process("doctor", "--json", env=env_with(bin_dir, tmp_path))
    assert '"name": "kubectl",\n    "ok": true' in result.output


def test_the_simulated_cluster_names_make_cluster_when_it_is_not_running(tmp_path):
    sim = load_stack_file("sim").target.model_copy(update={"kubeconfig": str(tmp_path / "kubeconfig")})
    assert plugin_of(sim).credential_problem(sim, {}, tmp_path).endswith("start it with `make cluster`")

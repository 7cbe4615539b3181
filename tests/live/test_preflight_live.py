"""Bad input to a real `pulumi up`: a clear error naming what is missing, and nothing created."""

from __future__ import annotations

import shutil

import pytest

from infra.clouds.existing import REQUIRED_APIS, missing_apis
from tests.live.harness import LiveStack


@pytest.fixture
def stack(cluster, tmp_path) -> LiveStack:
    live = LiveStack(cluster, tmp_path)
    live.init()
    return live


def refused(stack: LiveStack) -> str:
    stack.write_config()
    result = stack.pulumi("up", "--yes", "--skip-preview", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Traceback" not in output
    assert [r for r in stack.resources() if not r["type"].startswith("pulumi:")] == []  # nothing half created
    return output


def test_a_kubeconfig_that_points_nowhere_fails_before_anything_is_created(stack, tmp_path):
    kubeconfig = (stack.cluster.kubeconfig.read_text()).replace("https://127.0.0.1:", "https://127.0.0.1:1")
    (tmp_path / "nowhere").write_text(kubeconfig)
    stack.config["mlkit:target"]["kubeconfig"] = str(tmp_path / "nowhere")
    stack.write_config()
    output = refused(stack)
    assert "cannot be deployed" in output and "cannot reach the cluster of kubeconfig context 'mlkit-sim'" in output


def test_a_chart_missing_from_the_offline_source_is_named_before_anything_is_created(stack, tmp_path):
    charts = tmp_path / "incomplete-charts"
    shutil.copytree(stack.config["mlkit:charts"]["directory"], charts, symlinks=True)
    (charts / "seldon-core-operator").unlink()
    stack.config["mlkit:charts"]["directory"] = str(charts)
    stack.write_config()
    output = refused(stack)
    assert f"chart 'seldon-core-operator' not found ({charts}/seldon-core-operator/Chart.yaml is missing)" in output


def test_a_cluster_without_an_api_the_platform_needs_is_named(cluster):
    served = set(cluster.kubectl("api-versions").stdout.split())
    assert missing_apis(served, "the live cluster") == []  # the real API server serves them all
    assert set(REQUIRED_APIS) <= served
    without = served - {"networking.k8s.io/v1"}
    assert missing_apis(without, "context 'x'") == [
        "the cluster of context 'x' does not serve networking.k8s.io/v1, which the platform needs"
    ]

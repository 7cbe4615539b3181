"""Every third-party chart the kit installs, rendered by the real helm with the values the kit passes, for
every shipped stack, at the pinned versions (../shared/upstream-charts), then checked strictly: a dead or
misspelled values key that changes the output, a template that `fail`s, or an object the API server would
refuse fails here. Also KFP's manifests, rendered offline through the kit's mirror rewrite."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from infra import versions
from infra.config import ChartSource
from infra.sources import Sources, load_all
from mlkit_dev import manifests
from mlkit_dev.simcluster import BIN
from tests.charts.helm import helm
from tests.conftest import SHARED
from tests.infra.pulumi_mocks import unsecret
from tests.infra.test_clouds import STACKS, config_of
from tests.infra.test_platform import platform_of
from tests.live.harness import UPSTREAM, offline_sources

KUBECTL = BIN / "kubectl"
# What a cluster running the platform serves besides Kubernetes' own APIs (charts test for these).
API_VERSIONS = (
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1",
)
ALL_STACKS = [*STACKS, "sim"]


@cache
def releases_of(stack: str) -> list[dict]:
    return [unsecret(r.inputs) for r in platform_of(config_of(stack)).of_type("kubernetes:helm.sh/v3:Release")]


@cache
def crd_dir(tmp: Path) -> Path:
    """One folder with every CRD the rendered charts' custom resources need."""
    tmp.mkdir(parents=True, exist_ok=True)
    sources = [
        *(SHARED / "crds").glob("*.yaml"),
        *(UPSTREAM / "kube-prometheus-stack/charts/crds/crds").glob("*.yaml"),
        *(UPSTREAM / "spark-operator/crds").glob("*.yaml"),
    ]
    for source in sources:
        (tmp / source.name).write_text(yaml.safe_dump_all(load_all(source.read_text())))
    return tmp


def render(release: dict, tmp_path: Path, charts: Path) -> list[dict]:
    chart = charts / release["chart"]
    assert (yaml.safe_load((chart / "Chart.yaml").read_text()))["version"] == release["version"]
    args = ["template", release.get("name", release["chart"]), str(chart), "--namespace", release["namespace"]]
    args += ["--kube-version", f"{versions.KUBERNETES}.0", *(f"--api-versions={a}" for a in API_VERSIONS)]
    result = helm(*args, values=release["values"], tmp_path=tmp_path)
    assert result.returncode == 0, f"{release['chart']}: {result.stderr}"
    return load_all(result.stdout)


@pytest.fixture(scope="module", params=ALL_STACKS)
def rendered(request, offline_charts, tmp_path_factory) -> tuple[str, dict[str, list[dict]]]:
    """(stack, chart -> its rendered objects) for each stack's releases."""
    stack, tmp = request.param, tmp_path_factory.mktemp("values")
    return stack, {r["chart"]: render(r, tmp, offline_charts) for r in releases_of(stack)}


def test_every_third_party_chart_renders_strictly_valid_objects_with_the_kits_values(rendered, tmp_path_factory):
    stack, charts = rendered
    assert charts, stack
    for chart, objects in charts.items():
        assert objects, chart
        problems = manifests.validate_all(objects, crd_dir=crd_dir(tmp_path_factory.getbasetemp() / "crds"))
        assert problems == [], f"{stack} {chart}: {problems[:5]}"


def test_the_spark_chart_fails_without_the_podmonitor_api(tmp_path):
    """Why the Spark operator is released after kube-prometheus-stack: the chart refuses to render."""
    release = next(r for r in releases_of("onprem") if r["chart"] == "spark-operator")
    chart = str(UPSTREAM / "spark-operator")
    result = helm("template", "x", chart, "--kube-version", "1.34.0", values=release["values"], tmp_path=tmp_path)
    assert result.returncode != 0 and "PodMonitor" in result.stderr


def test_the_kits_values_keep_webhooks_only_where_pods_run(rendered):
    """A webhook served by a pod that never runs (simulated nodes) would refuse what it guards."""
    stack, charts = rendered
    pods_run = stack != "sim"
    for chart in ("spark-operator", "seldon-core-operator", "kube-prometheus-stack"):
        kinds = {o["kind"] for o in charts.get(chart, [])}
        webhooks = kinds & {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
        assert bool(webhooks) == pods_run or chart not in charts, (stack, chart, webhooks)


@pytest.fixture(scope="module")
def kfp_offline() -> Sources:
    kfp_only = {k: v for k, v in offline_sources(UPSTREAM).items() if k != "directory"}
    return Sources(ChartSource.model_validate(kfp_only))


def kustomize(directory: str) -> list[dict]:
    assert KUBECTL.is_file(), "kubectl is not built: run `scripts/cluster-tools.sh cluster`"
    result = subprocess.run([str(KUBECTL), "kustomize", directory], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return load_all(result.stdout)


def test_kfp_renders_offline_from_the_mirror_without_minio(kfp_offline, tmp_path):
    assert kfp_offline.problems({}, versions.KUBEFLOW_PIPELINES) == []
    cluster_scoped = kustomize(kfp_offline.kfp("cluster-scoped-resources", versions.KUBEFLOW_PIPELINES))
    install = kustomize(kfp_offline.kfp("env/platform-agnostic", versions.KUBEFLOW_PIPELINES))
    images = {
        c["image"]
        for o in install
        if o["kind"] in ("Deployment", "StatefulSet")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert any("seaweedfs" in i for i in images) and not any("minio" in i for i in images), images
    assert any("workflow-controller" in i for i in images)  # Argo came from the local mirror
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "kfp.yaml").write_text(
        yaml.safe_dump_all([o for o in cluster_scoped if o["kind"] == "CustomResourceDefinition"])
    )
    built_in = [
        o
        for o in install
        if "/" not in o["apiVersion"]
        or o["apiVersion"].split("/")[0].endswith("k8s.io")
        or o["apiVersion"] == "apps/v1"
    ]
    assert manifests.validate_all(built_in, crd_dir=crds) == []


def test_kfp_offline_source_names_a_remote_base_without_a_mirror():
    sources = Sources(
        ChartSource.model_validate({"kfpManifests": str(UPSTREAM / "kubeflow-pipelines-manifests-2.17.0")})
    )
    problems = sources.problems({}, versions.KUBEFLOW_PIPELINES)
    assert problems and all("no local mirror" in p for p in problems)
    assert any("third-party/argo/base/kustomization.yaml references https://github.com/argoproj" in p for p in problems)


def test_an_offline_chart_directory_names_the_missing_chart_and_a_wrong_version(tmp_path):
    (tmp_path / "spark-operator").mkdir()
    (tmp_path / "spark-operator" / "Chart.yaml").write_text("name: spark-operator\nversion: 2.2.0\n")
    sources = Sources(ChartSource(directory=str(tmp_path)))
    problems = sources.problems({"spark-operator": "2.3.0", "seldon-core-operator": "1.17.1"}, None)
    assert problems == [
        f"mlkit:charts.directory: chart 'seldon-core-operator' not found ({tmp_path}/seldon-core-operator/Chart.yaml is missing)",
        f"mlkit:charts.directory: chart 'spark-operator' at {tmp_path}/spark-operator is version '2.2.0'; the stack needs 2.3.0",
    ]
    assert (
        Sources(ChartSource(directory=str(UPSTREAM))).problems({"spark-operator": versions.SPARK_OPERATOR}, None) == []
    )

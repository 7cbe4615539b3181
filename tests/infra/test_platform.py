"""The platform layer under mocks, for all five stacks: pinned releases and the values that matter,
ordering, team workspaces and their isolation, and a schema check of every Kubernetes object."""

from __future__ import annotations

import json

import pytest

from infra import versions
from infra.components.platform import build_platform
from infra.config import Platform
from infra.stack import StackConfigError, parse_stack
from mlkit_dev import manifests
from tests.infra.pulumi_mocks import Recorder, deploy, provision, unsecret
from tests.infra.test_clouds import STACKS, config_of
from tests.infra.test_schema import stack_values

# What each target's nodes_ready names: every platform workload waits for these too (tests/infra/test_first_up.py).
NODES = {"mlkit-kind", "mlkit-aks", "mlkit-system", "mlkit-spark", "mlkit-gpu-a10g", "mlkit-gpu-l4", "mlkit-gput4"}


def platform_of(config) -> Recorder:
    def build(c):
        target = provision(c, "mlkit")
        build_platform("mlkit", c, target)
        target.complete()

    return deploy(config, build)


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    return request.param, platform_of(config_of(request.param))


def releases(mocks: Recorder) -> dict[str, dict]:
    return {r.inputs["chart"]: r.inputs for r in mocks.of_type("kubernetes:helm.sh/v3:Release")}


def manifest(recorded) -> dict:
    """The object a typed pulumi_kubernetes resource sends to the API server."""
    group_version, kind = recorded.type.removeprefix("kubernetes:").split(":")
    group, version = group_version.split("/")
    body = {k: v for k, v in unsecret(recorded.inputs).items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": version if group == "core" else f"{group}/{version}", "kind": kind, **body}


KIT_OBJECTS = (
    "kubernetes:core/",
    "kubernetes:apps/",
    "kubernetes:rbac.",
    "kubernetes:networking.",
    "kubernetes:storage.",
    "kubernetes:monitoring.",
)


def test_every_kubernetes_object_the_kit_writes_validates(stack):
    name, mocks = stack
    objects = [manifest(r) for r in mocks.resources if r.type.startswith(KIT_OBJECTS) and "Patch" not in r.type]
    assert len(objects) > 10
    assert manifests.validate_all(objects) == [], name


def test_the_schema_check_is_strict():
    bad = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "t"},
        "spec": {"hardd": {}},
    }
    assert any("hardd" in p for p in manifests.problems(bad))


def test_charts_are_pinned_to_the_versions_in_one_place(stack):
    _, mocks = stack
    found = releases(mocks)
    pins = {
        "spark-operator": versions.SPARK_OPERATOR,
        "seldon-core-operator": versions.SELDON_CORE,
        "kube-prometheus-stack": versions.KUBE_PROMETHEUS_STACK,
    }
    for chart, version in pins.items():
        assert found[chart]["version"] == version
        assert found[chart]["repositoryOpts"]["repo"] == versions.CHART_REPOS[chart]


def test_spark_operator_comes_after_the_podmonitor_crd_and_the_namespaces_it_watches(stack):
    """The chart `fail`s without the PodMonitor API, and needs its job namespaces to exist."""
    _, mocks = stack
    waits_for = mocks.depends_on["mlkit-spark-spark-operator"]
    assert "mlkit-monitoring-kube-prometheus-stack" in waits_for
    assert {f"mlkit-team-{t.name}-ns-{t.name}" for t in config_of(stack[0]).teams} <= waits_for
    values = releases(mocks)["spark-operator"]["values"]
    assert values["spark"]["jobNamespaces"] == [t.name for t in config_of(stack[0]).teams]


def test_spark_operator_without_monitoring_creates_no_podmonitor():
    config = config_of("onprem").model_copy(update={"platform": Platform(monitoring={"enabled": False})})
    mocks = platform_of(config)
    values = releases(mocks)["spark-operator"]["values"]
    assert values["prometheus"]["podMonitor"]["create"] is False
    assert "kube-prometheus-stack" not in releases(mocks)


def test_seldon_values_are_keys_chart_1_17_1_has(stack):
    values = releases(stack[1])["seldon-core-operator"]["values"]
    assert "executor" not in values  # `executor.enabled` was removed in 1.6; a dead key is silently ignored
    assert values["managerCreateResources"] is False  # the chart creates the webhook where pods run


def test_monitoring_selects_every_monitor_and_loads_labelled_dashboards(stack):
    values = releases(stack[1])["kube-prometheus-stack"]["values"]
    spec = values["prometheus"]["prometheusSpec"]
    assert all(
        spec[f"{k}SelectorNilUsesHelmValues"] is False for k in ("serviceMonitor", "podMonitor", "rule", "probe")
    )
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True and (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")


def test_seldon_and_spark_metrics_are_scraped_after_the_crds_exist(stack):
    _, mocks = stack
    monitors = {
        r.inputs["metadata"]["name"]: r for r in mocks.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    }
    assert set(monitors) == {"seldon-models", "spark-drivers"}
    for monitor in monitors.values():
        assert mocks.depends_on[monitor.name] - NODES == {"mlkit-monitoring-kube-prometheus-stack"}
    # Seldon's operator names the model container's metrics port `metrics` and serves it at /prometheus
    # (PREDICTIVE_UNIT_METRICS_ENDPOINT); the serving tests run the wrapper the same way.
    seldon = monitors["seldon-models"].inputs["spec"]
    assert seldon["podMetricsEndpoints"] == [{"port": "metrics", "path": "/prometheus"}]
    assert seldon["selector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "seldon-core"}


def test_pipelines_install_from_pinned_upstream_manifests_in_order(stack):
    _, mocks = stack
    directories = {r.name: r.inputs["directory"] for r in mocks.of_type("kubernetes:kustomize/v2:Directory")}
    assert directories["mlkit-pipelines-cluster-scoped"].endswith(
        f"cluster-scoped-resources?ref={versions.KUBEFLOW_PIPELINES}"
    )
    assert directories["mlkit-pipelines-install"].endswith(f"env/platform-agnostic?ref={versions.KUBEFLOW_PIPELINES}")
    assert mocks.depends_on["mlkit-pipelines-install"] - NODES == {"mlkit-pipelines-cluster-scoped"}


@pytest.mark.parametrize(
    ("name", "root"),
    [
        ("aws", "s3://acme-mlkit-prod-eu-west-1/pipelines"),
        ("gcp", "gs://acme-mlkit-prod-europe-west4/pipelines"),
        ("azure", "abfss://platform@acmemlkitprod.dfs.core.windows.net/pipelines"),
    ],
)
def test_cloud_pipeline_root_is_the_platform_bucket_through_workload_identity(name, root):
    mocks = platform_of(config_of(name))
    patch = mocks.one("kubernetes:core/v1:ConfigMapPatch").inputs
    assert (patch["metadata"]["name"], patch["metadata"]["namespace"], patch["data"]["defaultPipelineRoot"]) == (
        "kfp-launcher",
        "kubeflow",
        root,
    )
    # KFP's own manifests create the runner account: it is patched with the identity, never created
    # again (a second create fails the first `pulumi up` with AlreadyExists).
    assert not [
        r
        for r in mocks.of_type("kubernetes:core/v1:ServiceAccount")
        if r.inputs["metadata"]["name"] == "pipeline-runner"
    ]
    runner = mocks.one("kubernetes:core/v1:ServiceAccountPatch")
    assert runner.inputs["metadata"]["name"] == "pipeline-runner"
    assert runner.inputs["metadata"]["annotations"]  # a cloud identity, not keys
    assert "mlkit-pipelines-install" in mocks.depends_on[runner.name]
    assert not [
        s
        for s in mocks.of_type("kubernetes:core/v1:Secret")
        if s.inputs["metadata"]["name"] == "pipeline-runner-object-store"
    ]


def test_kind_keeps_the_pipelines_own_store():
    assert platform_of(config_of("local")).of_type("kubernetes:core/v1:ConfigMapPatch") == []


@pytest.mark.parametrize(
    ("name", "expected"), [("aws", True), ("azure", True), ("onprem", True), ("gcp", False), ("local", False)]
)
def test_gpu_plugin_only_where_the_target_does_not_manage_it(name, expected):
    plugin = [
        r
        for r in platform_of(config_of(name)).of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["chart"] == "nvidia-device-plugin"
    ]
    assert bool(plugin) == expected
    if plugin:
        values = plugin[0].inputs["values"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
        term = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]
        assert term["matchExpressions"] == [{"key": "mlkit.io/gpu", "operator": "Exists"}]
        assert plugin[0].inputs["version"] == versions.NVIDIA_DEVICE_PLUGIN


def test_seldon_newer_than_apache_is_deployed_only_with_the_licence_flag():
    values = stack_values("aws")
    values["platform"] = {"seldonCore": {"version": "1.18.2"}}
    with pytest.raises(StackConfigError, match=r"Business Source License 1\.1"):
        parse_stack(values, "aws", decrypted=True)
    values["platform"]["seldonCore"]["acceptLicense"] = "BSL-1.1"
    assert (
        releases(platform_of(parse_stack(values, "aws", decrypted=True)))["seldon-core-operator"]["version"] == "1.18.2"
    )


def test_switched_off_components_are_not_deployed():
    values = stack_values("aws")
    values["platform"] = {
        name: {"enabled": False}
        for name in ("sparkOperator", "kubeflowPipelines", "seldonCore", "mlflow", "monitoring", "gpuPlugin")
    }
    mocks = platform_of(parse_stack(values, "aws", decrypted=True))
    assert [r.inputs["chart"] for r in mocks.of_type("kubernetes:helm.sh/v3:Release")] == ["cluster-autoscaler"]
    assert mocks.of_type("kubernetes:kustomize/v2:Directory") == []


def test_mlflow_keeps_artifacts_in_the_bucket_and_runs_in_cluster_postgres_by_default(stack):
    name, mocks = stack
    server = next(
        r for r in mocks.of_type("kubernetes:apps/v1:Deployment") if r.inputs["metadata"]["name"] == "mlflow"
    ).inputs
    container = server["spec"]["template"]["spec"]["containers"][0]
    destination = container["args"][container["args"].index("--artifacts-destination") + 1]
    assert destination.endswith("/mlflow") and "--serve-artifacts" in container["args"]
    registry = config_of(name).images.registry
    assert container["image"] == f"{registry}/{versions.MLFLOW_IMAGE}:{versions.KIT_IMAGE_TAG}"
    assert "example" not in container["image"]  # no placeholder registry nobody publishes to
    # MLflow 3 answers 403 to a Host it does not allow: every in-cluster name clients use is allowed.
    hosts = container["args"][container["args"].index("--allowed-hosts") + 1].split(",")
    assert {"mlflow.mlflow.svc.cluster.local:5000", "mlflow.mlflow:5000", "mlflow:5000"} <= set(hosts)
    assert [r.inputs["metadata"]["name"] for r in mocks.of_type("kubernetes:apps/v1:StatefulSet")] == [
        "mlflow-postgres"
    ]
    keys = [
        s for s in mocks.of_type("kubernetes:core/v1:Secret") if s.inputs["metadata"]["name"] == "mlflow-object-store"
    ]
    assert bool(keys) == (name in ("local", "onprem"))  # static keys only where there is no cloud identity


# --- team workspaces -----------------------------------------------------------------------------------


def team_objects(mocks: Recorder, kind: str, namespace: str) -> list[dict]:
    return [r.inputs for r in mocks.of_type(kind) if r.inputs.get("metadata", {}).get("namespace") == namespace]


def test_each_team_gets_its_quota_with_gpus_and_limits(stack):
    name, mocks = stack
    for team in config_of(name).teams:
        quota = team_objects(mocks, "kubernetes:core/v1:ResourceQuota", team.name)[0]["spec"]["hard"]
        assert quota["requests.nvidia.com/gpu"] == str(team.quotas.gpu)
        assert (quota["requests.cpu"], quota["requests.memory"]) == (team.quotas.cpu, team.quotas.memory)
        assert team_objects(mocks, "kubernetes:core/v1:LimitRange", team.name)


def test_each_team_is_default_deny_with_named_openings(stack):
    name, mocks = stack
    for team in config_of(name).teams:
        policies = {
            p["metadata"]["name"]: p["spec"]
            for p in team_objects(mocks, "kubernetes:networking.k8s.io/v1:NetworkPolicy", team.name)
        }
        assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert set(policies) == {
            "default-deny",
            "same-namespace",
            "dns",
            "platform-services",
            "https-out",
            "from-platform",
            *(["target-identity"] if name == "gcp" else []),  # GKE's metadata server: tests/infra/test_first_up.py
        }
        # No policy lets in pods of another team's namespace.
        allowed = json.dumps(policies["from-platform"])
        assert all(other.name not in allowed for other in config_of(name).teams)


def test_team_members_edit_only_their_namespace(stack):
    name, mocks = stack
    for team in config_of(name).teams:
        bindings = [
            b
            for b in team_objects(mocks, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", team.name)
            if b["metadata"]["name"] == "team-edit"
        ]
        assert bindings[0]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "edit",
        }
        assert {s["name"] for s in bindings[0]["subjects"]} == set(team.groups) | set(team.members)
    assert not mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")


def test_a_second_team_cannot_reach_the_first_teams_prefix():
    """On AWS, read the IAM policies the cloud layer wrote for each team's service accounts."""
    mocks = platform_of(config_of("aws"))
    policies = {r.name: json.loads(r.inputs["policy"]) for r in mocks.of_type("aws:iam/rolePolicy:RolePolicy")}
    fraud = [p for key, p in policies.items() if key.startswith("mlkit-fraud-")]
    churn = [p for key, p in policies.items() if key.startswith("mlkit-churn-")]
    assert len(fraud) == len(churn) == 2  # spark and ml
    for policy in fraud:
        objects = next(s for s in policy["Statement"] if s["Sid"] == "ObjectsUnderThePrefix")
        assert objects["Resource"] == "arn:aws:s3:::acme-mlkit-prod-eu-west-1/teams/fraud/*"
        assert "teams/churn" not in json.dumps(policy)


def test_removing_a_team_from_config_removes_its_workspace():
    values = stack_values("aws")
    both = {r.name for r in platform_of(parse_stack(values, "aws", decrypted=True)).resources}
    values["teams"] = [t for t in values["teams"] if t["name"] != "fraud"]
    one = {r.name for r in platform_of(parse_stack(values, "aws", decrypted=True)).resources}
    gone = both - one
    assert gone and all("fraud" in name for name in gone)
    assert not {n for n in one if "fraud" in n}


def test_every_namespace_the_kit_creates_states_its_pod_security_level(stack):
    # An unlabelled namespace gets the cluster's default, usually privileged, silently (kind's store did).
    name, mocks = stack
    namespaces = mocks.of_type("kubernetes:core/v1:Namespace")
    assert len(namespaces) >= 5, name
    for namespace in namespaces:
        labels = namespace.inputs["metadata"].get("labels") or {}
        level = labels.get("pod-security.kubernetes.io/enforce")
        assert level in ("privileged", "baseline", "restricted"), (name, namespace.inputs["metadata"]["name"])

"""charts/model-serving: lints, renders and validates against the real SeldonDeployment and PodMonitor CRDs."""

import pytest

from mlkit_dev.manifests import validate_all
from tests.charts.helm import PROFILE, REPO, helm, render
from tests.charts.test_feature_job_chart import restricted_problems

CHART = REPO / "charts" / "model-serving"
VALUES = {"profile": PROFILE}


def by_kind(documents):
    return {d["kind"]: d for d in documents}


def test_chart_lints(tmp_path):
    result = helm("lint", "--strict", str(CHART), "--values", str(CHART / "ci" / "lint-values.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_renders_a_valid_seldon_deployment_and_pod_monitor(tmp_path):
    documents = render("model-serving", {**VALUES, "monitoring": {"podMonitor": True}}, tmp_path)
    assert sorted(d["kind"] for d in documents) == ["PodMonitor", "SeldonDeployment"]
    assert validate_all(documents) == []


def test_autoscaling_resources_security_and_probes(tmp_path):
    values = {**VALUES, "autoscaling": {"minReplicas": 3, "maxReplicas": 12, "targetCPUUtilization": 60}}
    sdep = by_kind(render("model-serving", values, tmp_path))["SeldonDeployment"]["spec"]["predictors"][0]
    component = sdep["componentSpecs"][0]
    assert component["hpaSpec"]["minReplicas"] == 3 and component["hpaSpec"]["maxReplicas"] == 12
    assert component["hpaSpec"]["metrics"][0]["resource"] == {"name": "cpu", "targetAverageUtilization": 60}
    pod = component["spec"]
    assert (
        pod["securityContext"]["runAsNonRoot"] is True
        and pod["serviceAccountName"] == PROFILE["serviceAccounts"]["models"]
    )
    container = pod["containers"][0]
    assert container["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "512Mi",
        "ephemeral-storage": "256Mi",
    } and container["resources"]["limits"] == {"memory": "1Gi", "ephemeral-storage": "1Gi"}
    assert (
        container["securityContext"]["allowPrivilegeEscalation"] is False
        and container["securityContext"]["readOnlyRootFilesystem"] is True
    )
    # Readiness runs a prediction (workloads/serving/model.py health_status); liveness only a ping.
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/status"
    assert container["readinessProbe"]["timeoutSeconds"] <= 2
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/ping"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GRPC_WORKERS"] == "0" and env["MLKIT_MAX_REQUEST_BYTES"] == "8388608"
    assert pod["terminationGracePeriodSeconds"] > int(env["MLKIT_STOP_SECONDS"])
    assert env["MLKIT_MODEL_URI"] == "models:/churn-classifier@champion"
    assert env["MLKIT_REQUEST_LOG"] == f"{PROFILE['requestLogs']}/release"  # the profile's, per release
    assert env["MLFLOW_TRACKING_URI"] == PROFILE["mlflow"]["trackingUri"]
    assert sdep["graph"] == {"name": "model", "type": "MODEL", "endpoint": {"type": "REST"}}


def test_the_pod_monitor_scrapes_the_model_metrics_port_where_asked(tmp_path):
    # Off by default: the platform's seldon-models PodMonitor scrapes the same port; two would duplicate series.
    assert "PodMonitor" not in {d["kind"] for d in render("model-serving", VALUES, tmp_path)}
    monitor = by_kind(render("model-serving", {**VALUES, "monitoring": {"podMonitor": True}}, tmp_path))["PodMonitor"][
        "spec"
    ]
    assert monitor["podMetricsEndpoints"] == [{"port": "metrics", "path": "/prometheus"}]
    assert monitor["selector"]["matchLabels"]["app.kubernetes.io/name"] == "model-serving"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2, "targetCPUUtilization": 70}},
            "autoscaling.maxReplicas (2) must not be below autoscaling.minReplicas (5)",
        ),
        ({"autoscaling": {"minReplicas": 0, "maxReplicas": 2, "targetCPUUtilization": 70}}, "minReplicas"),
        ({"modelUri": "churn.onnx"}, "modelUri"),
        ({"replica": 2}, "replica"),
    ],
)
def test_wrong_values_fail_at_install(tmp_path, values, message):
    result = helm("template", "r", str(CHART), values={**VALUES, **values}, tmp_path=tmp_path)
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"requestLog": "s3://another-bucket/teams/example/request-logs"}, "requestLog"),
        ({"requestLog": "../fraud/logs"}, "requestLog"),
        ({"modelUri": "s3://example-bucket/teams/fraud/models/churn/3"}, "modelUri"),
    ],
)
def test_a_typed_path_outside_the_team_root_fails_naming_the_root(tmp_path, values, key):
    result = helm("template", "r", str(CHART), values={**VALUES, **values}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert key in result.stderr and f"lies outside the team root {PROFILE['root']}" in result.stderr, result.stderr


def env_of(documents) -> dict[str, str]:
    [container] = by_kind(documents)["SeldonDeployment"]["spec"]["predictors"][0]["componentSpecs"][0]["spec"][
        "containers"
    ]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_store_paths_inside_the_root_are_taken_and_an_empty_request_log_is_off(tmp_path):
    model = f"{PROFILE['models']}/churn-classifier/3"
    env = env_of(render("model-serving", {**VALUES, "modelUri": model, "requestLog": "serving/requests"}, tmp_path))
    assert env["MLKIT_MODEL_URI"] == model and env["MLKIT_REQUEST_LOG"] == f"{PROFILE['root']}/serving/requests"
    assert env_of(render("model-serving", {**VALUES, "requestLog": ""}, tmp_path))["MLKIT_REQUEST_LOG"] == ""


def test_a_registry_model_without_mlflow_fails_at_install(tmp_path):
    profile = {**PROFILE, "mlflow": {**PROFILE["mlflow"], "trackingUri": None}}
    result = helm("template", "r", str(CHART), values={"profile": profile}, tmp_path=tmp_path)
    assert result.returncode != 0 and "the team profile has no MLflow (trackingUri null)" in result.stderr


def test_without_a_profile_the_install_fails_naming_the_configmap(tmp_path):
    result = helm("template", "r", str(CHART), "-n", "churn", values={}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert (
        'no team profile: ConfigMap mlkit-team-profile (key profile.json) is not in namespace "churn"' in result.stderr
    )


def test_the_model_pod_passes_pod_security_restricted(tmp_path):
    sdep = by_kind(render("model-serving", VALUES, tmp_path))["SeldonDeployment"]
    pod = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert restricted_problems(pod) == []


def test_the_model_pod_logs_in_to_mlflow_as_its_team(tmp_path):
    """The platform writes the team's MLflow user into the team's namespace (infra/components/mlflow.py)."""
    sdep = by_kind(render("model-serving", VALUES, tmp_path))["SeldonDeployment"]
    [container] = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"]
    refs = [source["secretRef"] for source in container["envFrom"]]
    # Optional: a model pinned to the object store starts without MLflow.
    assert {"name": PROFILE["mlflow"]["credentialsSecret"], "optional": True} in refs
    assert {"name": PROFILE["storeKeysSecret"]["models"]} in refs

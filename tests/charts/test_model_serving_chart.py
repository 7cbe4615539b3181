"""charts/model-serving: lints, renders and validates against the real SeldonDeployment and PodMonitor CRDs."""

import pytest

from infra.manifests import validate_all
from tests.charts.helm import REPO, helm, render
from tests.charts.test_feature_job_chart import restricted_problems

CHART = REPO / "charts" / "model-serving"


def by_kind(documents):
    return {d["kind"]: d for d in documents}


def test_chart_lints(tmp_path):
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_renders_a_valid_seldon_deployment_and_pod_monitor(tmp_path):
    documents = render("model-serving", {"monitoring": {"podMonitor": True}}, tmp_path)
    assert sorted(d["kind"] for d in documents) == ["PodMonitor", "SeldonDeployment"]
    assert validate_all(documents) == []


def test_autoscaling_resources_security_and_probes(tmp_path):
    values = {"autoscaling": {"minReplicas": 3, "maxReplicas": 12, "targetCPUUtilization": 60}}
    sdep = by_kind(render("model-serving", values, tmp_path))["SeldonDeployment"]["spec"]["predictors"][0]
    component = sdep["componentSpecs"][0]
    assert component["hpaSpec"]["minReplicas"] == 3 and component["hpaSpec"]["maxReplicas"] == 12
    assert component["hpaSpec"]["metrics"][0]["resource"] == {"name": "cpu", "targetAverageUtilization": 60}
    pod = component["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["serviceAccountName"] == "ml"
    container = pod["containers"][0]
    assert (
        container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
        and container["resources"]["limits"]["memory"] == "1Gi"
    )
    assert (
        container["securityContext"]["allowPrivilegeEscalation"] is False
        and container["securityContext"]["readOnlyRootFilesystem"] is True
    )
    # Readiness runs a prediction (workloads/serving/model.py health_status); liveness only a ping.
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/status"
    assert container["readinessProbe"]["timeoutSeconds"] <= 2
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/ping"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GRPC_WORKERS"] == "0" and env["MLKIT_MAX_REQUEST_BYTES"] == "8388608"
    assert pod["terminationGracePeriodSeconds"] > int(env["MLKIT_STOP_SECONDS"])
    assert env["MLKIT_MODEL_URI"] == "models:/churn-classifier@champion" and env["MLKIT_REQUEST_LOG"].startswith(
        "s3://"
    )
    assert sdep["graph"] == {"name": "model", "type": "MODEL", "endpoint": {"type": "REST"}}


def test_the_pod_monitor_scrapes_the_model_metrics_port_where_asked(tmp_path):
    # Off by default: the platform's seldon-models PodMonitor scrapes the same port; two would duplicate series.
    assert "PodMonitor" not in {d["kind"] for d in render("model-serving", {}, tmp_path)}
    monitor = by_kind(render("model-serving", {"monitoring": {"podMonitor": True}}, tmp_path))["PodMonitor"]["spec"]
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
    result = helm("template", "r", str(CHART), values=values, tmp_path=tmp_path)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_model_pod_passes_pod_security_restricted(tmp_path):
    sdep = by_kind(render("model-serving", {}, tmp_path))["SeldonDeployment"]
    pod = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert restricted_problems(pod) == []


def test_the_model_pod_logs_in_to_mlflow_as_its_team(tmp_path):
    """The platform writes the team's MLflow user into the team's namespace (infra/components/mlflow.py)."""
    from workloads.mlflow import auth

    sdep = by_kind(render("model-serving", {}, tmp_path))["SeldonDeployment"]
    [container] = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"]
    refs = [source["secretRef"] for source in container["envFrom"]]
    # Optional: a model pinned to the object store starts without MLflow.
    assert {"name": auth.CREDENTIALS_SECRET, "optional": True} in refs

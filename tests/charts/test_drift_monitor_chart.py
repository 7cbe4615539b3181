"""charts/drift-monitor: lints, renders and validates strictly (Kubernetes' schemas, the real AlertmanagerConfig and
ServiceMonitor CRDs), renders from each shipped stack's profile, and refuses what a user types outside the team root."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from infra import versions
from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_MOUNT
from mlkit_dev.manifests import problems, validate_all
from tests.charts.helm import PROFILE, REPO, helm, render
from tests.charts.test_feature_job_chart import restricted_problems
from tests.charts.test_team_profile_charts import IDENTITY_LABELS, profiles  # noqa: F401 - the per-stack fixture
from tests.conftest import SHARED
from tests.infra.test_clouds import config_of

CHART = REPO / "charts" / "drift-monitor"
PUSHGATEWAY = "http://pushgateway.monitoring.svc.cluster.local:9091"
VALUES = {"profile": PROFILE, "drift": {"pushgateway": PUSHGATEWAY}}
# kube-prometheus-stack 79.5.0's CRDs (prometheus-operator v0.86.2), the chart the platform installs.
OPERATOR_CRDS = SHARED / "upstream-charts" / "kube-prometheus-stack" / "charts" / "crds" / "crds"
KINDS = [
    "AlertmanagerConfig",
    "ConfigMap",
    "CronJob",
    "Deployment",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
    "ServiceMonitor",
]


class _CrdLoader(yaml.SafeLoader):
    """The operator's CRDs list `=` as an enum value (a matcher's matchType), which PyYAML reads as its
    `tag:yaml.org,2002:value` and refuses; it is the string "="."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@pytest.fixture(scope="module")
def crd_dir(tmp_path_factory) -> Path:
    """../shared/crds plus the operator's AlertmanagerConfig CRD, rewritten as JSON (which YAML readers take as is)."""
    directory = tmp_path_factory.mktemp("crds")
    for crd in (SHARED / "crds").glob("*.yaml"):
        (directory / crd.name).symlink_to(crd)
    source = OPERATOR_CRDS / "crd-alertmanagerconfigs.yaml"
    (directory / source.name).write_text(json.dumps(yaml.load(source.read_text(), Loader=_CrdLoader)))
    return directory


def kinds(documents: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in documents}


def named(documents: list[dict], kind: str, suffix: str) -> dict:
    [document] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return document


def job_template(documents: list[dict]) -> dict:
    return json.loads(named(documents, "ConfigMap", "-retrain-job")["data"]["job.json"])


def pods(documents: list[dict]) -> dict[str, dict]:
    """The pod specs the chart makes: the drift job's, the trigger's and the retraining Job's."""
    by_kind = kinds(documents)
    return {
        "drift": by_kind["CronJob"]["spec"]["jobTemplate"]["spec"]["template"],
        "trigger": by_kind["Deployment"]["spec"]["template"],
        "retrain": job_template(documents)["spec"]["template"],
    }


def test_chart_lints():
    result = helm("lint", "--strict", str(CHART), "--values", str(CHART / "ci" / "lint-values.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_renders_valid_manifests_against_kubernetes_and_the_operator_crds(tmp_path, crd_dir):
    documents = render("drift-monitor", VALUES, tmp_path)
    assert sorted(d["kind"] for d in documents) == KINDS
    assert validate_all(documents, crd_dir=crd_dir) == []
    # The Job template the trigger submits is a valid Job once named (the trigger adds name, command, config).
    template = job_template(documents)
    template["metadata"]["name"] = "retrain-x"
    assert problems(template, crd_dir=crd_dir) == []
    # Strict: a misspelled field of the custom resource is caught, not passed.
    alerting = kinds(documents)["AlertmanagerConfig"]
    alerting["spec"]["route"]["groupby"] = alerting["spec"]["route"].pop("groupBy")
    assert any("groupby" in p for p in problems(alerting, crd_dir=crd_dir))


def test_the_drift_job_runs_the_drift_cli_with_its_flags_from_one_values_block(tmp_path):
    cron = kinds(render("drift-monitor", VALUES, tmp_path))["CronJob"]
    assert cron["spec"]["schedule"] == "*/15 * * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    # The request log is the one charts/model-serving writes by default for a release named `model`.
    assert container["command"] == [
        *("python", "-m", "workloads.monitoring", "drift"),
        *("--model-uri", "models:/churn-classifier@champion"),
        *("--request-log", f"{PROFILE['requestLogs']}/model"),
        *("--window", "1h", "--threshold", "0.2", "--pushgateway", PUSHGATEWAY),
    ]
    drift = {
        "pushgateway": PUSHGATEWAY,
        "window": "30m",
        "threshold": 0.3,
        "requestLog": "serving/requests",
        "modelUri": f"{PROFILE['models']}/churn-classifier/3",
    }
    [container] = kinds(render("drift-monitor", {**VALUES, "drift": drift}, tmp_path))["CronJob"]["spec"][
        "jobTemplate"
    ]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[command.index("--request-log") + 1] == f"{PROFILE['root']}/serving/requests"
    assert command[command.index("--model-uri") + 1] == drift["modelUri"]
    assert command[command.index("--window") + 1] == "30m" and command[command.index("--threshold") + 1] == "0.3"


def test_the_trigger_serves_the_webhook_as_its_own_account_with_jobs_in_its_namespace_only(tmp_path):
    documents = render("drift-monitor", VALUES, tmp_path)
    by_kind = kinds(documents)
    account = by_kind["ServiceAccount"]["metadata"]["name"]
    assert account == "release-trigger" != PROFILE["serviceAccounts"]["models"]
    role, binding = by_kind["Role"], by_kind["RoleBinding"]
    assert role["rules"] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "patch", "delete"]},
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "default"}]
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    [container] = pod["containers"]
    assert container["command"][:4] == ["python", "-m", "workloads.monitoring.trigger", "serve"]
    command = container["command"]
    assert (
        command[command.index("--launcher") + 1] == "job"
        and command[command.index("--model") + 1] == "churn-classifier"
    )
    assert command[command.index("--host") + 1] == "0.0.0.0"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert command[command.index("--token-file") + 1] == f"{mounts['token']}/token"
    assert command[command.index("--job-template") + 1] == f"{mounts['retrain-job']}/job.json"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["token"]["secret"]["secretName"] == "release-trigger-token"
    assert volumes["retrain-job"]["configMap"]["name"] == "release-retrain-job"
    service = by_kind["Service"]
    assert service["spec"]["selector"].items() <= pod_labels(by_kind["Deployment"]).items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
    monitor = by_kind["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"] == service["spec"]["selector"]
    assert monitor["endpoints"] == [{"port": "http", "path": "/metrics"}]


def pod_labels(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def render_failure(tmp_path, values: dict) -> str:
    result = helm("template", "r", str(CHART), values=values, tmp_path=tmp_path)
    assert result.returncode != 0
    return result.stderr


def test_the_kfp_launcher_starts_pipeline_runs_and_drops_the_job_permission(tmp_path):
    values = {**VALUES, "trigger": {"launcher": "kfp", "kfp": {"serviceAccount": "churn-pipelines"}}}
    by_kind = kinds(render("drift-monitor", values, tmp_path))
    [container] = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[command.index("--launcher") + 1] == "kfp"
    assert command[command.index("--kfp-host") + 1] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    assert command[command.index("--kfp-service-account") + 1] == "churn-pipelines"
    # Claims stay ConfigMaps in the team namespace; no Job is created, so the Role grants none.
    assert by_kind["Role"]["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "patch", "delete"]}
    ]
    missing = render_failure(tmp_path, {**values, "trigger": {"launcher": "kfp", "kfp": {"host": ""}}})
    assert "trigger.kfp.host is required with trigger.launcher kfp" in missing


def test_alertmanager_routes_this_models_retrain_alerts_to_the_trigger_with_the_secrets_token(tmp_path):
    values = with_value("model", "fraud-scorer")
    values["trigger"] |= {"port": 9090, "tokenSecret": {"name": "hook", "key": "t"}}
    result = helm("template", "release", str(CHART), "-n", "churn", values=values, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    spec = kinds(documents)["AlertmanagerConfig"]["spec"]
    route = spec["route"]
    assert route["receiver"] == "retrain" and route["groupBy"] == ["namespace", "registered_model"]
    assert route["matchers"] == [
        {"name": "mlkit_action", "value": "retrain", "matchType": "="},
        {"name": "registered_model", "value": "fraud-scorer", "matchType": "="},
    ]
    [receiver] = spec["receivers"]
    [webhook] = receiver["webhookConfigs"]
    assert receiver["name"] == "retrain"
    assert webhook["url"] == "http://release-trigger.churn.svc.cluster.local:9090/alerts"
    assert webhook["sendResolved"] is True and webhook["maxAlerts"] == 0
    assert webhook["httpConfig"] == {"authorization": {"type": "Bearer", "credentials": {"name": "hook", "key": "t"}}}
    # The receiver reads the same Secret and key; the chart creates no Secret and holds no token.
    pod = kinds(documents)["Deployment"]["spec"]["template"]["spec"]
    token = next(v for v in pod["volumes"] if v["name"] == "token")["secret"]
    assert token == {"secretName": "hook", "items": [{"key": "t", "path": "t"}]}
    assert "Secret" not in {d["kind"] for d in documents}
    assert "/etc/mlkit/trigger-token/t" in pod["containers"][0]["command"]


def test_the_retraining_job_runs_the_training_image_as_the_team(tmp_path):
    documents = render("drift-monitor", VALUES, tmp_path)
    template = job_template(documents)
    assert template["spec"]["backoffLimit"] == 0 and template["spec"]["ttlSecondsAfterFinished"] == 604800
    pod = template["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == PROFILE["serviceAccounts"]["models"]
    [container] = pod["containers"]
    assert container["name"] == "train" and "command" not in container  # the trigger writes the command
    assert container["image"] == "ghcr.io/example/mlkit-training:0.1.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == PROFILE["mlflow"]["trackingUri"] and env["MLKIT_TEAM"] == PROFILE["team"]
    refs = [source["secretRef"] for source in container["envFrom"]]
    assert refs == [{"name": PROFILE["storeKeysSecret"]["models"]}, {"name": "mlflow-credentials", "optional": True}]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi", "ephemeral-storage": "1Gi"},
        "limits": {"memory": "8Gi", "ephemeral-storage": "10Gi"},
    }
    assert "tolerations" not in pod
    # With GPUs: the profile's resource name, tolerations and node selector.
    gpu = pod_of(render("drift-monitor", with_value("retrain.gpu", 1), tmp_path))
    limits = {"memory": "8Gi", "ephemeral-storage": "10Gi", PROFILE["gpu"]["resourceName"]: 1}
    assert gpu["containers"][0]["resources"]["limits"] == limits
    assert gpu["tolerations"] == PROFILE["gpu"]["tolerations"]


def pod_of(documents: list[dict]) -> dict:
    return job_template(documents)["spec"]["template"]["spec"]


def test_every_pod_passes_pod_security_restricted_and_has_limits(tmp_path):
    for name, pod in pods(render("drift-monitor", VALUES, tmp_path)).items():
        assert restricted_problems(pod["spec"]) == [], name
        for container in pod["spec"]["containers"]:
            assert container["resources"]["limits"]["memory"], name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name


def with_value(path: str, value) -> dict:
    """VALUES over the chart's defaults, with the dotted ``path`` set to ``value``."""
    values = {**yaml.safe_load((CHART / "values.yaml").read_text()), **copy.deepcopy(VALUES)}
    values["drift"] = {**values["drift"], **VALUES["drift"]}
    *parents, leaf = path.split(".")
    node = values
    for key in parents:
        node = node[key]
    node[leaf] = value
    return values


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("drift.pushgateway", "", "no Pushgateway: the team profile names none"),
        ("model", "churn classifier", "model"),
        ("drift.window", "1 hour", "window"),
        ("drift.pushgatway", "http://x", "pushgatway"),
        ("trigger.tokenSecret.token", "s3cret", "token"),  # a token never goes into values
        (
            "trigger.resources",
            {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": None},
            "limits",
        ),  # null drops it
        ("alerting.repeatInterval", "four hours", "repeatInterval"),
        ("retrain.gpu", -1, "gpu"),
        ("trigger.launcher", "argo", "launcher"),
    ],
)
def test_wrong_values_fail_at_install(tmp_path, path, value, message):
    result = helm("template", "r", str(CHART), values=with_value(path, value), tmp_path=tmp_path)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_pushgateway_defaults_to_the_profiles(tmp_path):
    profile = {**PROFILE, "pushgateway": "http://pushgateway.monitoring.svc:9091"}
    cron = kinds(render("drift-monitor", {"profile": profile}, tmp_path))["CronJob"]
    command = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--pushgateway") + 1] == profile["pushgateway"]


@pytest.mark.parametrize(
    ("drift", "key"),
    [
        ({"requestLog": "s3://another-bucket/teams/example/request-logs/model"}, "drift.requestLog"),
        ({"requestLog": "../fraud/request-logs/model"}, "drift.requestLog"),
        ({"modelUri": "s3://example-bucket/teams/fraud/models/churn/3"}, "drift.modelUri"),
    ],
)
def test_a_typed_path_outside_the_team_root_fails_naming_the_root(tmp_path, drift, key):
    values = {**VALUES, "drift": {"pushgateway": PUSHGATEWAY, **drift}}
    result = helm("template", "r", str(CHART), values=values, tmp_path=tmp_path)
    assert result.returncode != 0
    assert key in result.stderr and f"lies outside the team root {PROFILE['root']}" in result.stderr, result.stderr


def test_without_mlflow_or_a_profile_the_install_fails_saying_why(tmp_path):
    profile = {**PROFILE, "mlflow": {**PROFILE["mlflow"], "trackingUri": None}}
    result = helm("template", "r", str(CHART), values={**VALUES, "profile": profile}, tmp_path=tmp_path)
    assert result.returncode != 0 and "the team profile has no MLflow (trackingUri null)" in result.stderr
    result = helm("template", "r", str(CHART), "-n", "churn", values={"drift": VALUES["drift"]}, tmp_path=tmp_path)
    assert (
        'no team profile: ConfigMap mlkit-team-profile (key profile.json) is not in namespace "churn"' in result.stderr
    )


def test_renders_from_each_shipped_stacks_profile_alone(profiles, tmp_path, crd_dir):  # noqa: F811
    """Identity, store, MLflow and the Pushgateway come from the profile; every pod mounts the platform's ConfigMap
    and names the team it checks it against."""
    stack, published = profiles
    target = config_of(stack).target.type
    for team, profile in published.items():
        # The Pushgateway is the profile's where the platform publishes one (typed here only where it does not yet).
        values = {"profile": json.loads(profile.to_json())}
        if not profile.pushgateway:
            values["drift"] = {"pushgateway": PUSHGATEWAY}
        result = helm("template", "r", str(CHART), "-n", team, values=values, tmp_path=tmp_path)
        assert result.returncode == 0, (stack, team, result.stderr)
        documents = [d for d in yaml.safe_load_all(result.stdout) if d]
        assert validate_all(documents, crd_dir=crd_dir, kubernetes_version=versions.KUBERNETES) == []
        command = kinds(documents)["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
            "command"
        ]
        assert profile.contains(command[command.index("--request-log") + 1]), (stack, team, command)
        assert command[command.index("--pushgateway") + 1] == (profile.pushgateway or PUSHGATEWAY)
        want = IDENTITY_LABELS.get(target, {})
        for name, pod in pods(documents).items():
            spec, labels = pod["spec"], pod["metadata"]["labels"]
            identity = {k: v for k, v in labels.items() if not k.startswith(("app.kubernetes.io/", "helm.sh/"))}
            [container] = spec["containers"]
            env = {e["name"]: e for e in container["env"]}
            assert env["MLKIT_TEAM"]["value"] == profile.team
            assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            assert env["MLFLOW_TRACKING_URI"]["value"] == profile.mlflow.tracking_uri
            [volume] = [v for v in spec["volumes"] if v.get("configMap", {}).get("name") == PROFILE_CONFIGMAP]
            [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
            assert (mount["mountPath"], mount["readOnly"]) == (PROFILE_MOUNT.rpartition("/")[0], True)
            if name == "trigger":  # its own account, no cloud identity: it reaches only MLflow and the API server
                assert identity == {} and spec["serviceAccountName"] == "r-trigger"
            else:  # the team's models identity reads the request log, the reference and the feature store
                assert identity == want, (stack, name)
                assert spec["serviceAccountName"] == profile.service_accounts.models
                keys = profile.store_keys_secret.models
                assert ({"secretRef": {"name": keys}} in container["envFrom"]) == bool(keys), (stack, name)

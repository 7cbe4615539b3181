"""`pulumi up` of the whole platform, for real, on a live API server with kwok-simulated CPU and GPU nodes.

The real Pulumi CLI and Kubernetes provider apply the kit's program (stacks/Pulumi.sim.yaml, charts from the
offline source); every assertion reads the live API. What the simulation cannot show: no container runs
(kwok reports pods Running), so nothing here proves an image starts or a process serves.
The tests run in file order on one deployment; the last ones remove a team and destroy the stack.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from infra.versions import KIT_IMAGE_USER
from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_KEY, TeamProfile
from mlkit_dev.simcluster import BIN
from tests.charts.test_feature_job_chart import SPECS
from tests.live.harness import REPO, LiveStack

KIT_NAMESPACES = {
    "churn",
    "fraud",
    "monitoring",
    "spark-operator",
    "seldon-system",
    "kubeflow",
    "mlflow",
    "nvidia-device-plugin",
}
RELEASES = {"kube-prometheus-stack", "spark-operator", "seldon-core", "nvidia-device-plugin"}
PART_OF = "app.kubernetes.io/part-of=mlkit"


@pytest.fixture(scope="module")
def stack(cluster, tmp_path_factory) -> LiveStack:
    live = LiveStack(cluster, tmp_path_factory.mktemp("pulumi"))
    live.init()
    live.up()
    return live


def kubectl(stack: LiveStack, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return stack.cluster.kubectl(*args, stdin=stdin, check=check)


def objects(stack: LiveStack, kind: str, *args: str) -> list[dict]:
    return json.loads(kubectl(stack, "get", kind, "-o", "json", *args).stdout)["items"]


def helm(stack: LiveStack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "helm"), f"--kubeconfig={stack.cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_every_helm_release_is_deployed(stack):
    releases = {r["name"]: r for r in json.loads(helm(stack, "list", "-A", "-o", "json").stdout)}
    assert set(releases) == RELEASES
    assert {r["status"] for r in releases.values()} == {"deployed"}


def test_every_crd_is_established(stack):
    crds = objects(stack, "crd")
    names = {c["metadata"]["name"] for c in crds}
    for needed in (
        "sparkapplications.sparkoperator.k8s.io",
        "seldondeployments.machinelearning.seldon.io",
        "podmonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "workflows.argoproj.io",
    ):
        assert needed in names
    for crd in crds:
        established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}.get("Established")
        assert established == "True", crd["metadata"]["name"]


def test_every_platform_workload_is_available(stack):
    workloads = [*objects(stack, "deployments", "-A"), *objects(stack, "statefulsets", "-A")]
    workloads = [w for w in workloads if w["metadata"]["namespace"] in KIT_NAMESPACES]
    assert {w["metadata"]["namespace"] for w in workloads} >= {
        "kubeflow",
        "mlflow",
        "monitoring",
        "seldon-system",
        "spark-operator",
    }
    for workload in workloads:
        want = workload["spec"].get("replicas", 1)
        assert workload["status"].get("readyReplicas", 0) == want, workload["metadata"]["name"]
    daemonsets = [d for d in objects(stack, "daemonsets", "-A") if d["metadata"]["namespace"] in KIT_NAMESPACES]
    assert daemonsets
    for daemonset in daemonsets:
        status = daemonset["status"]
        # The plugin's MPS daemon selects nvidia.com/mps.capable nodes, none here: desired 0 is right for it.
        assert status.get("numberReady", 0) == status["desiredNumberScheduled"], daemonset["metadata"]["name"]


def test_the_gpu_device_plugin_runs_on_gpu_nodes_only(stack):
    gpu_nodes = {n["metadata"]["name"] for n in objects(stack, "nodes", "-l", "mlkit.io/gpu")}
    pods = objects(stack, "pods", "-n", "nvidia-device-plugin")
    assert pods and {p["spec"]["nodeName"] for p in pods} == gpu_nodes


def pod(name: str, namespace: str, gpus: int = 0, tolerate: bool = True) -> dict:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    spec = {
        # What Pod Security `restricted`, enforced in team namespaces, asks of every pod there.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": KIT_IMAGE_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "main",
                "image": "registry.example.internal/mlkit/train:0",
                "resources": resources,
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
    }
    if tolerate:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if gpus:
        spec["nodeSelector"] = {"mlkit.io/gpu": "t4"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def apply(stack: LiveStack, document: dict, check: bool = True) -> subprocess.CompletedProcess:
    return kubectl(stack, "apply", "-f", "-", stdin=yaml.safe_dump(document), check=check)


def wait_running(stack: LiveStack, namespace: str, name: str) -> dict:
    kubectl(stack, "wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")
    return json.loads(kubectl(stack, "get", "-n", namespace, "pod", name, "-o", "json").stdout)


def test_a_gpu_pod_lands_on_a_gpu_node_with_the_team_defaults(stack):
    apply(stack, pod("train", "churn", gpus=1))
    running = wait_running(stack, "churn", "train")
    assert running["spec"]["nodeName"].startswith("gpu-t4-")
    # The team's LimitRange filled in what the pod did not state, so the quota can count it.
    assert running["spec"]["containers"][0]["resources"]["requests"]["memory"] == "256Mi"
    kubectl(stack, "delete", "-n", "churn", "pod", "train", "--wait=false")


def test_a_pod_without_the_gpu_toleration_never_lands_on_a_gpu_node(stack):
    apply(stack, pod("untolerated", "churn", gpus=1, tolerate=False))
    kubectl(stack, "wait", "-n", "churn", "pod/untolerated", "--for=condition=PodScheduled=False", "--timeout=30s")
    kubectl(stack, "delete", "-n", "churn", "pod", "untolerated", "--wait=false")


def test_the_real_admission_refuses_a_pod_over_the_teams_gpu_quota(stack):
    refused = apply(stack, pod("greedy", "fraud", gpus=1), check=False)  # fraud's GPU quota is 0
    assert refused.returncode != 0
    assert "exceeded quota: team-quota" in refused.stderr and "requests.nvidia.com/gpu" in refused.stderr
    over = apply(stack, pod("greedy", "churn", gpus=3), check=False)  # churn may use 2
    assert over.returncode != 0 and "exceeded quota" in over.stderr


@pytest.mark.parametrize(
    ("user", "verb", "resource", "namespace", "allowed"),
    [
        ("alice", "create", "sparkapplications.sparkoperator.k8s.io", "churn", True),
        ("alice", "create", "seldondeployments.machinelearning.seldon.io", "churn", True),
        ("alice", "get", "pods", "fraud", False),
        ("bob", "create", "sparkapplications.sparkoperator.k8s.io", "churn", False),
        ("system:serviceaccount:churn:ml", "get", "secrets", "fraud", False),
        ("system:serviceaccount:churn:spark", "create", "pods", "churn", True),
        ("system:serviceaccount:churn:spark", "create", "pods", "fraud", False),
    ],
)
def test_rbac_keeps_each_team_in_its_namespace(stack, user, verb, resource, namespace, allowed):
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "resourceAttributes": {
                "verb": verb,
                "resource": resource.split(".")[0],
                "group": resource.partition(".")[2],
                "namespace": namespace,
            },
        },
    }
    if user.startswith("system:serviceaccount:"):
        review["spec"]["groups"] = ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"]
    answer = json.loads(kubectl(stack, "create", "-f", "-", "-o", "json", stdin=json.dumps(review)).stdout)
    assert answer["status"]["allowed"] is allowed, answer["status"]


def test_each_team_namespace_has_its_network_policies(stack):
    for team in ("churn", "fraud"):
        names = {p["metadata"]["name"] for p in objects(stack, "networkpolicies", "-n", team)}
        assert names == {"default-deny", "same-namespace", "dns", "platform-services", "https-out", "from-platform"}


def test_each_team_namespace_holds_its_profile_as_the_stack_exports_it(stack):
    outputs = json.loads(stack.pulumi("stack", "output", "teamProfiles", "--json").stdout)
    for team in ("churn", "fraud"):
        [configmap] = objects(stack, "configmaps", "-n", team, "--field-selector", f"metadata.name={PROFILE_CONFIGMAP}")
        profile = TeamProfile.model_validate_json(configmap["data"][PROFILE_KEY])
        assert profile.team == team and profile.root.endswith(f"/teams/{team}")
        assert TeamProfile.model_validate(outputs[team]) == profile


def test_the_workload_charts_install_into_a_team_namespace_from_its_profile_alone(stack, tmp_path):
    """No store path, service account or profile typed: the charts read the ConfigMap through `lookup`."""
    [configmap] = objects(stack, "configmaps", "-n", "churn", "--field-selector", f"metadata.name={PROFILE_CONFIGMAP}")
    profile = TeamProfile.model_validate_json(configmap["data"][PROFILE_KEY])
    values = tmp_path / "features.yaml"
    values.write_text(yaml.safe_dump({"specs": SPECS}))
    features = helm(
        stack, "install", "features", str(REPO / "charts" / "feature-job"), "-n", "churn", "-f", str(values), "--wait"
    )
    assert features.returncode == 0, features.stderr
    serving = helm(stack, "install", "model", str(REPO / "charts" / "model-serving"), "-n", "churn", "--wait")
    assert serving.returncode == 0, serving.stderr
    [app] = objects(stack, "sparkapplications", "-n", "churn")
    args = app["spec"]["arguments"]
    assert args[args.index("--store") + 1] == profile.feature_store
    assert profile.contains(args[args.index("--input") + 1])
    assert app["spec"]["driver"]["serviceAccount"] == profile.service_accounts.spark
    assert app["spec"]["hadoopConfigMap"] == profile.hadoop_config_map
    [deployment] = objects(stack, "seldondeployments", "-n", "churn")
    pod = deployment["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert pod["serviceAccountName"] == profile.service_accounts.models
    assert profile.contains(env["MLKIT_REQUEST_LOG"]) and env["MLFLOW_TRACKING_URI"] == profile.mlflow.tracking_uri
    for release in ("features", "model"):
        assert helm(stack, "uninstall", release, "-n", "churn", "--wait").returncode == 0


def test_a_chart_installed_where_no_profile_is_fails_naming_the_configmap(stack):
    kubectl(stack, "create", "namespace", "no-team", check=False)
    result = helm(stack, "install", "model", str(REPO / "charts" / "model-serving"), "-n", "no-team")
    assert result.returncode != 0
    assert 'ConfigMap mlkit-team-profile (key profile.json) is not in namespace "no-team"' in result.stderr
    kubectl(stack, "delete", "namespace", "no-team", "--wait=false")


# --- guardrails: Pod Security Admission and the policy pack, decided by the real API server and CLI ---------

# What each kit namespace enforces, and why (docs/security.md): the strictest level its pods allow.
POD_SECURITY = {
    "churn": "restricted",
    "fraud": "restricted",
    "mlflow": "restricted",
    "spark-operator": "restricted",
    "seldon-system": "restricted",
    "kubeflow": "baseline",  # KFP's own manifests (MySQL, SeaweedFS, Argo run as root)
    "monitoring": "privileged",  # node-exporter reads the host
    "nvidia-device-plugin": "privileged",  # the kubelet's device-plugin socket (hostPath)
}
PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "root-shell"},
    "spec": {"containers": [{"name": "shell", "image": "busybox:1.37", "securityContext": {"privileged": True}}]},
}


def test_each_kit_namespace_enforces_its_pod_security_level(stack):
    for namespace, level in POD_SECURITY.items():
        [ns] = objects(stack, "namespaces", "--field-selector", f"metadata.name={namespace}")
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == level, namespace


def test_the_api_server_refuses_a_privileged_pod_in_a_team_namespace(stack):
    for team in ("churn", "fraud"):
        result = kubectl(stack, "apply", "-n", team, "-f", "-", stdin=json.dumps(PRIVILEGED_POD), check=False)
        assert result.returncode != 0
        assert 'violates PodSecurity "restricted:latest": privileged (container "shell" must not set' in result.stderr
    assert not objects(stack, "pods", "-n", "churn", "--field-selector", "metadata.name=root-shell")


def pod_specs(manifest: dict) -> list[dict]:
    """The pods a chart's object makes: templates as written, SeldonDeployment components, and Spark's
    driver and executor pods as the operator builds them from spec.driver and spec.executor."""
    kind, spec = manifest["kind"], manifest.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if kind == "SeldonDeployment":
        return [c["spec"] for p in spec["predictors"] for c in p["componentSpecs"]]
    if kind in {"SparkApplication", "ScheduledSparkApplication"}:
        app = spec.get("template", spec)
        return [
            {
                "securityContext": app[role].get("podSecurityContext", {}),
                "containers": [
                    {
                        "name": f"spark-kubernetes-{role}",
                        "image": app["image"],
                        "securityContext": app[role]["securityContext"],
                    }
                ],
            }
            for role in ("driver", "executor")
        ]
    return []


def test_the_kit_charts_pods_are_admitted_in_a_team_namespace(stack, tmp_path):
    values = tmp_path / "features.yaml"
    values.write_text(yaml.safe_dump({"specs": SPECS}))
    charts = {
        "features": ("feature-job", ["-f", str(values)]),
        "model": ("model-serving", []),
        "drift": ("drift-monitor", []),
    }
    pods = []
    for release, (chart, extra) in charts.items():
        rendered = helm(
            stack, "install", release, str(REPO / "charts" / chart), "-n", "churn", "--dry-run=server", *extra
        )
        assert rendered.returncode == 0, rendered.stderr
        manifests = [m for m in yaml.safe_load_all(rendered.stdout.split("MANIFEST:", 1)[1].split("NOTES:")[0]) if m]
        pods += [(chart, manifest["metadata"]["name"], spec) for manifest in manifests for spec in pod_specs(manifest)]
    assert {chart for chart, _, _ in pods} == {"feature-job", "model-serving", "drift-monitor"}
    for chart, name, spec in pods:
        # The chart's own service accounts do not exist in a dry run; Pod Security does not look at them.
        spec = {k: v for k, v in spec.items() if k not in {"serviceAccountName", "serviceAccount"}}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"psa-{name}"[:63]}, "spec": spec}
        result = kubectl(
            stack, "create", "--dry-run=server", "-n", "churn", "-f", "-", stdin=json.dumps(pod), check=False
        )
        assert result.returncode == 0, f"{chart} {name}: {result.stderr}"
        assert "PodSecurity" not in result.stderr, f"{chart} {name}: {result.stderr}"


def test_the_policy_pack_passes_the_deployed_stack(stack, tmp_path):
    result = stack.preview(*policy_pack(stack, tmp_path))
    assert "✅ mlkit-guardrails" in result.stdout, result.stdout[-3000:]


def policy_pack(live: LiveStack, tmp_path) -> tuple[str, ...]:
    """What `make policy` passes to `pulumi preview`: the pack (its executable form: the test build of the
    Python language host cannot start a policy directory) and its config from `mlkit policy-config`."""
    stack_file = tmp_path / f"Pulumi.{live.name}.yaml"
    stack_file.write_text(yaml.safe_dump({"config": live.config}))
    config = subprocess.run(
        [str(REPO / ".venv" / "infra" / "bin" / "mlkit"), "policy-config", str(stack_file)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    (tmp_path / "policy.json").write_text(config.stdout)
    return "--policy-pack", str(REPO / "policy" / "serve"), "--policy-pack-config", str(tmp_path / "policy.json")


def test_a_stack_breaking_a_mandatory_policy_fails_its_preview_naming_resource_and_fix(stack, tmp_path):
    bad = LiveStack(stack.cluster, tmp_path / "bad", name="bad")
    bad.config["mlkit:images"]["tag"] = "latest"
    bad.init()
    refused = bad.preview(*policy_pack(bad, tmp_path), check=False)
    assert refused.returncode != 0
    assert (
        "[mandatory]  no-floating-image-tags  (kubernetes:apps/v1:Deployment: mlkit-bad-mlflow-server)"
        in refused.stdout
    )
    assert (
        "Deployment mlflow/mlflow runs registry.example.internal/mlkit/mlkit-mlflow:latest: pin a version tag"
        in refused.stdout
    )
    # The same violation, made advisory by the stack: reported, and the preview passes.
    bad.config["mlkit:policy"] = {"levels": {"no-floating-image-tags": "advisory"}}
    advised = bad.preview(*policy_pack(bad, tmp_path))
    assert (
        "[advisory]  no-floating-image-tags  (kubernetes:apps/v1:Deployment: mlkit-bad-mlflow-server)" in advised.stdout
    )


def test_a_second_up_changes_nothing(stack):
    result = stack.preview("--expect-no-changes", check=False)
    assert result.returncode == 0, result.stdout[-4000:]


def test_removing_a_team_removes_exactly_its_objects(stack):
    def kit_objects() -> dict[str, str]:
        kinds = "namespaces,resourcequotas,limitranges,rolebindings,roles,serviceaccounts,configmaps,networkpolicies"
        found = objects(stack, kinds, "-A", "-l", PART_OF)
        return {
            f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o["metadata"]["uid"]
            for o in found
        }

    before = kit_objects()
    stack.config["mlkit:teams"] = [t for t in stack.config["mlkit:teams"] if t["name"] != "fraud"]
    stack.up()
    after = kit_objects()
    removed = set(before) - set(after)
    assert removed and all(key.split("/")[1] == "fraud" or key == "Namespace//fraud" for key in removed)
    assert {k: before[k] for k in after} == after  # everything else is the same object, not recreated
    assert not set(after) - set(before)
    gone = kubectl(stack, "get", "namespace", "fraud", check=False)
    assert gone.returncode != 0 or "Terminating" in gone.stdout
    values = json.loads(helm(stack, "get", "values", "spark-operator", "-n", "spark-operator", "-o", "json").stdout)
    assert values["spark"]["jobNamespaces"] == ["churn"]


def test_destroy_leaves_no_kit_object_behind(stack):
    stack.destroy()
    assert stack.resources() == []
    assert json.loads(helm(stack, "list", "-A", "-o", "json").stdout) == []
    kinds = "deployments,statefulsets,daemonsets,services,pods,configmaps,secrets,serviceaccounts,roles,rolebindings"
    left = objects(stack, f"{kinds},networkpolicies,resourcequotas,limitranges,podmonitors", "-A", "-l", PART_OF)
    assert left == []
    namespaces = {n["metadata"]["name"]: n["status"]["phase"] for n in objects(stack, "namespaces")}
    assert all(namespaces.get(ns, "Terminating") == "Terminating" for ns in KIT_NAMESPACES)
    cluster_roles = [
        r["metadata"]["name"] for r in objects(stack, "clusterroles") if r["metadata"]["name"].startswith("mlkit")
    ]
    assert cluster_roles == []

"""charts/feature-job: lints, renders and validates against the real SparkApplication CRD and Kubernetes schemas."""

from pathlib import Path

import pytest
import yaml

from mlkit_dev.manifests import problems, validate_all
from tests.charts.helm import PROFILE, REPO, helm, render

CHART = REPO / "charts" / "feature-job"
SPECS = {
    p.name: yaml.safe_load(p.read_text()) for p in sorted((REPO / "workloads" / "features" / "specs").glob("*.yaml"))
}
VALUES = {"profile": PROFILE, "input": "raw/telco/2026-02.csv", "specs": SPECS}


def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in documents}


def test_chart_lints(tmp_path):
    result = helm("lint", "--strict", str(CHART), values=VALUES, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_off_job_renders_a_valid_spark_application(tmp_path):
    documents = render("feature-job", VALUES, tmp_path)
    assert sorted(d["kind"] for d in documents) == ["ConfigMap", "SparkApplication"]
    assert validate_all(documents) == []
    app = by_kind(documents)["SparkApplication"]["spec"]
    args = app["arguments"]
    assert args[:1] == ["ingest"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--spec"] == [f"/etc/mlkit/specs/{name}" for name in SPECS]
    # The store is the profile's; the input, typed relative to the team root, lands under it.
    assert args[args.index("--store") + 1] == PROFILE["featureStore"]
    assert args[args.index("--input") + 1] == f"{PROFILE['root']}/raw/telco/2026-02.csv"
    assert "--event-time" not in args  # a scheduled or one-off run stamps its own time unless told
    for role in ("driver", "executor"):
        assert app[role]["serviceAccount"] == PROFILE["serviceAccounts"]["spark"]
        assert app[role]["securityContext"]["runAsNonRoot"] is True
        assert app[role]["envFrom"] == [{"secretRef": {"name": PROFILE["storeKeysSecret"]["spark"]}}]
    assert app["hadoopConfigMap"] == PROFILE["hadoopConfigMap"]
    assert app["mainApplicationFile"] == "local:///opt/mlkit/workloads/features/__main__.py"


def test_specs_reach_the_pod_as_files(tmp_path):
    configmap = by_kind(render("feature-job", VALUES, tmp_path))["ConfigMap"]
    assert set(configmap["data"]) == set(SPECS)
    assert yaml.safe_load(configmap["data"]["customer_features.yaml"]) == SPECS["customer_features.yaml"]


def test_a_schedule_renders_a_scheduled_spark_application(tmp_path):
    documents = render("feature-job", {**VALUES, "schedule": "0 2 * * *"}, tmp_path)
    assert sorted(d["kind"] for d in documents) == ["ConfigMap", "ScheduledSparkApplication"]
    assert validate_all(documents) == []
    scheduled = by_kind(documents)["ScheduledSparkApplication"]["spec"]
    assert scheduled["schedule"] == "0 2 * * *" and scheduled["concurrencyPolicy"] == "Forbid"
    assert scheduled["template"]["type"] == "Python"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"executor": {"instances": 0, "cores": 1, "memory": "4g"}}, "executor"),
        ({"featureStore": "ftp://somewhere"}, "featureStore"),
        ({"replicas": 3}, "replicas"),
        ({"specs": {"customer features.yaml": {}}}, "specs"),
        ({"specs": {}}, "specs"),  # rendered a job that exits 2, retried twice
    ],
)
def test_wrong_values_fail_at_install_with_the_key(tmp_path, change, message):
    result = helm("template", "release", str(CHART), values={**VALUES, **change}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr and message in result.stderr


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"featureStore": "s3://another-bucket/teams/example/features"}, "featureStore"),
        ({"featureStore": f"{PROFILE['root']}-other/features"}, "featureStore"),  # a sibling sharing the prefix
        ({"input": "../fraud/raw.csv"}, "input"),
        ({"input": "s3://example-bucket/teams/fraud/raw.csv"}, "input"),
    ],
)
def test_a_typed_path_outside_the_team_root_fails_naming_the_root(tmp_path, change, key):
    result = helm("template", "release", str(CHART), values={**VALUES, **change}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert f"{key} {next(iter(change.values()))!r}".replace("'", '"') in result.stderr
    assert f"lies outside the team root {PROFILE['root']}" in result.stderr, result.stderr


def test_a_typed_path_inside_the_root_is_taken(tmp_path):
    store = f"{PROFILE['root']}/features-v2"
    args = by_kind(render("feature-job", {**VALUES, "featureStore": store}, tmp_path))["SparkApplication"]["spec"]
    assert args["arguments"][args["arguments"].index("--store") + 1] == store


def test_without_a_profile_the_install_fails_naming_the_configmap(tmp_path):
    values = {k: v for k, v in VALUES.items() if k != "profile"}
    result = helm("template", "release", str(CHART), "-n", "churn", values=values, tmp_path=tmp_path)
    assert result.returncode != 0
    assert (
        'no team profile: ConfigMap mlkit-team-profile (key profile.json) is not in namespace "churn"' in result.stderr
    )


def test_without_store_keys_no_secret_is_loaded(tmp_path):
    """On a cloud identity the profile names no keys Secret: the pods load none."""
    profile = {**PROFILE, "storeKeysSecret": {"spark": None, "models": None}}
    app = by_kind(render("feature-job", {**VALUES, "profile": profile}, tmp_path))["SparkApplication"]["spec"]
    assert "envFrom" not in app["driver"] and "envFrom" not in app["executor"]


def test_the_validator_catches_a_misspelled_field(tmp_path):
    """The CRD check is strict: a typo in the spec is an error, not silently pruned."""
    app = by_kind(render("feature-job", VALUES, tmp_path))["SparkApplication"]
    app["spec"]["driver"]["memroy"] = "2g"
    assert any("memroy" in p for p in problems(app))
    app["spec"]["driver"].pop("memroy")
    app["spec"]["type"] = "Ruby"
    assert any("type" in p and "Ruby" in p for p in problems(app))


def test_an_unknown_kind_is_an_error_not_a_pass():
    assert problems({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}) == [
        f"Widget/w: no schema for example.com/v1 Widget (neither a Kubernetes kind nor a CRD in {Path(REPO.parent / 'shared' / 'crds')})"
    ]


# Pod Security Standards, `restricted` profile (which includes `baseline`), as the API server's Pod
# Security Admission checks a pod: https://kubernetes.io/docs/concepts/security/pod-security-standards/
# Cross-checked once by hand against kube-apiserver 1.34.4 (mlkit_dev.simcluster, a namespace enforcing
# `restricted`, `kubectl apply --dry-run=server`): the same verdict on these pods, the pre-fix pod,
# a pod without `drop: [ALL]` and one with a hostPath volume.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def restricted_problems(pod: dict) -> list[str]:
    """Why Pod Security `restricted` would refuse this pod spec; [] if it would admit it."""
    problems = []
    pod_sc = pod.get("securityContext") or {}
    containers = [*pod.get("initContainers", []), *pod["containers"]]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"{field} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} is of type {sorted(kinds)}")
    if unsafe := {s["name"] for s in pod_sc.get("sysctls", [])} - SAFE_SYSCTLS:
        problems.append(f"unsafe sysctls {sorted(unsafe)}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runs as user 0")
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append("pod seccompProfile is Unconfined")
    for c in containers:
        sc, name = c.get("securityContext") or {}, c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if (sc.get("runAsNonRoot") if "runAsNonRoot" in sc else pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot is not true (on the container or the pod)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runs as user 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp or 'unset'} (on the container and the pod)")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities add {capabilities['add']}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount {sc['procMount']}")
        if (sc.get("seLinuxOptions") or {}).get("type", "") not in (
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ):
            problems.append(f"{name}: seLinuxOptions type")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{name}: appArmorProfile Unconfined")
    return problems


def spark_pod(app: dict, role: str) -> dict:
    """The pod the Spark operator makes for ``role``: its pod/container security contexts, the app's volumes
    and those Spark adds itself (its conf ConfigMap, emptyDir local dirs, the hadoopConfigMap)."""
    spec = app["spec"]
    pod_spec = spec[role]
    mounted = {m["name"] for m in pod_spec.get("volumeMounts", [])}
    container = {
        "name": f"spark-kubernetes-{role}",
        "image": spec["image"],
        "securityContext": pod_spec.get("securityContext"),
    }
    container["volumeMounts"] = pod_spec.get("volumeMounts", [])
    return {
        "securityContext": pod_spec.get("podSecurityContext"),
        "hostNetwork": pod_spec.get("hostNetwork", False),
        "containers": [container, *pod_spec.get("sidecars", [])],
        "initContainers": pod_spec.get("initContainers", []),
        "volumes": [
            *(v for v in spec.get("volumes", []) if v["name"] in mounted),
            {"name": "spark-conf-volume", "configMap": {"name": "spark-conf"}},
            {"name": "spark-local-dir-1", "emptyDir": {}},
            {"name": "hadoop-properties", "configMap": {"name": spec["hadoopConfigMap"]}},
        ],
    }


@pytest.mark.parametrize("schedule", ["", "0 2 * * *"])
def test_driver_and_executor_pods_pass_pod_security_restricted(tmp_path, schedule):
    documents = render("feature-job", {**VALUES, "schedule": schedule}, tmp_path)
    app = next(d for d in documents if d["kind"] in ("SparkApplication", "ScheduledSparkApplication"))
    if app["kind"] == "ScheduledSparkApplication":
        app = {"spec": app["spec"]["template"]}
    for role in ("driver", "executor"):
        pod = spark_pod(app, role)
        assert restricted_problems(pod) == [], role
        # The pod as Kubernetes would see it is valid, so the checked fields sit where the API server reads them.
        assert validate_all([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": role}, "spec": pod}]) == []
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        # Writable: /tmp (temp files, S3A buffers, Hudi spills, the SQL warehouse) as an emptyDir.
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        assert next(v for v in pod["volumes"] if v["name"] == tmp["name"]) == {"name": "tmp", "emptyDir": {}}
    assert app["spec"]["sparkConf"]["spark.sql.warehouse.dir"].startswith("/tmp/")


def test_the_restricted_check_refuses_what_the_profile_refuses(tmp_path):
    """The checker itself: today's pods before this chart's fix, and one field at a time."""
    app = by_kind(render("feature-job", VALUES, tmp_path))["SparkApplication"]
    pod = spark_pod(app, "driver")
    assert restricted_problems(pod) == []
    before = {"runAsNonRoot": True, "runAsUser": 185, "allowPrivilegeEscalation": False}  # the chart's old context
    old = {**pod, "securityContext": None, "containers": [{**pod["containers"][0], "securityContext": before}]}
    assert restricted_problems(old) == [
        "spark-kubernetes-driver: seccompProfile is unset (on the container and the pod)",
        "spark-kubernetes-driver: capabilities do not drop ALL",
    ]
    for change in (
        {"hostNetwork": True},
        {"volumes": [*pod["volumes"], {"name": "h", "hostPath": {"path": "/"}}]},
        {"securityContext": {**pod["securityContext"], "seccompProfile": {"type": "Unconfined"}}},
    ):
        assert restricted_problems({**pod, **change}), change
    container_sc = pod["containers"][0]["securityContext"]
    for change in (
        {"allowPrivilegeEscalation": True},
        {"privileged": True},
        {"runAsNonRoot": False},
        {"runAsUser": 0},
        {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}},
    ):
        changed = {**pod, "containers": [{**pod["containers"][0], "securityContext": {**container_sc, **change}}]}
        assert restricted_problems(changed), change

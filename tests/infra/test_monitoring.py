"""The platform side of monitoring under Pulumi mocks: the Pushgateway, the alert rules from config, the Grafana
dashboards (structure, and every metric they query exists in the workloads' code), Alertmanager's team routes
(rendered by the real helm), the team profile's Pushgateway URL and the team's way to reach it."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from infra import versions
from infra.components import alerts, monitoring
from infra.components.alerts import rule_groups
from infra.components.base import TEAM_LABEL
from infra.config import LATENCY_TOP_BUCKET_SECONDS, Alerts
from infra.stack import REPO_ROOT, StackConfigError, parse_stack
from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_KEY, TeamProfile
from mlkit_dev import manifests
from tests.charts.helm import helm
from tests.infra.test_clouds import config_of
from tests.infra.test_platform import NODES, manifest, platform_of, releases
from tests.infra.test_schema import stack_values

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
STACK = "aws"


@pytest.fixture(scope="module")
def mocks():
    return platform_of(config_of(STACK))


def named(mocks, kind: str, name: str):
    found = [r for r in mocks.of_type(kind) if r.inputs["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {found}"
    return found[0]


# --- the Pushgateway -----------------------------------------------------------------------------


def test_the_pushgateway_runs_pinned_non_root_and_limited(mocks):
    deployment = named(mocks, "kubernetes:apps/v1:Deployment", "pushgateway")
    assert deployment.inputs["metadata"]["namespace"] == monitoring.NAMESPACE
    spec = deployment.inputs["spec"]
    assert spec["replicas"] == 1  # pushes to two replicas would split the groups between them
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == versions.PUSHGATEWAY_IMAGE
    assert re.fullmatch(r"prom/pushgateway:v\d+\.\d+\.\d+", versions.PUSHGATEWAY_IMAGE)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(container["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    assert container["ports"] == [{"name": "http", "containerPort": monitoring.PUSHGATEWAY_PORT}]
    assert mocks.depends_on[deployment.name] - NODES == {f"mlkit-monitoring-ns-{monitoring.NAMESPACE}"}


def test_the_pushgateway_is_scraped_keeping_the_labels_the_jobs_pushed(mocks):
    service = named(mocks, "kubernetes:core/v1:Service", "pushgateway").inputs
    deployment = named(mocks, "kubernetes:apps/v1:Deployment", "pushgateway").inputs
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": monitoring.PUSHGATEWAY_PORT, "targetPort": "http"}]
    assert (
        f"http://pushgateway.monitoring.svc.cluster.local:{monitoring.PUSHGATEWAY_PORT}" == monitoring.PUSHGATEWAY_URL
    )
    monitor = named(mocks, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "pushgateway")
    spec = monitor.inputs["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [monitoring.NAMESPACE]}
    # The drift job's namespace/registered_model/registered_version must survive the scrape.
    assert spec["endpoints"] == [{"port": "http", "honorLabels": True, "interval": "30s"}]
    assert mocks.depends_on[monitor.name] - NODES == {"mlkit-monitoring-kube-prometheus-stack"}


def test_each_team_profile_carries_the_pushgateway_and_may_reach_it(mocks):
    for team in config_of(STACK).teams:
        [configmap] = [
            c.inputs
            for c in mocks.of_type("kubernetes:core/v1:ConfigMap")
            if c.inputs["metadata"]["name"] == PROFILE_CONFIGMAP and c.inputs["metadata"]["namespace"] == team.name
        ]
        assert TeamProfile.model_validate_json(configmap["data"][PROFILE_KEY]).pushgateway == monitoring.PUSHGATEWAY_URL
        [policy] = [
            p.inputs
            for p in mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
            if (p.inputs["metadata"]["name"], p.inputs["metadata"]["namespace"]) == ("platform-services", team.name)
        ]
        # Under default-deny, the Pushgateway's port and pods only, not the rest of the monitoring namespace.
        assert policy["spec"]["egress"][1] == {
            "to": [
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [monitoring.NAMESPACE]}
                        ]
                    },
                    "podSelector": {"matchLabels": monitoring.PUSHGATEWAY_POD},
                }
            ],
            "ports": [{"protocol": "TCP", "port": monitoring.PUSHGATEWAY_PORT}],
        }


def test_without_monitoring_there_is_no_pushgateway_in_the_profile_nor_a_way_to_it():
    values = stack_values(STACK)
    values["platform"] = {"monitoring": {"enabled": False}}
    off = platform_of(parse_stack(values, STACK, decrypted=True))
    profiles = [
        TeamProfile.model_validate_json(c.inputs["data"][PROFILE_KEY])
        for c in off.of_type("kubernetes:core/v1:ConfigMap")
        if c.inputs["metadata"]["name"] == PROFILE_CONFIGMAP
    ]
    assert profiles and all(p.pushgateway is None for p in profiles)
    assert not off.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert not [
        d for d in off.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == "pushgateway"
    ]
    policies = [
        p.inputs["spec"]
        for p in off.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if p.inputs["metadata"]["name"] == "platform-services"
    ]
    assert policies and all(len(p["egress"]) == 1 for p in policies)


def test_a_profile_without_the_pushgateway_key_still_reads(mocks):
    """Profiles published before the key existed (and the charts' test profiles) stay valid."""
    [profile, *_] = [
        json.loads(c.inputs["data"][PROFILE_KEY])
        for c in mocks.of_type("kubernetes:core/v1:ConfigMap")
        if c.inputs["metadata"]["name"] == PROFILE_CONFIGMAP
    ]
    del profile["pushgateway"]
    assert TeamProfile.model_validate(profile).pushgateway is None


def test_new_objects_validate_strictly(mocks):
    kinds = {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:core/v1:Service",
        "kubernetes:core/v1:ConfigMap",
        "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
        "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
    }
    objects = [
        manifest(r)
        for r in mocks.resources
        if r.type in kinds and r.inputs["metadata"].get("namespace") == monitoring.NAMESPACE
    ]
    assert {o["kind"] for o in objects} == {"Deployment", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"}
    assert manifests.validate_all(objects) == []
    # The CRD check is strict: a misspelt field of the ServiceMonitor fails.
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    bad = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "http", "honourLabels": True}]}}
    assert any("honourLabels" in p for p in manifests.problems(bad))


# --- alert rules from config ---------------------------------------------------------------------


def test_the_prometheus_rule_holds_the_configured_thresholds():
    values = stack_values(STACK)
    values["platform"] = {
        "monitoring": {"alerts": {"featureDrift": {"psi": 0.35, "for": "1h"}, "serverErrors": {"ratio": 0.02}}}
    }
    config = parse_stack(values, STACK, decrypted=True)
    rule = platform_of(config).one("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert rule.inputs["metadata"]["name"] == monitoring.ALERT_RULES
    assert rule.inputs["metadata"]["namespace"] == monitoring.NAMESPACE
    spec = rule.inputs["spec"]
    assert spec == rule_groups(config.platform.monitoring.alerts)
    by_name = {r["alert"]: r for g in spec["groups"] for r in g["rules"]}
    drift = by_name["MlkitFeatureDrift"]
    assert drift["expr"].endswith("(mlkit_drift_max_psi) > 0.35") and drift["for"] == "1h"
    assert drift["labels"] == {"severity": "warning", "mlkit_action": "retrain"}
    assert by_name["MlkitServingServerErrors"]["expr"].endswith("> 0.02")
    assert by_name["MlkitServingLatencyP99High"]["expr"].endswith("> 0.5")  # the rest keep their defaults


def test_every_alert_has_a_severity_a_summary_and_a_description():
    for group in rule_groups(Alerts())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
            assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
            names_its_subject = ("registered_model", "deployment_name", "table")
            assert any(f"$labels.{label}" in rule["annotations"]["summary"] for label in names_its_subject)


def alert_problems(alerts_block: dict) -> list[str]:
    values = stack_values(STACK)
    values["platform"] = {"monitoring": {"alerts": alerts_block}}
    with pytest.raises(StackConfigError) as caught:
        parse_stack(values, STACK, decrypted=True)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        (
            {"featureDrift": {"psi": 0}},
            "mlkit:platform.monitoring.alerts.featureDrift.psi: Input should be greater than 0 (got 0)",
        ),
        (
            {"rocAuc": {"floor": 1.2}},
            "mlkit:platform.monitoring.alerts.rocAuc.floor: Input should be less than 1 (got 1.2)",
        ),
        (
            {"serverErrors": {"ratio": 5}},
            "mlkit:platform.monitoring.alerts.serverErrors.ratio: Input should be less than or equal to 1 (got 5)",
        ),
        (
            {"latencyP99": {"for": "10 minutes"}},
            "mlkit:platform.monitoring.alerts.latencyP99.for: '10 minutes' is not a Prometheus duration: expected "
            "units in the order y, w, d, h, m, s, ms, e.g. '30s', '5m', '1h30m' or '0'",
        ),
        (
            {"latencyP99": {"seconds": 10}},
            "mlkit:platform.monitoring.alerts.latencyP99.seconds: 10 s is not below the latency histogram's largest "
            "bucket (10 s): a p99 above it reads as that bound, so the alert could never fire",
        ),
        (
            {"driftJobStale": {"maxAge": "0"}},
            "mlkit:platform.monitoring.alerts.driftJobStale.maxAge: '0' is an empty window: expected a duration "
            "above zero, e.g. '5m'",
        ),
        (
            {"requestLogDrops": {"count": -1}},
            "mlkit:platform.monitoring.alerts.requestLogDrops.count: Input should be greater than or equal to 0 (got -1)",
        ),
    ],
)
def test_an_alert_threshold_out_of_range_fails_naming_the_key(block, problem):
    assert alert_problems(block) == [problem]


def test_a_misspelt_alert_key_fails_with_a_hint():
    [problem] = alert_problems({"featureDrift": {"threshold": 0.3}})
    assert problem.startswith("mlkit:platform.monitoring.alerts.featureDrift.threshold: unknown key")


def test_the_latency_bound_is_the_serving_histograms_largest_bucket():
    """infra may not import workloads: the bound is copied, and this keeps the copy honest."""
    source = ast.parse((REPO_ROOT / "workloads/serving/metrics.py").read_text())
    [latency] = [
        n.value
        for n in source.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and getattr(n.targets[0], "id", "") == "LATENCY"
    ]
    buckets = next(k.value for k in latency.keywords if k.arg == "buckets")
    assert max(ast.literal_eval(buckets)) == LATENCY_TOP_BUCKET_SECONDS


# --- Alertmanager: routes from the team namespaces -----------------------------------------------


def test_alertmanager_reads_alertmanager_configs_from_team_namespaces(mocks):
    spec = releases(mocks)["kube-prometheus-stack"]["values"]["alertmanager"]["alertmanagerSpec"]
    assert spec["alertmanagerConfigNamespaceSelector"] == {
        "matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]
    }
    assert spec["alertmanagerConfigMatcherStrategy"] == {"type": "OnNamespace"}
    # Each team namespace carries the label the selector names.
    namespaces = {
        n.inputs["metadata"]["name"]: n.inputs["metadata"]["labels"]
        for n in mocks.of_type("kubernetes:core/v1:Namespace")
    }
    assert all(TEAM_LABEL in namespaces[t.name] for t in config_of(STACK).teams)
    assert TEAM_LABEL not in namespaces[monitoring.NAMESPACE]
    # ... and team members may create them (the built-in edit role, aggregated).
    role = mocks.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole").inputs
    rule = next(r for r in role["rules"] if r["apiGroups"] == ["monitoring.coreos.com"])
    assert "alertmanagerconfigs" in rule["resources"]


def test_the_chart_renders_the_alertmanager_with_those_selectors(mocks, offline_charts, tmp_path):
    """The real chart at the pinned version, with the kit's values: the Alertmanager object carries them."""
    release = releases(mocks)["kube-prometheus-stack"]
    result = helm(
        "template",
        "kube-prometheus-stack",
        str(offline_charts / "kube-prometheus-stack"),
        "--namespace",
        monitoring.NAMESPACE,
        "--kube-version",
        f"{versions.KUBERNETES}.0",
        values=release["values"],
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    [alertmanager] = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Alertmanager"]
    spec = alertmanager["spec"]
    assert spec["alertmanagerConfigNamespaceSelector"] == {
        "matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]
    }
    assert spec["alertmanagerConfigSelector"] == {}  # every AlertmanagerConfig in those namespaces
    assert spec["alertmanagerConfigMatcherStrategy"] == {"type": "OnNamespace"}


# --- Grafana dashboards --------------------------------------------------------------------------

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table"}
METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# What PromQL spells that is not a metric: keywords, and the functions and aggregations these queries call.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
PROMQL_WORDS |= {"offset", "inf", "nan"}


def dashboard_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(monitoring.DASHBOARDS.glob("*.json"))}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, ranges, strings and label lists dropped)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in PROMQL_WORDS:
            continue  # a function or an aggregation
        names.add(match.group())
    return names


@cache
def exported_metrics() -> frozenset[str]:
    """Every series name the workloads export, read from their code, plus Seldon's executor histogram.

    workloads/common/metrics.py names metrics as string constants (type unknown there: the name itself or,
    for a histogram, its _bucket/_count/_sum series); workloads/serving/metrics.py creates them with
    prometheus_client, whose type says which series exist.
    """
    names: set[str] = set()
    common = ast.parse((REPO_ROOT / "workloads/common/metrics.py").read_text())
    for node in common.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            value = node.value.value
            if isinstance(value, str) and value.startswith("mlkit_") and METRIC.fullmatch(value):
                names |= {value, *(f"{value}_{s}" for s in ("bucket", "count", "sum"))}
    series = {
        "Counter": lambda n: {n if n.endswith("_total") else f"{n}_total"},
        "Gauge": lambda n: {n},
        "Histogram": lambda n: {f"{n}_bucket", f"{n}_count", f"{n}_sum"},
        "Summary": lambda n: {f"{n}_count", f"{n}_sum"},
    }
    serving = ast.parse((REPO_ROOT / "workloads/serving/metrics.py").read_text())
    for node in ast.walk(serving):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in series and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names |= series[node.func.id](first.value)  # type: ignore[union-attr]
    names |= series["Histogram"](alerts.SELDON_EXECUTOR_REQUESTS)
    return frozenset(names)


def dashboard_queries(board: dict) -> list[str]:
    """Every PromQL of a dashboard: its panels' targets and its variables' label_values() metrics."""
    queries = [t["expr"] for p in board.get("panels", []) for t in p.get("targets", []) if t.get("expr")]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert found, f"variable {variable['name']}: expected label_values(<selector>, <label>), got {query!r}"
            queries.append(found.group(1))
    return queries


def unknown_metrics(board: dict) -> set[str]:
    return {name for q in dashboard_queries(board) for name in metric_names(q)} - exported_metrics()


def dashboard_problems(board: dict) -> list[str]:
    """What would keep Grafana from showing the dashboard as meant."""
    problems = []
    uid = board.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        problems.append(f"uid {uid!r}: 1-40 letters, digits, '-' or '_'")
    if not board.get("title"):
        problems.append("no title")
    if not isinstance(board.get("schemaVersion"), int):
        problems.append("no schemaVersion")
    variables = {v["name"] for v in board.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        problems.append("no datasource variable")
    panels = board.get("panels") or []
    if not panels:
        problems.append("no panels")
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids):
        problems.append(f"panel ids repeat: {ids}")
    for panel in panels:
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if not panel.get("title"):
            problems.append(f"{where}: no title")
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{where}: type {panel.get('type')!r} is not one of {sorted(PANEL_TYPES)}")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "xywh") or grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: gridPos {grid} does not fit Grafana's 24 columns")
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource {panel.get('datasource')} is not {DATASOURCE}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{where}: refIds {refs} are not distinct")
        for target in targets:
            if not target.get("expr"):
                problems.append(f"{where}: target {target.get('refId')} has no expr")
            if target.get("datasource", DATASOURCE) != DATASOURCE:
                problems.append(f"{where}: target {target.get('refId')} queries {target['datasource']}")
            for used in set(re.findall(r"\$(\w+)", target.get("expr", ""))) - {
                "__rate_interval",
                "__range",
                "__interval",
            }:
                if used not in variables:
                    problems.append(f"{where}: ${used} is no variable of the dashboard")
    return problems


@pytest.fixture(scope="module", params=sorted(dashboard_files()))
def board(request) -> dict:
    return json.loads(dashboard_files()[request.param].read_text())


def test_the_three_dashboards_are_shipped():
    assert sorted(dashboard_files()) == ["drift", "feature-job", "serving"]
    uids = [json.loads(p.read_text())["uid"] for p in dashboard_files().values()]
    assert len(set(uids)) == len(uids)


def test_each_dashboard_is_structurally_sound(board):
    assert dashboard_problems(board) == []


def test_each_dashboard_queries_only_metrics_the_code_exports(board):
    assert dashboard_queries(board)
    assert unknown_metrics(board) == set()


def test_the_metric_check_catches_a_misspelt_metric():
    board = json.loads(dashboard_files()["serving"].read_text())
    assert "mlkit_predictions_total" in json.dumps(board)
    misspelt = json.loads(json.dumps(board).replace("mlkit_predictions_total", "mlkit_prediction_total"))
    assert unknown_metrics(misspelt) == {"mlkit_prediction_total"}
    # A histogram's base name is no series: only its _bucket, _count and _sum are.
    bare = json.loads(json.dumps(board).replace("mlkit_predict_inner_seconds_count", "mlkit_predict_inner_seconds"))
    assert unknown_metrics(bare) == {"mlkit_predict_inner_seconds"}


def test_the_structure_check_catches_a_broken_panel(board):
    broken = json.loads(json.dumps(board))
    broken["panels"][0]["targets"] = []
    broken["panels"][1]["datasource"] = {"type": "loki", "uid": "logs"}
    problems = dashboard_problems(broken)
    assert any("no targets" in p for p in problems) and any("is not" in p and "loki" in p for p in problems)


def test_the_alert_rules_query_only_metrics_the_code_exports():
    exprs = [r["expr"] for g in rule_groups(Alerts())["groups"] for r in g["rules"]]
    assert {name for e in exprs for name in metric_names(e)} <= exported_metrics()
    assert metric_names(exprs[0]) == {"mlkit_drift_max_psi"}  # the parser finds names at all


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query (Grafana's variables replaced by values) as a recording rule."""
    rules = []
    for stem, path in dashboard_files().items():
        for i, query in enumerate(dashboard_queries(json.loads(path.read_text()))):
            expr = re.sub(r"\$__(rate_interval|range|interval)", "5m", query)
            rules.append(
                {"record": f"mlkit:dashboard_{stem.replace('-', '_')}:{i}", "expr": re.sub(r"\$\w+", ".*", expr)}
            )
    file = tmp_path / "dashboards.rules.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_each_dashboard_is_a_configmap_the_grafana_sidecar_loads(mocks):
    configmaps = {
        c.inputs["metadata"]["name"]: c.inputs
        for c in mocks.of_type("kubernetes:core/v1:ConfigMap")
        if c.inputs["metadata"]["name"].startswith("mlkit-dashboard-")
    }
    assert sorted(configmaps) == [f"mlkit-dashboard-{stem}" for stem in sorted(dashboard_files())]
    sidecar = releases(mocks)["kube-prometheus-stack"]["values"]["grafana"]["sidecar"]["dashboards"]
    for stem, path in dashboard_files().items():
        configmap = configmaps[f"mlkit-dashboard-{stem}"]
        assert configmap["metadata"]["namespace"] == monitoring.NAMESPACE
        assert configmap["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"] == "1"
        assert json.loads(configmap["data"][f"{stem}.json"]) == json.loads(path.read_text())

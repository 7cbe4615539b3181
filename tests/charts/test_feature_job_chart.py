"""charts/feature-job: lints, renders and validates against the real SparkApplication CRD and Kubernetes schemas."""

from pathlib import Path

import pytest
import yaml

from infra.manifests import problems, validate_all
from tests.charts.helm import REPO, helm, render

CHART = REPO / "charts" / "feature-job"
SPECS = {
    p.name: yaml.safe_load(p.read_text()) for p in sorted((REPO / "workloads" / "features" / "specs").glob("*.yaml"))
}
VALUES = {
    "featureStore": "s3://acme-mlkit/features/churn",
    "input": "s3://acme-mlkit/raw/telco/2026-02.csv",
    "serviceAccount": "churn-spark",
    "specs": SPECS,
}


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
    assert (
        args[args.index("--store") + 1] == VALUES["featureStore"] and args[args.index("--input") + 1] == VALUES["input"]
    )
    assert "--event-time" not in args  # a scheduled or one-off run stamps its own time unless told
    for role in ("driver", "executor"):
        assert app[role]["serviceAccount"] == "churn-spark"
        assert app[role]["securityContext"]["runAsNonRoot"] is True
    assert app["hadoopConfigMap"] == "mlkit-feature-store-hadoop"
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
    ],
)
def test_wrong_values_fail_at_install_with_the_key(tmp_path, change, message):
    result = helm("template", "release", str(CHART), values={**VALUES, **change}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr and message in result.stderr


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

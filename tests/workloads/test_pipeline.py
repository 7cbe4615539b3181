"""The training pipeline: its compiled YAML, its cluster seams against the charts' own renders, start_run against
kfp.Client's real signatures, and whole runs with kfp.local (a real feature job, Hudi, torch, SQLite MLflow)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import yaml

from infra import versions
from mlkit_dev.demo_data import TELCO
from tests.charts.helm import PROFILE, render
from tests.workloads.kfp_client import RecordingClient
from workloads.common.featurestore import FeatureStore
from workloads.pipeline.client import PipelineFailed, run_local, start_run
from workloads.pipeline.definition import Images, compile_pipeline, default_config
from workloads.pipeline.deploy import DeployError, seldon_patch
from workloads.pipeline.featurejob import Batch, FeatureJobError, spark_application
from workloads.training.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "workloads" / "features" / "specs"
ORDER = [
    "feature-job",
    "read-training-set",
    "validate-training-set",
    "split-training-set",
    "train-model",
    "evaluate-model",
    "register-model",
    "deploy-model",
]


def images_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlkit_images_for_pipeline", REPO / "scripts" / "images.py")
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = compile_pipeline(
        Images("registry.example/mlkit", versions.KIT_IMAGE_TAG), tmp_path_factory.mktemp("p") / "t.yaml"
    )
    documents = list(yaml.safe_load_all(path.read_text()))
    return documents[0], documents[1] if len(documents) > 1 else {}, path.read_text()


def test_the_compiled_dag_runs_the_steps_in_order(compiled):
    spec, _, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(ORDER)
    for before, after in itertools.pairwise(ORDER):
        assert before in tasks[after].get("dependentTasks", []), f"{after} does not wait for {before}"
    assert "dependentTasks" not in tasks["feature-job"]
    # The gate's inputs: the champion is scored on the split task's test set, the deploy acts on evaluate's verdict.
    assert (
        tasks["evaluate-model"]["inputs"]["artifacts"]["test"]["taskOutputArtifact"]["producerTask"]
        == "split-training-set"
    )
    assert (
        tasks["deploy-model"]["inputs"]["artifacts"]["evaluation"]["taskOutputArtifact"]["producerTask"]
        == "evaluate-model"
    )
    assert all(task["cachingOptions"].get("enableCache") is not True for task in tasks.values())


def test_the_parameters_and_their_defaults(compiled):
    spec, _, _ = compiled
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["config"]["defaultValue"]["model_name"] == "churn-classifier"
    assert parameters["config"]["defaultValue"] == json.loads(json.dumps(default_config()))
    assert parameters["as_of"]["parameterType"] == "STRUCT" and parameters["as_of"]["defaultValue"] == {}
    assert parameters["runtime"]["defaultValue"] == "cluster"
    assert parameters["min_rows"]["defaultValue"] == 500
    for name in ("feature_store", "tracking_uri", "batch_source", "namespace"):
        assert parameters[name]["defaultValue"] == "", name
    assert set(spec["root"]["outputDefinitions"]["parameters"]) == {"version", "run_id", "promoted", "promotion"}


def test_every_image_is_the_kits_training_image_and_nothing_installs_at_run_time(compiled):
    spec, platform, text = compiled
    built = {image.name for image in images_script().images()}
    for name, executor in spec["deploymentSpec"]["executors"].items():
        image = executor["container"]["image"]
        assert image == f"registry.example/mlkit/mlkit-training:{versions.KIT_IMAGE_TAG}", name
        assert image.rpartition("/")[2].partition(":")[0] in built, f"{name}: make images builds {built}"
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command and "packages_to_install" not in command, name
        # The component body imports its step: no training logic is copied into the YAML.
        assert "from workloads.pipeline import steps" in command, name
    assert ":latest" not in text
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert kubernetes["exec-register-model"]["secretAsEnv"][0]["secretName"] == "mlflow-credentials"


def test_make_pipeline_writes_the_yaml_with_the_kit_tag(tmp_path):
    done = subprocess.run(
        ["make", "-s", "pipeline", "REGISTRY=registry.example/team"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    text = (REPO / "build" / "pipeline" / "training.yaml").read_text()
    assert f"image: registry.example/team/mlkit-training:{versions.KIT_IMAGE_TAG}" in text


def test_a_latest_tag_is_refused():
    from workloads.pipeline.definition import ImageError

    with pytest.raises(ImageError, match="'latest'"):
        Images("registry.example", "latest")


# --- the cluster seams, against what the charts render ---------------------------------------------------


def test_the_spark_application_is_the_feature_job_releases_with_the_batch(tmp_path):
    values = {
        "profile": PROFILE,
        "specs": {"customer_features.yaml": yaml.safe_load((SPECS / "customer_features.yaml").read_text())},
    }
    [template] = [d for d in render("feature-job", values, tmp_path) if d["kind"] == "SparkApplication"]
    store = template["spec"]["arguments"][template["spec"]["arguments"].index("--store") + 1]
    app = spark_application(
        template, name="features-pl-1", batch=Batch(f"{PROFILE['root']}/raw/feb.csv", "2026-02-01"), store=store
    )
    arguments = app["spec"]["arguments"]
    assert arguments[arguments.index("--input") + 1] == f"{PROFILE['root']}/raw/feb.csv"
    assert arguments[arguments.index("--event-time") + 1] == "2026-02-01"
    assert app["metadata"]["name"] == "features-pl-1" and app["kind"] == "SparkApplication"
    # Everything else is the release's: image, service account, volumes.
    assert app["spec"]["driver"] == template["spec"]["driver"] and app["spec"]["image"] == template["spec"]["image"]
    with pytest.raises(FeatureJobError, match=r"the feature-job release writes .* but the pipeline reads s3://other"):
        spark_application(template, name="x", batch=Batch("a.csv"), store="s3://other/features")


def test_the_seldon_patch_pins_the_served_version_and_guards_the_old_value(tmp_path):
    import jsonpatch

    [sdep] = [d for d in render("model-serving", {"profile": PROFILE}, tmp_path) if d["kind"] == "SeldonDeployment"]
    operations = seldon_patch(sdep, "churn-classifier", "models:/churn-classifier/7")
    assert [op["op"] for op in operations] == ["test", "replace"]
    patched = jsonpatch.apply_patch(sdep, operations)
    env = {
        e["name"]: e.get("value")
        for e in patched["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["env"]
    }
    assert env["MLKIT_MODEL_URI"] == "models:/churn-classifier/7"
    with pytest.raises(jsonpatch.JsonPatchTestFailed):  # someone changed it meanwhile: nothing is overwritten
        jsonpatch.apply_patch(patched, operations)
    with pytest.raises(DeployError, match="not a registered version of other-model"):
        seldon_patch(sdep, "other-model", "models:/other-model/1")


# --- start_run: what the trigger calls, against kfp.Client's own signatures ---------------------------------


def test_start_run_starts_the_newest_version_with_the_triggers_parameters(compiled):
    spec, _, _ = compiled
    client = RecordingClient()
    started = start_run(
        client,
        run_name="retrain-churn-1",
        config={**default_config(), "epochs": 5},
        feature_store="s3://b/teams/churn/features",
        tracking_uri="http://mlflow.mlflow:5000",
        tags={"mlkit.trigger.alertname": "ChurnDrift"},
        service_account="churn-pipelines",
    )
    assert started.run_id == "r1" and started.started
    [(_, run)] = [c for c in client.calls if c[0] == "run_pipeline"]
    assert run["version_id"] == "v9" and run["job_name"] == "retrain-churn-1" and run["enable_caching"] is False
    assert set(run["params"]) <= set(spec["root"]["inputDefinitions"]["parameters"])
    assert run["params"]["tags"] == {"mlkit.trigger.alertname": "ChurnDrift"} and run["params"]["config"]["epochs"] == 5
    # The same run name again: the run that is there, nothing started.
    again = start_run(
        RecordingClient([SimpleNamespace(run_id="r1")]),
        run_name="retrain-churn-1",
        config=default_config(),
        feature_store="s3://x",
    )
    assert again.run_id == "r1" and not again.started


def test_start_run_refuses_a_bad_config_or_parameter_before_starting():
    with pytest.raises(ConfigError, match="epochs"):
        start_run(RecordingClient(), run_name="r", config={**default_config(), "epochs": 0}, feature_store="s3://x")
    with pytest.raises(ConfigError, match="unknown pipeline parameters \\['epochs'\\]"):
        start_run(RecordingClient(), run_name="r", config=default_config(), feature_store="s3://x", epochs=3)


# --- whole runs with kfp.local ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """Run 1 ingests January's Telco batch through the pipeline's own feature step into an empty store, trains a
    small model and (no champion yet) promotes it; run 2 pins the labels to that instant, trains a much weaker
    model, and the gate refuses it."""
    root = tmp_path_factory.mktemp("pipeline")
    common = {
        "feature_store": str(root / "features"),
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "pipeline_root": str(root / "kfp"),
    }
    first = run_local(
        config={**default_config(), "epochs": 4},
        batch_source=str(TELCO),
        batch_event_time="2026-01-01",
        batch_specs=[str(SPECS / "customer_features.yaml"), str(SPECS / "churn_labels.yaml")],
        tags={"mlkit.started_by": "test"},
        **common,
    )
    store = FeatureStore(common["feature_store"])
    labels = store.commits("churn_labels")[-1].instant
    weak = {**default_config(), "epochs": 1, "learning_rate": 1e-5, "model": {"hidden_layers": [4]}}
    second = run_local(config=weak, as_of={"churn_labels": labels, "customer_features": "latest"}, **common)
    return {"first": first, "second": second, "store": store, **common}


def test_a_local_run_registers_a_version_with_its_lineage(local_runs):
    first, store = local_runs["first"], local_runs["store"]
    assert first["version"] == "1" and first["promoted"] and first["promotion"] == "promoted: there was no champion"
    mlflow.set_tracking_uri(local_runs["tracking_uri"])
    client = mlflow.MlflowClient()
    version = client.get_model_version("churn-classifier", first["version"])
    assert version.run_id == first["run_id"]
    tags = client.get_run(first["run_id"]).data.tags
    # The instants are those the feature step committed, read back from the store's own timelines.
    assert json.loads(tags["mlkit.instants"]) == {
        t: store.commits(t)[-1].instant for t in ("customer_features", "churn_labels")
    }
    assert tags["mlkit.feature_store"] == store.root and tags["mlkit.training_rows"] == "7043"
    assert tags["mlkit.started_by"] == "test" and tags["mlkit.pipeline.run"] and tags["mlkit.code_version"]
    assert tags["mlkit.promotion"] == "promoted: there was no champion"
    metrics = client.get_run(first["run_id"]).data.metrics
    assert metrics["test_roc_auc"] > 0.75 and metrics["onnx_max_abs_diff"] <= 1e-4
    assert str(client.get_model_version_by_alias("churn-classifier", "champion").version) == "1"


def test_the_gate_refuses_a_worse_model_and_the_champion_stays(local_runs):
    second = local_runs["second"]
    assert second["version"] == "2" and not second["promoted"]
    assert (
        second["promotion"].startswith("not promoted: test ROC AUC")
        and "does not beat champion v1" in second["promotion"]
    )
    mlflow.set_tracking_uri(local_runs["tracking_uri"])
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("churn-classifier", "champion").version) == "1"
    run = client.get_run(second["run_id"])
    assert run.data.tags["mlkit.promotion"] == second["promotion"] and "champion_test_roc_auc" in run.data.metrics


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": {"feature_tables": ["usage_features"]}}, r"no feature table at .*/features/usage_features"),
        (
            {"as_of": {"customer_features": "20000101000000000"}},
            "table customer_features has no commit at or before 20000101000000000; its commits: ",
        ),
        ({"config": {"epochs": 0}}, "invalid training config\nepochs: Input should be greater than or equal to 1"),
    ],
    ids=["missing-table", "missing-instant", "invalid-config"],
)
def test_a_bad_parameter_fails_the_first_step_with_its_message(local_runs, change, message):
    with pytest.raises(PipelineFailed) as failed:
        run_local(
            config={**default_config(), **change.get("config", {})},
            as_of=change.get("as_of", {}),
            feature_store=local_runs["feature_store"],
            tracking_uri=local_runs["tracking_uri"],
            pipeline_root=local_runs["pipeline_root"],
        )
    assert failed.value.task == "feature-job"
    import re

    assert re.search(message, failed.value.message), failed.value.message

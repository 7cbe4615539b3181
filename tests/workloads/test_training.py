"""Training with real torch, MLflow (SQLite registry) and Hudi tables written by the real feature job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlkit_dev.demo_data import TELCO, second_batch
from workloads.common.featurestore import FeatureStore, InstantNotFound, TableNotFound
from workloads.common.specs import load_spec, parse_spec
from workloads.features.job import run_batch
from workloads.training.config import load_config
from workloads.training.data import TrainingDataError, build_training_set
from workloads.training.train import config_from_run, train

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "workloads" / "features" / "specs"
CONFIG = REPO / "workloads" / "training" / "configs" / "churn.yaml"
JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def telco(spark, tmp_path_factory):
    """A feature store holding January's Telco batch, and an MLflow with a SQLite registry."""
    root = tmp_path_factory.mktemp("training")
    store = FeatureStore(str(root / "features"))
    run_batch(
        spark,
        store,
        [load_spec(SPECS / "customer_features.yaml"), load_spec(SPECS / "churn_labels.yaml")],
        str(TELCO),
        event_time=JAN,
    )
    return store, f"sqlite:///{root / 'mlflow.db'}", root


@pytest.fixture(scope="module")
def gate(telco, spark):
    """Three runs: a weak model (first, so champion), the real config (better), the weak one again (worse)."""
    store, tracking, root = telco
    weak = load_config(CONFIG, epochs=1, learning_rate=1e-5, model={"hidden_layers": [4]})
    reports = {"weak": train(store, weak, tracking_uri=tracking)}
    reports["good"] = train(store, load_config(CONFIG), tracking_uri=tracking)
    reports["weak_again"] = train(store, weak, tracking_uri=tracking)
    # Next month's data arrives after the good run: retraining from lineage must not see it.
    run_batch(
        spark,
        store,
        [load_spec(SPECS / "customer_features.yaml"), load_spec(SPECS / "churn_labels.yaml")],
        str(second_batch(root / "feb.csv").path),
        event_time=FEB,
    )
    return reports


def test_telco_test_auc_reaches_the_published_baselines(gate):
    good = gate["good"]
    assert good.test["roc_auc"] >= 0.83, good.test
    assert 0 <= good.test["brier"] < 0.2 and good.rows["test"] > 900


def test_the_registry_holds_a_version_whose_lineage_reads_back(gate, telco):
    store, tracking, _ = telco
    mlflow.set_tracking_uri(tracking)
    client = mlflow.MlflowClient()
    version = client.get_model_version("churn-classifier", gate["good"].model_version)
    run = client.get_run(version.run_id)
    instants = json.loads(run.data.tags["mlkit.instants"])
    assert set(instants) == {"customer_features", "churn_labels"}
    # The instant exists in the table's timeline and reads back the rows trained on.
    assert instants["customer_features"] in [c.instant for c in store.commits("customer_features")]
    assert len(store.read("customer_features", as_of=instants["customer_features"])) == 7043
    assert run.data.tags["mlkit.training_rows"] == "7043" and run.data.tags["mlkit.code_version"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "features/customer_features")}
    assert artifacts == {"features/customer_features/spec.json", "features/customer_features/transform.json"}


def test_onnx_and_pytorch_models_agree(gate, telco):
    store, tracking, _ = telco
    mlflow.set_tracking_uri(tracking)
    run_id = gate["good"].run_id
    assert mlflow.get_run(run_id).data.metrics["onnx_max_abs_diff"] <= 1e-4
    config = load_config(CONFIG, as_of=json.loads(mlflow.get_run(run_id).data.tags["mlkit.instants"]))
    x_test, _ = build_training_set(store, config).part("test")
    onnx_model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    torch_model = mlflow.pytorch.load_model(f"runs:/{run_id}/pytorch")
    import torch

    from_onnx = np.asarray(onnx_model.predict(x_test)["probability"]).reshape(-1)
    from_torch = torch_model(torch.from_numpy(x_test)).detach().numpy().reshape(-1)
    np.testing.assert_allclose(from_onnx, from_torch, atol=1e-5)


def test_the_champion_gate_promotes_a_better_model_and_keeps_it_over_a_worse_one(gate, telco):
    _, tracking, _ = telco
    assert gate["weak"].promoted and gate["weak"].promotion == "promoted: there was no champion"
    assert gate["good"].promoted and gate["good"].test["roc_auc"] > gate["good"].champion_test["roc_auc"]
    assert not gate["weak_again"].promoted and "does not beat champion" in gate["weak_again"].promotion
    # Compared on the same test set: the champion's score is the good run's own test score.
    assert gate["weak_again"].champion_test["roc_auc"] == pytest.approx(gate["good"].test["roc_auc"], abs=1e-5)
    mlflow.set_tracking_uri(tracking)
    champion = mlflow.MlflowClient().get_model_version_by_alias("churn-classifier", "champion")
    assert str(champion.version) == gate["good"].model_version


def test_retraining_from_lineage_reproduces_the_test_metrics(gate, telco):
    store, tracking, _ = telco
    assert len(store.commits("customer_features")) == 2  # February landed after the run
    config, recorded_store = config_from_run(gate["good"].run_id, tracking)
    assert recorded_store == store.root and config.as_of == gate["good"].instants
    again = train(FeatureStore(recorded_store), config, tracking_uri=tracking)
    assert again.instants == gate["good"].instants
    for metric, value in gate["good"].test.items():
        assert again.test[metric] == pytest.approx(value, abs=1e-6), metric


def test_the_registered_bundle_carries_the_drift_reference_of_its_training_split(gate, telco, tmp_path):
    """Training stores monitoring's reference beside the model: the lineage's instants, every spec column, and
    the training split's own values (so the same rows compared with it show no drift)."""
    from workloads.monitoring.drift import NumericReference, Reference, compare
    from workloads.serving.artifacts import fetch

    store, tracking, _ = telco
    mlflow.set_tracking_uri(tracking)
    good = gate["good"]
    bundle = fetch(f"models:/churn-classifier/{good.model_version}")
    reference = Reference.model_validate_json(bundle.reference_path.read_text())
    assert (reference.model, reference.version) == ("churn-classifier", good.model_version)
    assert reference.instants == good.instants and reference.rows == good.rows["train"]
    spec = load_spec(SPECS / "customer_features.yaml")
    assert list(reference.features) == [c.name for c in spec.columns]
    assert isinstance(reference.features["MonthlyCharges"], NumericReference)
    config = load_config(CONFIG, as_of=good.instants)
    data = build_training_set(store, config)
    train_rows = data.inputs[data.split == "train"]
    report = compare(reference, train_rows, np.asarray(reference.prediction.sample))
    assert report.max_psi < 1e-3 and report.prediction_psi < 0.05


def test_the_drift_cli_compares_a_logged_window_with_the_served_versions_reference(gate, telco, tmp_path):
    """Records in the request log's own layout (RequestLog's writer): drifted charges show up, others do not."""
    from workloads.common.storage import ObjectStore
    from workloads.serving.requestlog import RequestLog

    _, tracking, _ = telco
    good = gate["good"]
    rows = pd.read_csv(TELCO, dtype=str).head(600)
    rows["MonthlyCharges"] = (rows["MonthlyCharges"].astype(float) + 60).astype(str)
    now = datetime.now(UTC).isoformat()
    records = [
        {
            "time": now,
            "kind": "prediction",
            "model": "churn-classifier",
            "version": good.model_version,
            "inputs": row,
            "probability": 0.3,
        }
        for row in rows.drop(columns=["Churn"]).to_dict(orient="records")
    ]
    records.append(
        {
            "time": now,
            "kind": "prediction",
            "model": "churn-classifier",
            "version": good.model_version,
            "inputs": {"tenure": "1"},
            "probability": 0.5,
        }
    )
    RequestLog._writer_for(str(tmp_path / "log"), ObjectStore())(records)
    command = [
        sys.executable,
        "-m",
        "workloads.monitoring",
        "drift",
        "--model-uri",
        f"models:/churn-classifier/{good.model_version}",
        "--request-log",
        str(tmp_path / "log"),
        "--window",
        "1h",
        "--textfile",
        str(tmp_path / "drift.prom"),
        "--json",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == 600 and report["skipped"] == {"missing_feature": 1}
    assert "MonthlyCharges" in report["drifted"] and "Contract" not in report["drifted"]
    from prometheus_client.parser import text_string_to_metric_families

    flagged = {
        sample.labels["feature"]: sample.value
        for family in text_string_to_metric_families((tmp_path / "drift.prom").read_text())
        for sample in family.samples
        if sample.name == "mlkit_drift_feature_drifted"
        and sample.labels["registered_version"] == good.model_version
        and sample.labels["namespace"] == "local"
    }
    assert flagged["MonthlyCharges"] == 1 and flagged["Contract"] == 0
    bad = subprocess.run(
        [*command[:5], "models:/churn-classifier/999", *command[6:]],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 1 and "999" in bad.stderr and "Traceback" not in bad.stderr


# --- bad input: a clear error before training starts ------------------------------------------------


def test_a_missing_feature_table_is_named(telco):
    store, tracking, _ = telco
    with pytest.raises(TableNotFound, match=r"no feature table at .*/features/usage_features"):
        train(store, load_config(CONFIG, feature_tables=["usage_features"]), tracking_uri=tracking)


def test_a_missing_instant_lists_the_tables_commits(telco):
    store, tracking, _ = telco
    with pytest.raises(
        InstantNotFound, match="table customer_features has no commit at or before 20000101000000000; its commits: "
    ):
        train(store, load_config(CONFIG, as_of={"customer_features": "20000101000000000"}), tracking_uri=tracking)


def test_a_training_set_reads_each_tables_timeline_once(telco, monkeypatch):
    """The snapshot pins each table once; the spec, transform and instants come from it, not from new reads."""
    store, _, _ = telco
    reads = []
    commits = FeatureStore.commits
    monkeypatch.setattr(FeatureStore, "commits", lambda self, table: reads.append(table) or commits(self, table))
    data = build_training_set(store, load_config(CONFIG))
    assert sorted(reads) == ["churn_labels", "customer_features"]
    assert data.instants == {t: p.instant for t, p in data.tables.items()}
    assert data.tables["customer_features"].spec == store.spec("customer_features", data.instants["customer_features"])


TINY = parse_spec(
    {"name": "tiny", "entity": {"key": "id"}, "columns": [{"name": "x", "type": "double", "transform": "standard"}]},
    "tiny",
)
TINY_LABELS = parse_spec(
    {"name": "tiny_labels", "entity": {"key": "id"}, "columns": [{"name": "y", "type": "boolean"}]}, "tiny"
)


def tiny_store(spark, root: Path, labels: list[bool], features: bool = True) -> FeatureStore:
    store = FeatureStore(str(root))
    ids = [f"c{i}" for i in range(len(labels))]
    frame = pd.DataFrame({"id": ids, "x": np.arange(len(labels), dtype=float), "y": labels})
    frame.to_csv(root.parent / "tiny.csv", index=False)
    specs = [TINY, TINY_LABELS] if features else [TINY_LABELS]
    run_batch(spark, store, specs, str(root.parent / "tiny.csv"), event_time=JAN)
    return store


def tiny_config(**overrides):
    return load_config(
        CONFIG,
        **{"model_name": "tiny", "label_table": "tiny_labels", "label": "y", "feature_tables": ["tiny"], **overrides},
    )


def test_a_single_class_label_is_refused(spark, tmp_path):
    store = tiny_store(spark, tmp_path / "store", [False] * 40)
    with pytest.raises(TrainingDataError, match=r"label 'y' has a single class \(\[0\.0\]\): nothing to learn"):
        build_training_set(store, tiny_config())


def test_an_empty_training_set_is_refused(spark, tmp_path):
    store = tiny_store(spark, tmp_path / "store", [True, False] * 20)
    # Labels observed before any feature version exists: no row can be trained on.
    late = FeatureStore(store.root)
    frame = pd.DataFrame({"id": [f"c{i}" for i in range(40)], "y": [True, False] * 20})
    frame.to_csv(tmp_path / "early.csv", index=False)
    run_batch(
        spark,
        late,
        [parse_spec({**TINY_LABELS.model_dump(), "name": "early_labels"}, "t")],
        str(tmp_path / "early.csv"),
        event_time=datetime(2025, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(
        TrainingDataError, match="no label row of early_labels has feature values at its time in \\['tiny'\\]"
    ):
        build_training_set(late, tiny_config(label_table="early_labels"))


def test_nan_features_are_refused_with_the_column(spark, tmp_path):
    """The feature job never writes NaN; a table written by other means might. Training checks anyway."""
    from workloads.common.transform import FittedTransform

    store = tiny_store(spark, tmp_path / "store", [True, False] * 20)
    rows = spark.createDataFrame(
        [(f"c{i}", float(i), [float("nan")] if i == 3 else [0.5]) for i in range(40)],
        "id string, x double, features array<float>",
    )
    # The same key and event time as the job's rows, ingested later: these versions win.
    rows = rows.selectExpr(
        "*", "timestamp'2026-01-01 00:00:00' as event_time", "'h' as row_hash", "9999999999999L as ingested_at"
    )
    transform = FittedTransform.fit(TINY, {"x": {"mean": 0.0, "std": 1.0, "min": 0, "max": 1}})
    store.upsert(
        rows,
        "tiny",
        record_key=["id", "event_time"],
        precombine="ingested_at",
        metadata={"spec": TINY.model_dump_json(), "transform": transform.to_json()},
    )
    with pytest.raises(TrainingDataError, match=r"1 rows have NaN or infinite features \(in \['tiny\.x'\]\)"):
        build_training_set(store, tiny_config())


def test_the_cli_exits_1_with_the_message_and_registers_nothing(telco, tmp_path):
    store, _, _ = telco
    tracking = f"sqlite:///{tmp_path / 'cli.db'}"
    command = [
        sys.executable,
        "-m",
        "workloads.training",
        "train",
        "--config",
        str(CONFIG),
        "--store",
        store.root,
        "--tracking-uri",
        tracking,
        "--as-of",
        "churn_labels=19990101000000000",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 1
    assert "error: table churn_labels has no commit at or before 19990101000000000" in result.stderr
    assert "Traceback" not in result.stderr

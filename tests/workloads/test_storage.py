"""One storage suite over every scheme: a directory, s3 (moto), gs (fake-gcs-server), Azure Blob (Azurite).

Each emulator is a real server on 127.0.0.1, started here (mlkit_dev/storage_emulators.py). What the
platform's workloads do with the store runs unchanged on each: the model bundle written, listed and
read back; the request log flushed; a registered model exported to the store and served from there,
with the team profile a chart would mount as the only source of the store's address.
Azurite has no ADLS Gen2 (DFS) endpoint: abfss:// URIs are served through its Blob API here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkit_dev.storage_emulators import SCHEMES, profile_for, start
from workloads.common import settings as settings_module
from workloads.common.bundle import BundleError, ModelBundle
from workloads.common.storage import ObjectStore, StorageError, join


@pytest.fixture(scope="module", params=SCHEMES)
def emulator(request):
    running = start(request.param)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A small real model, registered as the champion in a SQLite MLflow store, and its bundle on disk."""
    from mlkit_dev.fixture import write_fixture

    out = tmp_path_factory.mktemp("registered")
    tracking = f"sqlite:///{out / 'mlflow.db'}"
    write_fixture(out / "bundle", epochs=1, register=tracking)
    return out / "bundle", tracking


@pytest.fixture
def team_profile(emulator, tmp_path, monkeypatch):
    """The team profile on ``emulator``, as a chart mounts it, and the store keys a chart's Secret would give."""
    profile = profile_for(emulator)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    for name in ("MLKIT_STORE_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLKIT_PROFILE", str(path))
    monkeypatch.setenv("MLKIT_TEAM", "churn")
    for name, value in emulator.env.items():
        if name != "MLKIT_STORE_ENDPOINT":  # the endpoint comes from the profile, keys from the Secret
            monkeypatch.setenv(name, value)
    settings_module.settings.cache_clear()
    yield profile
    settings_module.settings.cache_clear()


def test_files_are_written_listed_read_and_copied(emulator, tmp_path):
    place = emulator.store.at(join(emulator.root, "suite", "files"))
    assert place.files() == [] and not (place / "a.txt").exists()
    (place / "a.txt").write_text("alpha")
    (place / "deep/er/b.bin").write_bytes(b"\x00\x01" * 1000)
    assert place.files() == ["a.txt", "deep/er/b.bin"]
    assert (place / "a.txt").read_text() == "alpha" and (place / "a.txt").exists()
    assert place.download(tmp_path / "copy") == 2
    assert (tmp_path / "copy" / "deep" / "er" / "b.bin").read_bytes() == b"\x00\x01" * 1000
    again = emulator.store.at(join(emulator.root, "suite", "copied"))
    assert again.upload(tmp_path / "copy") == 2 and again.files() == place.files()
    with pytest.raises(FileNotFoundError, match="no such object"):
        (place / "missing.txt").read_bytes()


def test_a_model_bundle_round_trips_through_the_store(emulator, registered, tmp_path):
    from workloads.serving.artifacts import ModelSourceError, fetch

    bundle_dir, _ = registered
    uri = join(emulator.root, "teams/churn/models/churn-classifier/fixture-1")
    emulator.store.at(uri).upload(bundle_dir)
    fetched = fetch(uri, emulator.store)
    local = ModelBundle.read(bundle_dir)
    assert (fetched.name, fetched.version) == (local.name, local.version) == ("churn-classifier", "fixture-1")
    assert [t.name for t in fetched.tables] == [t.name for t in local.tables]
    assert fetched.tables[0].spec == local.tables[0].spec
    assert fetched.model_path.read_bytes() == local.model_path.read_bytes()
    with pytest.raises(ModelSourceError, match="nothing under that prefix"):
        fetch(join(emulator.root, "teams/churn/models/none"), emulator.store)
    (emulator.store.at(join(emulator.root, "teams/churn/models/broken")) / "model/model.onnx").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match=r"training/config\.json is missing"):
        fetch(join(emulator.root, "teams/churn/models/broken"), emulator.store)


def test_the_request_log_flushes_to_the_store(emulator, tmp_path):
    from workloads.serving.requestlog import RequestLog

    destination = join(emulator.root, "teams/churn/request-logs/suite")
    log = RequestLog(destination, spool=str(tmp_path), batch_size=10, flush_seconds=0.2, store=emulator.store)
    for i in range(25):
        assert log.put({"i": i})
    log.close()
    place = emulator.store.at(destination)
    names = place.files()
    assert names and all(n.endswith(".jsonl") for n in names)
    records = [json.loads(line) for n in names for line in (place / n).read_text().splitlines()]
    assert sorted(r["i"] for r in records) == list(range(25))
    assert (log.written, log.failed_batches, log.dropped) == (25, 0, 0) and not list(tmp_path.glob("*.jsonl"))


def test_a_registered_model_is_exported_to_the_store_and_served_from_it(emulator, registered, team_profile):
    """The cluster's path: export pins the champion under the team's models root; the served model reads
    it and logs its requests under the team's request-log root, all addressed by the profile alone."""
    import mlflow

    from mlkit_dev.fixture import example_rows
    from workloads.serving.artifacts import export
    from workloads.serving.model import FeatureModel

    _, tracking = registered
    mlflow.set_tracking_uri(tracking)
    store = settings_module.settings().store
    assert store.endpoint == emulator.store.endpoint  # from the profile, not the environment
    pinned = export("models:/churn-classifier@champion", join(team_profile["models"], "churn-classifier"), store)
    assert pinned == join(team_profile["models"], "churn-classifier", "1")
    assert "model/model.onnx" in store.at(pinned).files()

    request_logs = join(team_profile["requestLogs"], "churn-classifier")
    model = FeatureModel(pinned, request_logs)
    model.load()
    assert (model.model_name, model.model_version) == ("churn-classifier", "1")
    rows = example_rows(3)
    probabilities = model.predict([list(r.values()) for r in rows], list(rows[0]))
    assert probabilities.shape == (3, 1) and ((probabilities >= 0) & (probabilities <= 1)).all()
    model.request_log.close()
    logged = store.at(request_logs)
    records = [json.loads(line) for n in logged.files() for line in (logged / n).read_text().splitlines()]
    assert [r["inputs"]["tenure"] for r in records] == [r["tenure"] for r in rows]


def test_a_path_outside_the_team_root_stops_the_model_at_start_up(emulator, team_profile):
    from workloads.common.settings import SettingsError
    from workloads.serving.model import FeatureModel

    outside = join(emulator.root, "teams/other/request-logs")
    with pytest.raises(SettingsError, match=r"outside team 'churn'.s root"):
        FeatureModel(join(team_profile["models"], "x"), outside).load()


def test_an_unsupported_scheme_is_refused_naming_the_accepted_ones():
    from workloads.serving.requestlog import RequestLog

    for uri in ("ftp://host/logs", "hdfs://nn/logs", "wasbs://c@a.blob.core.windows.net/x"):
        with pytest.raises(StorageError, match=r"not supported\. Accepted: a directory .*s3://.*gs://.*abfss://"):
            ObjectStore().at(uri)
    with pytest.raises(StorageError, match="ftp:// is not supported"):
        RequestLog("ftp://host/logs", spool="/tmp/mlkit-test-unsupported")


def test_a_bundle_with_a_broken_spec_names_the_file(tmp_path, registered):
    import shutil

    bundle_dir, _ = registered
    shutil.copytree(bundle_dir, tmp_path / "b")
    spec = next((tmp_path / "b" / "features").glob("*/spec.json"))
    spec.write_text("{not json")
    with pytest.raises(BundleError, match=r"features/.*/spec.json is not JSON"):
        ModelBundle.read(tmp_path / "b")
    (tmp_path / "b" / "training" / "config.json").write_text(json.dumps({"feature_tables": []}))
    with pytest.raises(BundleError, match="no feature_tables list"):
        ModelBundle.read(Path(tmp_path / "b"))

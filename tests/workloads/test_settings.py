"""The settings module: a workload's team profile, and every way a profile can be wrong at start-up."""

from __future__ import annotations

import json

import pytest

from tests.charts.helm import PROFILE
from workloads.common.featurestore import FeatureStore, FeatureStoreError
from workloads.common.settings import Settings, SettingsError, load_profile, settings
from workloads.common.storage import ObjectStore


@pytest.fixture
def profile_file(tmp_path, monkeypatch):
    for name in ("MLKIT_PROFILE", "MLKIT_TEAM", "POD_NAMESPACE", "MLKIT_FEATURE_STORE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(PROFILE))
    settings.cache_clear()  # read once per process; these tests change what it would read
    yield path
    settings.cache_clear()


def test_no_profile_configured_or_mounted_is_a_local_run(profile_file):
    assert load_profile() is None
    assert Settings.load().store == ObjectStore.from_env()


def test_the_profile_names_the_store_and_the_roots(profile_file, monkeypatch):
    monkeypatch.setenv("MLKIT_PROFILE", str(profile_file))
    monkeypatch.setenv("MLKIT_TEAM", PROFILE["team"])
    monkeypatch.setenv("POD_NAMESPACE", PROFILE["namespace"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-secret")
    loaded = Settings.load()
    assert loaded.profile.team == PROFILE["team"]
    assert loaded.store.endpoint == PROFILE["objectStore"].get("endpoint")
    assert loaded.store.scheme == PROFILE["objectStore"]["scheme"]
    assert loaded.store.access_key_id == "from-the-secret"  # keys come from the environment, never the profile
    assert loaded.feature_store() == PROFILE["featureStore"]
    assert loaded.feature_store(PROFILE["featureStore"] + "/v2") == PROFILE["featureStore"] + "/v2"


@pytest.mark.parametrize(
    ("write", "env", "message"),
    [
        (None, {"MLKIT_TEAM": "churn"}, r"mlkit-team-profile, key profile\.json\) is missing: run in a team namespace"),
        ("{not json", {}, r"is not a team profile: "),
        (json.dumps({**PROFILE, "root": 3}), {}, r"is not a team profile: root: Input should be a valid string"),
        (json.dumps({**PROFILE, "extra": 1}), {}, r"is not a team profile: extra: unknown key"),
        (json.dumps(PROFILE), {"MLKIT_TEAM": "fraud"}, r"is team '.+'s, but this workload runs for team 'fraud'"),
        (json.dumps(PROFILE), {"POD_NAMESPACE": "fraud"}, r"is for namespace '.+', but this pod runs in 'fraud'"),
    ],
    ids=["missing", "unreadable", "wrong-type", "unknown-key", "other-team", "other-namespace"],
)
def test_a_bad_profile_stops_the_workload_naming_the_configmap(profile_file, monkeypatch, write, env, message):
    if write is None:
        profile_file.unlink()
    else:
        profile_file.write_text(write)
    monkeypatch.setenv("MLKIT_PROFILE", str(profile_file))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message) as caught:
        load_profile()
    assert str(profile_file) in str(caught.value)


def test_a_store_outside_the_team_root_or_of_an_unknown_scheme_is_refused(profile_file, monkeypatch, tmp_path):
    monkeypatch.setenv("MLKIT_PROFILE", str(profile_file))
    loaded = Settings.load()
    root = PROFILE["root"]
    with pytest.raises(SettingsError, match=rf"outside team '{PROFILE['team']}'.s root {root}"):
        loaded.feature_store(root.rsplit("/", 1)[0] + "/other/features")
    with pytest.raises(SettingsError, match=r"a local path on a cluster writes nowhere durable"):
        loaded.feature_store(str(tmp_path))
    with pytest.raises(SettingsError, match=r"unsupported scheme\. Accepted: a directory .*gs://"):
        loaded.feature_store("hdfs://namenode/features")


def test_the_feature_job_cli_names_a_missing_store(profile_file):
    with pytest.raises(FeatureStoreError, match="no feature store: pass --store, set MLKIT_FEATURE_STORE"):
        FeatureStore.open()

"""The production paths: the registered champion from an MLflow tracking server at start-up, or pinned
to a directory on the object store by export."""

import re

import numpy as np
import pytest
import requests

from mlkit_dev.local import LocalMlflow, LocalServer
from tests.serving.test_model_server import probabilities, row
from workloads.serving.artifacts import ModelSourceError, export
from workloads.serving.model import FeatureModel

ROWS = [row(i) for i in range(5)]


@pytest.fixture(scope="module")
def tracking(trained):
    with LocalMlflow(f"sqlite:///{trained / 'mlflow.db'}") as server:
        yield server


def predictions(model_uri: str) -> list[float]:
    model = FeatureModel(model_uri, request_log="")
    model.load()
    return np.concatenate([model.predict(r, None).reshape(-1) for r in ROWS]).tolist()


def test_the_microservice_serves_the_champion_from_the_registry(tracking, model_dir):
    with LocalServer("models:/churn-classifier@champion", MLFLOW_TRACKING_URI=tracking.url) as server:
        response = requests.post(
            f"{server.url}/api/v1.0/predictions", json={"jsonData": {"instances": ROWS}}, timeout=30
        )
    assert response.json()["meta"]["tags"] == {"model_name": "churn-classifier", "model_version": "1"}
    # The fixture wrote the same ONNX bytes to its directory: the registry path changes nothing.
    assert probabilities(response) == pytest.approx(predictions(str(model_dir)), abs=1e-6)


def test_a_version_number_works_too(tracking, model_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    assert predictions("models:/churn-classifier/1") == pytest.approx(predictions(str(model_dir)), abs=1e-6)


def test_export_pins_the_champion_to_s3_and_serving_starts_from_there_without_mlflow(
    tracking, model_dir, s3_env, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    pinned = export("models:/churn-classifier@champion", "s3://mlkit-test/teams/churn/models/churn-classifier")
    assert pinned == "s3://mlkit-test/teams/churn/models/churn-classifier/1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: the registry is not needed
    with LocalServer(pinned) as server:
        response = requests.post(
            f"{server.url}/api/v1.0/predictions", json={"jsonData": {"instances": ROWS}}, timeout=30
        )
    assert response.json()["meta"]["tags"] == {"model_name": "churn-classifier", "model_version": "1"}
    assert probabilities(response) == pytest.approx(predictions(str(model_dir)), abs=1e-6)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/churn-classifier", "'models:/churn-classifier': expected one of models:/<name>@<alias>"),
        ("s3://mlkit-test/nothing/here", "'s3://mlkit-test/nothing/here': nothing under that prefix"),
        (
            "ftp://bucket/models/churn",
            "'ftp://bucket/models/churn': store URI 'ftp://bucket/models/churn': the scheme ftp:// is not supported",
        ),
        ("/nonexistent/model", "'/nonexistent/model': nothing under that prefix"),
    ],
)
def test_an_unusable_model_uri_names_itself_and_the_accepted_forms(uri, message, tracking, s3_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    with pytest.raises(ModelSourceError, match=re.escape(message)):
        FeatureModel(uri, request_log="").load()

"""The production path: the registered champion, fetched from an MLflow tracking server at start-up."""

import numpy as np
import pytest
import requests

from tests.serving.test_model_server import probabilities, row
from workloads.serving.local import LocalMlflow, LocalServer
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


def test_a_malformed_model_uri_names_the_accepted_forms(tracking, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    with pytest.raises(ValueError, match=r"'models:/churn-classifier': expected models:/<name>@<alias>"):
        FeatureModel("models:/churn-classifier", request_log="").load()

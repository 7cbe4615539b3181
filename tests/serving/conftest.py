"""The real Seldon microservice on loopback, serving a small real model trained by the workloads environment.

seldon-core-microservice binds 0.0.0.0, so these tests run inside a private network namespace
(`make test` wraps them in `unshare -n`), where loopback is the only interface.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from mlkit_dev.local import LocalS3, LocalServer, only_loopback
from workloads.common.settings import settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def confined():
    if not only_loopback() and os.environ.get("MLKIT_ALLOW_PUBLIC_BIND") != "1":
        pytest.exit(
            "run the serving tests inside a private network namespace: `scripts/confined .venv/serving/bin/pytest tests/serving` (make test does this)",
            returncode=2,
        )


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A small real model, trained by the workloads environment (torch lives there, not in the Seldon
    environment): its artifacts under model/, and registered as the champion in the SQLite store mlflow.db."""
    out = tmp_path_factory.mktemp("trained")
    subprocess.run(
        [
            str(REPO / ".venv" / "workloads" / "bin" / "python"),
            "-m",
            "mlkit_dev.fixture",
            str(out / "model"),
            f"sqlite:///{out / 'mlflow.db'}",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


@pytest.fixture(scope="session")
def model_dir(trained) -> Path:
    return trained / "model"


class Server(LocalServer):
    def __init__(self, model_dir: Path, log_dir: Path, **env: str):
        # Four threads: the tests then also cover what threads share (metrics, the request log).
        super().__init__(str(model_dir), str(log_dir), threads=4, **env)
        self.log_dir = log_dir

    def predict(self, body) -> requests.Response:
        data = body if isinstance(body, str | bytes) else None
        return requests.post(
            f"{self.url}/api/v1.0/predictions",
            json=None if data is not None else body,
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    # A 1 MiB body limit (the chart's default is 8 MiB): the 413 test then sends a small body.
    with Server(model_dir, tmp_path_factory.mktemp("requests"), MLKIT_MAX_REQUEST_BYTES=str(2**20)) as running:
        yield running


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server (from the workloads environment) on loopback, with the bucket mlkit-test."""
    with LocalS3("mlkit-test") as running:
        yield running


@pytest.fixture
def s3_env(s3, monkeypatch):
    """The environment a served model reads its object store from, pointed at moto."""
    for name, value in {
        # A host name, not an IP: with virtual-hosted addressing the bucket would become a DNS label.
        "MLKIT_S3_ENDPOINT": s3.url.replace("127.0.0.1", "localhost"),
        "AWS_REGION": s3.store.region,
        "AWS_ACCESS_KEY_ID": s3.store.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.store.secret_access_key,
    }.items():
        monkeypatch.setenv(name, value)
    # A process reads its settings once; this one changes its environment between tests.
    settings.cache_clear()
    yield
    settings.cache_clear()

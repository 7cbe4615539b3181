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

from workloads.serving.local import LocalServer, only_loopback

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def confined():
    if not only_loopback() and os.environ.get("MLKIT_ALLOW_PUBLIC_BIND") != "1":
        pytest.exit(
            "run the serving tests inside a private network namespace: `unshare -n` (make test does this)", returncode=2
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
            "workloads.serving.fixture",
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
    with Server(model_dir, tmp_path_factory.mktemp("requests")) as running:
        yield running


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server (from the workloads environment) on loopback, with one bucket; its URL."""
    import boto3

    from workloads.serving.local import LocalProcess, free_port

    port = free_port()
    server = str(REPO / ".venv" / "workloads" / "bin" / "moto_server")
    with LocalProcess(
        [server, "-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/moto-api/", dict(os.environ)
    ):
        url = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        ).create_bucket(Bucket="mlkit-test")
        yield url

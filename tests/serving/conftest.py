"""The real Seldon microservice on loopback, serving a small real model trained by the workloads environment.

seldon-core-microservice binds 0.0.0.0, so these tests run inside a private network namespace
(`make test` wraps them in `unshare -n`), where loopback is the only interface.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def only_loopback() -> bool:
    # if_nameindex reads this process's network namespace (/sys/class/net shows the mounter's).
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def confined():
    if not only_loopback() and os.environ.get("MLKIT_ALLOW_PUBLIC_BIND") != "1":
        pytest.exit(
            "run the serving tests inside a private network namespace: `unshare -n` (make test does this)", returncode=2
        )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """Trained by the workloads environment (torch lives there, not in the Seldon environment)."""
    out = tmp_path_factory.mktemp("model")
    subprocess.run(
        [str(REPO / ".venv" / "workloads" / "bin" / "python"), "-m", "workloads.serving.fixture", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


class Server:
    def __init__(self, model_dir: Path, log_dir: Path, **env: str):
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        self.log_dir = log_dir
        environment = {
            **os.environ,
            "MLKIT_MODEL_URI": str(model_dir),
            "MLKIT_REQUEST_LOG": str(log_dir),
            "PYTHONPATH": str(REPO),
            **env,
        }
        command = [
            str(REPO / ".venv" / "serving" / "bin" / "seldon-core-microservice"),
            "workloads.serving.model.FeatureModel",
            "--http-port",
            str(self.http),
            "--grpc-port",
            str(self.grpc),
            "--metrics-port",
            str(self.metrics),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health/ping", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.3)
            if self.process.poll() is not None:
                raise RuntimeError(f"the microservice exited: {self.process.stderr.read().decode()[-2000:]}")
        raise RuntimeError("the microservice did not answer /health/ping in 90 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def predict(self, body, **kwargs) -> requests.Response:
        data = body if isinstance(body, str | bytes) else None
        return requests.post(
            f"{self.url}/api/v1.0/predictions",
            json=None if data is not None else body,
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=30,
            **kwargs,
        )

    def stop(self) -> None:
        # The gunicorn master and its workers share the session; the gRPC child may outlive SIGTERM.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    running = Server(model_dir, tmp_path_factory.mktemp("requests"))
    yield running
    running.stop()

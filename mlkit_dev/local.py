"""Run the Seldon microservice on this machine, and drive load at it: for tests, `make bench` and `make demo`.

seldon-core-microservice binds 0.0.0.0: callers run it inside a private network namespace
(`unshare -n`), where loopback is the only interface.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from mlkit_dev import REPO
from workloads.common.storage import ObjectStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def only_loopback() -> bool:
    # if_nameindex reads this process's network namespace (/sys/class/net shows the mounter's).
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


def run_confined(python: str, module: str, *args: str, timeout: float | None = None) -> dict:
    """``python -m module args`` inside scripts/confined (a private network namespace); the last line it prints,
    as JSON. RuntimeError with the tail of its stderr when it fails."""
    command = ["scripts/confined", python, "-m", module, *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


class LocalProcess:
    """A local server process: started in its own session, logged to a file, stopped with its whole group."""

    def __init__(self, command: list[str], health_url: str, env: dict[str, str], *, start_s: float = 90):
        self.health_url = health_url
        # The log goes to a file: a pipe nobody reads fills up (Seldon logs every 400), and then every
        # worker thread blocks on the logging lock.
        self.log = tempfile.NamedTemporaryFile(prefix=f"{Path(command[0]).name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + start_s
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {self.log_tail()}")
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{command[0]} did not answer {health_url} in {start_s:.0f} s: {self.log_tail()}")

    def ready(self) -> bool:
        """Whether the server answers its health URL (servers without one override this)."""
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):  # still starting
            return requests.get(self.health_url, timeout=2).status_code == 200
        return False

    def log_tail(self, chars: int = 2000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        # Servers fork workers into the same session (gunicorn, uvicorn); some children outlive SIGTERM.
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class LocalServer(LocalProcess):
    """The serving image's entry point (workloads.serving.server: Seldon's microservice under its supervisor)
    serving workloads.serving.model.FeatureModel, on ports of its own."""

    def __init__(
        self,
        model_uri: str,
        request_log: str = "",
        *,
        workers: int = 1,
        threads: int = 1,
        python: str = sys.executable,  # the serving environment's, when the caller runs in another
        **env: str,
    ):
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        environment = {
            **os.environ,
            "MLKIT_MODEL_URI": model_uri,
            "MLKIT_REQUEST_LOG": request_log,
            "PYTHONPATH": str(REPO),
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
            "PREDICTIVE_UNIT_METRICS_ENDPOINT": "/prometheus",  # what Seldon's operator sets in the cluster
            **env,
        }
        command = [python, "-m", "workloads.serving.server", "workloads.serving.model.FeatureModel"]
        command += ["--http-port", str(self.http), "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics)]
        super().__init__(command, f"{self.url}/health/ping", environment)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def processes(self) -> dict[str, list[int]]:
        """The microservice's processes: its gunicorn master, REST workers and metrics server (from /proc).

        The metrics server is the master's child with a child of its own (its gunicorn worker)."""
        [master] = children(self.process.pid)
        forked = children(master)
        return {
            "master": [master],
            "workers": [p for p in forked if not children(p)],
            "metrics": [p for p in forked if children(p)],
        }


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class LocalMlflow(LocalProcess):
    """An MLflow tracking server on loopback over a SQLite store, run from the workloads environment.

    The Seldon environment carries only mlflow-skinny (a client); the server needs full MLflow.
    """

    def __init__(self, backend_store_uri: str):
        self.port = free_port()
        executable = os.environ.get("MLKIT_MLFLOW", str(REPO / ".venv" / "workloads" / "bin" / "mlflow"))
        command = [executable, "server", "--backend-store-uri", backend_store_uri]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        super().__init__(command, f"{self.url}/health", {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalS3(LocalProcess):
    """moto's S3 server on loopback (from the workloads environment) with one bucket: an S3-compatible
    endpoint for tests, and the ObjectStore that reaches it."""

    def __init__(self, bucket: str):
        self.port = free_port()
        command = [str(REPO / ".venv" / "workloads" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        super().__init__(command, f"{self.url}/moto-api/", dict(os.environ))
        self.store = ObjectStore(
            scheme="s3",
            endpoint=self.url,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
            path_style=True,
        )
        self.store.s3_client().create_bucket(Bucket=bucket)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class LoadResult:
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> count; 0 for a connection error
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def summary(self) -> dict:
        return {
            "requests": len(self.latencies_ms),
            "p50_ms": round(self.percentile(50), 3),
            "p95_ms": round(self.percentile(95), 3),
            "p99_ms": round(self.percentile(99), 3),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 3),
            "requests_per_s": round(self.per_second, 1),
            "statuses": self.statuses,
        }


def drive(
    url: str,
    bodies: list[bytes | requests.Request],
    *,
    concurrency: int,
    total: int,
    deadline_s: float = 120,
    on_answer: Callable[[int, int, float], None] | None = None,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Send bodies round-robin: a bounded count, a bounded time, loopback only. A body is POSTed as JSON to
    the predictions endpoint; a requests.Request (any method, path relative to url) is sent as it is.
    on_answer(i, status, monotonic time) sees each answer as it arrives; setting stop ends the load early."""
    assert url.startswith("http://127.0.0.1:"), "load is only ever sent to this machine's loopback"
    endpoint = f"{url}/api/v1.0/predictions"
    local = threading.local()  # one keep-alive session per client thread: Session is not thread-safe

    def post(i: int) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body = bodies[i % len(bodies)]
        try:
            if isinstance(body, requests.Request):
                prepared = local.session.prepare_request(
                    requests.Request(
                        body.method,
                        url + body.url,
                        headers=body.headers,
                        data=body.data,
                        files=body.files,
                        json=body.json,
                    )
                )
                status = local.session.send(prepared, timeout=30).status_code
            else:
                status = local.session.post(
                    endpoint, data=body, headers={"Content-Type": "application/json"}, timeout=30
                ).status_code
        except requests.RequestException:
            status = 0
        if on_answer:
            on_answer(i, status, time.monotonic())
        return status

    return measure(post, concurrency=concurrency, total=total, deadline_s=deadline_s, stop=stop)


def measure(
    call: Callable[[int], int],
    *,
    concurrency: int,
    total: int,
    deadline_s: float = 120,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Run call(i) for i in range(total) from `concurrency` threads; each returns a status, each is timed.
    Calls not started by the deadline, or once stop is set, are skipped and not counted."""
    result, stop_at = LoadResult(), time.monotonic() + deadline_s

    def one(i: int) -> tuple[int, float]:
        if time.monotonic() > stop_at or (stop is not None and stop.is_set()):
            return -1, 0.0
        started = time.perf_counter()
        status = call(i)
        return status, (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for status, ms in pool.map(one, range(total)):
            if status >= 0:
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.latencies_ms.append(ms)
    result.seconds = time.perf_counter() - started
    return result

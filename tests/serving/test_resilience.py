"""The serving pod under what a cluster does to it: a worker SIGKILLed mid-load (an OOM kill), its metrics
server killed, SIGTERM to PID 1 (a scale-down), and the ports it opens. The real microservice, confined
to loopback, with the chart's default of 2 workers x 1 thread."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from mlkit_dev.local import LocalServer, children, drive
from tests.serving.test_model_server import probabilities, row


def descendants(pid: int) -> list[int]:
    return [d for c in children(pid) for d in (c, *descendants(c))]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def logged_ids(log_dir: Path) -> set[str]:
    return {
        json.loads(line)["inputs"].get("customerID")
        for path in log_dir.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    }


def predict(server, body) -> requests.Response:
    return requests.post(f"{server.url}/api/v1.0/predictions", json=body, timeout=10)


@pytest.fixture
def chart_sized(model_dir, tmp_path):
    with LocalServer(
        str(model_dir), str(tmp_path / "requests"), workers=2, threads=1, MLKIT_REQUEST_LOG_FLUSH_SECONDS="1"
    ) as running:
        running.log_dir = tmp_path / "requests"
        yield running


def test_workers_killed_mid_load_do_not_wedge_the_pod_nor_lose_answered_requests(chart_sized):
    """Seldon's metrics Manager lock died with a killed worker and every request then timed out, for good."""
    server, kills = chart_sized, []
    # Enough bodies to outlast the kills on any machine; the load stops once the last kill has been recovered
    # from. Each request carries its own id as the entity key (accepted and ignored by the model, kept in the log).
    total = 20_000
    bodies = [json.dumps({"jsonData": row(i % 20, customerID=f"req-{i}")}).encode() for i in range(total)]
    answers: list[tuple[int, int, float]] = []
    stop = threading.Event()
    load = threading.Thread(
        target=lambda: drive(
            server.url,
            bodies,
            concurrency=20,
            total=total,
            deadline_s=90,
            on_answer=lambda i, status, at: answers.append((i, status, at)),
            stop=stop,
        )
    )
    load.start()
    for _ in range(3):  # three OOM-like kills, 1.5 s apart, each of a worker busy with the load
        while len(answers) < 150 * (len(kills) + 1) and load.is_alive():
            time.sleep(0.05)
        assert load.is_alive(), f"the load ended after {len(answers)} answers, before kill {len(kills) + 1}"
        os.kill(server.processes()["workers"][0], signal.SIGKILL)
        kills.append(time.monotonic())
        time.sleep(1.5)
    # Keep the load on until 150 answers came after the last kill (or the deadline says the pod is wedged).
    while sum(1 for _, status, at in list(answers) if status == 200 and at > kills[-1]) < 150 and load.is_alive():
        time.sleep(0.05)
    stop.set()
    load.join(timeout=60)
    assert not load.is_alive(), "requests still in flight 60 s after the load stopped: the pod is wedged"
    statuses = {s: sum(1 for _, t, _ in answers if t == s) for s in {t for _, t, _ in answers}}
    assert set(statuses) <= {200, 0} and statuses.get(0, 0) <= len(kills), statuses  # 0: in flight on a killed worker
    recovered = [
        min((at for _, status, at in answers if status == 200 and at > k), default=float("inf")) - k for k in kills
    ]
    print(f"\nworker kills: {len(answers)} requests, statuses {statuses}, first 200 after each kill {recovered} s")
    assert max(recovered) < 3, f"no answer for {max(recovered):.1f} s after a kill"
    assert requests.get(f"{server.url}/health/status", timeout=5).status_code == 200
    assert len(server.processes()["workers"]) == 2  # gunicorn replaced each
    # Every answered request is in the request log: a killed worker's spool is shipped by its successor.
    answered = {f"req-{i}" for i, status, _ in answers if status == 200}
    deadline = time.monotonic() + 20
    while answered - logged_ids(server.log_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not answered - logged_ids(server.log_dir), (
        f"{len(answered - logged_ids(server.log_dir))} answered, not logged"
    )


def test_killing_the_metrics_server_leaves_predictions_answering(chart_sized):
    """A dead metrics Manager made every prediction a 500 while /health/ping stayed 200."""
    server = chart_sized
    processes = server.processes()
    # The master's children are its two workers and the metrics server: no multiprocessing.Manager.
    assert len(processes["workers"]) == 2 and len(processes["metrics"]) == 1, processes
    for pid in (*processes["metrics"], *children(processes["metrics"][0])):
        os.kill(pid, signal.SIGKILL)
    answers = [predict(server, {"jsonData": row(i)}) for i in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    assert requests.get(f"{server.url}/health/status", timeout=5).status_code == 200


def test_sigterm_to_pid_1_stops_every_process_within_seconds_and_writes_the_request_log(model_dir, tmp_path):
    """The kubelet signals PID 1 only; Seldon's gRPC and metrics processes never heard of it (alive after 35 s)."""
    with LocalServer(str(model_dir), str(tmp_path), workers=2, MLKIT_REQUEST_LOG_FLUSH_SECONDS="600") as server:
        for i in range(3):
            assert probabilities(predict(server, {"jsonData": row(i)}))
        tree = [server.process.pid, *descendants(server.process.pid)]
        assert len(tree) >= 5, tree  # supervisor, gunicorn master, 2 workers, metrics server (+ its worker)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        while any(alive(p) for p in tree) and time.monotonic() - started < 30:
            time.sleep(0.05)
        stopped = time.monotonic() - started
        left = [p for p in tree if alive(p)]
    print(f"\nSIGTERM to PID 1: {len(tree)} processes gone in {stopped:.2f} s")
    assert not left and stopped < 5, f"{left} alive {stopped:.1f} s after SIGTERM"
    records = [json.loads(line) for path in tmp_path.rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["prediction"] * 3  # the batch waited up to 600 s: written on the way out


def test_the_grpc_port_stays_closed(chart_sized):
    """The graph speaks REST; Seldon opened its gRPC port all the same."""
    assert probabilities(predict(chart_sized, {"jsonData": row()}))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", chart_sized.grpc), timeout=2).close()

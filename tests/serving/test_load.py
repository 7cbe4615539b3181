"""A bounded load on loopback: 30 % malformed requests of every shape, and one worker SIGKILLed mid-run.

Every answer is a 200 or the 4xx its input deserves, never a 5xx; the pod answers again within seconds.
The chart's default server: 2 workers x 1 thread.
"""

import itertools
import json
import os
import signal
import threading
import time

import pytest
import requests

from mlkit_dev.local import LocalServer, drive
from tests.serving.test_model_server import FEATURES, MALFORMED_HTTP, row

VALID = [json.dumps({"jsonData": row(i)}).encode() for i in range(10)]
VALID += [
    json.dumps({"data": {"names": FEATURES, "ndarray": [[row(i)[f] for f in FEATURES] for i in range(5)]}}).encode()
]
MALFORMED = [
    b"",
    b"{not json",
    b"[]",
    json.dumps({"jsonData": row(0, tenure="x")}).encode(),
    json.dumps({"jsonData": row(0, Contract="Lifetime")}).encode(),
    json.dumps({"jsonData": {"tenure": 3}}).encode(),
    json.dumps({"data": {"names": ["tenure"], "ndarray": [[1, 2, 3]]}}).encode(),
    json.dumps({"data": {"ndarray": "not rows"}}).encode(),
    json.dumps({"jsonData": row(0, MonthlyCharges=None)}).encode(),
    json.dumps({"jsonData": row(0, TotalCharges=1e308)}).encode(),
    json.dumps({"jsonData": row(0, TotalCharges=float("nan"))}).encode(),
]
MALFORMED += [requests.Request(method, path, **kwargs) for method, path, kwargs, _, _ in MALFORMED_HTTP.values()]


@pytest.fixture(scope="module")
def chart_sized(model_dir):
    with LocalServer(str(model_dir), workers=2, threads=1, MLKIT_MAX_REQUEST_BYTES=str(2**20)) as running:
        yield running


def test_mixed_load_with_a_worker_killed_ends_with_zero_server_errors(chart_sized):
    # 7 valid and 3 malformed in every 10; every malformed shape recurs.
    bodies = [
        VALID[i % len(VALID)] if i % 10 < 7 else MALFORMED[(i // 10 * 3 + i % 10 - 7) % len(MALFORMED)]
        for i in range(1000)
    ]
    answers: list[tuple[int, float]] = []
    load = threading.Thread(
        target=lambda: drive(
            chart_sized.url,
            bodies,
            concurrency=16,
            total=1000,
            on_answer=lambda i, status, at: answers.append((status, at)),
        )
    )
    load.start()
    while len(answers) < 300:
        time.sleep(0.02)
    os.kill(chart_sized.processes()["workers"][0], signal.SIGKILL)
    killed_at = time.monotonic()
    load.join()
    statuses = {s: sum(1 for t, _ in answers if t == s) for s in sorted({t for t, _ in answers})}
    recovered = min(at for status, at in answers if status == 200 and at > killed_at) - killed_at
    times = sorted(at for _, at in answers)
    gap = max(b - a for a, b in itertools.pairwise(times))
    print(
        f"\nload: {len(answers)} requests, statuses {statuses}, first 200 {recovered:.2f} s after the kill, longest gap between answers {gap:.2f} s"
    )
    assert len(answers) == 1000, statuses  # every request answered before the deadline
    assert not [s for s in statuses if s >= 500], statuses  # no 5xx
    assert set(statuses) <= {0, 200, 400, 404, 405, 413}, statuses
    assert statuses.get(0, 0) <= 1, statuses  # at most the one request in flight on the killed worker
    assert statuses[200] >= 650 and sum(n for s, n in statuses.items() if 400 <= s < 500) >= 250
    assert recovered < 3 and gap < 3
    after = requests.post(f"{chart_sized.url}/api/v1.0/predictions", json={"jsonData": row()}, timeout=30)
    assert after.status_code == 200  # and it still serves

"""A bounded load run on loopback, malformed and valid requests mixed: every answer is a 200 or a 400, never a 5xx."""

import json

import pytest
import requests

from tests.serving.test_model_server import FEATURES, row
from workloads.serving.local import LocalServer, drive

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
]


@pytest.fixture(scope="module")
def sized_server(model_dir):
    """Two workers of eight threads: as many handlers as the load has clients."""
    with LocalServer(str(model_dir), workers=2, threads=8) as running:
        yield running


def test_mixed_load_ends_with_zero_server_errors(sized_server):
    bodies = [b for pair in zip(VALID, MALFORMED, strict=False) for b in pair] + VALID[len(MALFORMED) :]
    result = drive(sized_server.url, bodies, concurrency=16, total=600)
    assert sum(result.statuses.values()) == 600, result.statuses  # every request answered before the deadline
    assert set(result.statuses) <= {200, 400}, result.statuses  # no 5xx, no connection errors
    assert result.statuses[400] >= 250 and result.statuses[200] >= 250
    after = requests.post(f"{sized_server.url}/api/v1.0/predictions", json={"jsonData": row()}, timeout=30)
    assert after.status_code == 200  # and it still serves

"""Real requests against the real Seldon microservice: valid, malformed, feedback, metrics, request log."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mlkit_dev.fixture import example_rows
from tests.serving.conftest import Server

ROWS = example_rows(20)
FEATURES = list(ROWS[0])


def row(i: int = 0, **changes) -> dict:
    return {**ROWS[i], **changes}


def probabilities(response: requests.Response) -> list[float]:
    """Seldon answers in the request's form: a tensor for JSON, an ndarray for ndarray."""
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return data["tensor"]["values"] if "tensor" in data else [v for r in data["ndarray"] for v in r]


def test_single_named_json_prediction_carries_the_model_version(server):
    response = server.predict({"jsonData": row()})
    [p] = probabilities(response)
    assert 0.0 < p < 1.0
    assert response.json()["meta"]["tags"] == {"model_name": "churn-classifier", "model_version": "fixture-1"}


def test_batch_json_and_ndarray_agree(server):
    rows = [row(i) for i in range(10)]
    from_json = probabilities(server.predict({"jsonData": {"instances": rows}}))
    ndarray = {"data": {"names": FEATURES, "ndarray": [[r[f] for f in FEATURES] for r in rows]}}
    from_ndarray = probabilities(server.predict(ndarray))
    assert len(from_json) == 10 and from_json == pytest.approx(from_ndarray, abs=1e-6)
    single = probabilities(server.predict({"jsonData": rows[3]}))
    assert single[0] == pytest.approx(from_json[3], abs=1e-6)  # batching changes nothing


@pytest.mark.parametrize(
    ("body", "names_the_problem"),
    [
        ({"jsonData": {k: v for k, v in row().items() if k != "tenure"}}, "tenure: required value is missing"),
        ({"jsonData": row(tenure="twelve")}, "tenure: 'twelve' is not an integer"),
        ({"jsonData": row(MonthlyCharges=[1, 2])}, "MonthlyCharges"),
        ({"jsonData": row(Contract="Three year")}, "Contract: 'Three year' is not one of"),
        ({"jsonData": row(colour="blue")}, "unknown feature(s) ['colour']"),
        ({"data": {"names": FEATURES[:3], "ndarray": [[1, 2]]}}, "data.names: 3 names for rows of 2 values"),
        ({"jsonData": [1, 2, 3]}, "data.names: 0 names for rows of 3 values"),
        ("", "Can't find JSON in data"),
        ("{not json", "Can't find JSON in data"),
        # Non-finite once scaled: the model answered NaN with a 200 (and counted it as class 0).
        ({"jsonData": row(TotalCharges=1e308)}, "TotalCharges: 1e+308 is out of range (not finite once scaled)"),
        # A NaN the client sent is named as such, not taken for a missing value.
        (json.dumps({"jsonData": row(TotalCharges=float("nan"))}), "TotalCharges: 'NaN' is not a number"),
        (json.dumps({"jsonData": row(MonthlyCharges=float("inf"))}), "MonthlyCharges: 'inf' is not a number"),
        (
            {"jsonData": {"instances": [row(0), {k: v for k, v in row(1).items() if k != "tenure"}]}},
            "row 1: tenure: required value is missing",
        ),
    ],
    ids=[
        "missing",
        "wrong-type",
        "wrong-shape-value",
        "unknown-category",
        "unknown-field",
        "wrong-shape",
        "not-an-object",
        "empty",
        "not-json",
        "not-finite-once-scaled",
        "nan",
        "infinity",
        "missing-in-one-row",
    ],
)
def test_bad_input_is_a_400_naming_the_problem_and_the_server_keeps_serving(server, body, names_the_problem):
    response = server.predict(body)
    assert response.status_code == 400, response.text
    assert names_the_problem in response.json()["status"]["info"]
    assert probabilities(server.predict({"jsonData": row()}))  # still serving


def multipart(fields: dict[str, tuple]) -> dict:
    """requests' keyword arguments for a multipart/form-data body."""
    return {"files": fields}


DEEP = "[" * 10_000 + "]" * 10_000


# Each of these was a 500 from Seldon's catch-all handler, before the model saw the request.
MALFORMED_HTTP = {
    "json-nested-10k-deep": (
        "POST",
        "/api/v1.0/predictions",
        {"data": '{"jsonData": ' + DEEP + "}", "headers": {"Content-Type": "application/json"}},
        400,
        "request body: JSON nested too deeply",
    ),
    "400-digit-integer": (
        "POST",
        "/api/v1.0/predictions",
        # pandas' type inference overflowed converting it to float
        {
            "data": json.dumps({"jsonData": row(MonthlyCharges=10**400)}),
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "MonthlyCharges: '1000000",
    ),
    "ragged-ndarray": (
        "POST",
        "/api/v1.0/predictions",
        {"json": {"data": {"names": FEATURES[:2], "ndarray": [[1, 2], [3]]}}},
        400,
        "request data",
    ),
    "tensor-shape-mismatch": (
        "POST",
        "/api/v1.0/predictions",
        {"json": {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3]}}}},
        400,
        "cannot reshape array of size 3",
    ),
    "form-json-not-json": (
        "POST",
        "/api/v1.0/predictions",
        {"data": {"json": "{not json"}},
        400,
        "request body: a form field or query parameter is not JSON",
    ),
    "query-json-not-json": (
        "GET",
        "/predict?json=%7Bnot",
        {},
        400,
        "request body: a form field or query parameter is not JSON",
    ),
    "multipart-json-not-json": (
        "POST",
        "/api/v1.0/predictions",
        multipart({"json": (None, "{not json")}),
        400,
        "request body: a form field or query parameter is not JSON",
    ),
    "multipart-data-not-json": (
        "POST",
        "/api/v1.0/predictions",
        multipart({"data": (None, "[1, 2")}),
        400,
        "request body: a form field or query parameter is not JSON",
    ),
    "multipart-bytes-not-text": (
        "POST",
        "/api/v1.0/predictions",
        multipart({"strData": ("x.bin", b"\xff\xfe\xfa")}),
        400,
        "request body: a multipart file is not UTF-8 text",
    ),
    # Seldon's app also serves static files from "/": a GET of any path is a 404, other methods a 405.
    "get-predictions": ("GET", "/api/v1.0/predictions", {}, 404, "URL was not found"),
    "unknown-path": ("POST", "/api/v1.0/nowhere", {"json": {}}, 405, "method is not allowed"),
    "unknown-method": ("PATCH", "/api/v1.0/predictions", {"json": {}}, 405, "method is not allowed"),
    "over-the-size-limit": (
        "POST",
        "/api/v1.0/predictions",
        {"data": b"[" + b"1," * 600_000 + b"1]", "headers": {"Content-Type": "application/json"}},
        413,
        "at most 1048576 (MLKIT_MAX_REQUEST_BYTES)",
    ),
}


@pytest.mark.parametrize("case", MALFORMED_HTTP.values(), ids=MALFORMED_HTTP.keys())
def test_malformed_requests_are_a_4xx_naming_the_problem(server, case):
    method, path, kwargs, status, names_the_problem = case
    response = requests.request(method, f"{server.url}{path}", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert names_the_problem in response.json()["status"]["info"], response.text
    assert probabilities(server.predict({"jsonData": row()}))  # still serving


def test_readiness_runs_a_prediction_and_a_metrics_update(server):
    def checks() -> float:
        text = requests.get(f"http://127.0.0.1:{server.metrics}/prometheus", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("mlkit_health_checks_total")
        )

    before = checks()
    response = requests.get(f"{server.url}/health/status", timeout=10)
    assert response.status_code == 200, response.text
    [p] = probabilities(response)
    assert 0.0 < p < 1.0 and checks() == before + 1


def test_feedback_is_stored_for_retraining(server):
    # Seldon passes feedback features on from a `data` payload (names + ndarray).
    request = {"data": {"names": FEATURES, "ndarray": [[row(1)[f] for f in FEATURES]]}}
    response = requests.post(
        f"{server.url}/api/v1.0/feedback",
        json={"request": request, "truth": {"data": {"ndarray": [[1]]}}, "reward": 1.0},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    records = wait_for_records(server, lambda r: r["kind"] == "feedback")
    assert records[-1]["truth"] == [[1.0]] and records[-1]["reward"] == 1.0
    assert float(records[-1]["inputs"][0]["tenure"]) == row(1)["tenure"]  # Seldon hands mixed ndarrays over as text


def test_requests_and_predictions_reach_the_request_log(server):
    marker = 987.65
    [p] = probabilities(server.predict({"jsonData": row(2, MonthlyCharges=marker)}))
    records = wait_for_records(
        server, lambda r: r["kind"] == "prediction" and r["inputs"].get("MonthlyCharges") == marker
    )
    assert records[-1]["probability"] == pytest.approx(p, abs=1e-6) and records[-1]["version"] == "fixture-1"


def test_metrics_are_scraped_with_the_model_version(server):
    probabilities(server.predict({"jsonData": {"instances": [row(i) for i in range(5)]}}))
    text = requests.get(f"http://127.0.0.1:{server.metrics}/prometheus", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith("mlkit_predictions_total")]
    assert lines and all(
        'registered_version="fixture-1"' in line and 'registered_model="churn-classifier"' in line for line in lines
    )
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) >= 5


def predictions_counted(server) -> float:
    text = requests.get(f"http://127.0.0.1:{server.metrics}/prometheus", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("mlkit_predictions_total")
    )


def test_concurrent_requests_are_each_counted_once(server):
    """Metrics travel with each response, not through state shared by the server's threads."""
    before = predictions_counted(server)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: server.predict({"jsonData": {"instances": [row(i % 20)] * 3}}), range(64)))
    assert all(a.status_code == 200 for a in answers)
    assert predictions_counted(server) - before == 64 * 3


def wait_for_records(server, predicate, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = [
            json.loads(line)
            for path in sorted(server.log_dir.rglob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]
        found = [r for r in records if predicate(r)]
        if found:
            return found
        time.sleep(0.3)
    pytest.fail("no matching record reached the request log")


def test_stopping_the_server_writes_what_the_request_log_still_holds(model_dir, tmp_path):
    """Scale-down sends SIGTERM; records waiting for their batch are written, not lost."""
    with Server(model_dir, tmp_path, MLKIT_REQUEST_LOG_FLUSH_SECONDS="600") as server:
        for i in range(3):
            probabilities(server.predict({"jsonData": row(i)}))
        time.sleep(1)
        assert not list(tmp_path.rglob("*.jsonl"))  # still queued: the batch waits up to 600 s
    records = [json.loads(line) for path in tmp_path.rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["prediction"] * 3

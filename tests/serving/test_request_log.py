"""The request log never blocks or fails a prediction: a full spool drops and counts; a killed worker's spool survives."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from workloads.serving.requestlog import RequestLog

REPO = Path(__file__).resolve().parents[2]


def test_batches_reach_the_destination(tmp_path):
    log = RequestLog(str(tmp_path), batch_size=10, flush_seconds=0.2)
    for i in range(25):
        assert log.put({"i": i})
    log.close()
    lines = [line for path in tmp_path.rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == 25 and log.written == 25 and log.dropped == 0


def test_a_full_queue_drops_without_waiting_and_counts(tmp_path):
    release = threading.Event()
    log = RequestLog(str(tmp_path), capacity=5, batch_size=1, flush_seconds=0.05, writer=lambda batch: release.wait())
    results = []
    putter = threading.Thread(target=lambda: results.extend(log.put({"i": i}) for i in range(100)))
    putter.start()
    putter.join(timeout=60)  # a liveness bound, not a speed claim: a blocking put would never return
    assert not putter.is_alive() and not release.is_set(), "put waited on the stuck writer"
    assert sum(results) <= 6 and log.dropped == 100 - sum(results)
    release.set()
    log.close()


def test_a_failing_writer_is_retried_and_loses_nothing(tmp_path):
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise OSError("store unavailable")

    log = RequestLog(str(tmp_path), batch_size=5, flush_seconds=0.05, writer=flaky)
    for i in range(10):
        log.put({"i": i})
        time.sleep(0.01)
    log.close()
    assert log.failed_batches == 1 and log.written == sum(calls[1:]) == 10


def test_a_killed_process_spool_is_shipped_by_the_next_one(tmp_path):
    """A worker SIGKILLed after answering leaves its records in the spool; its successor ships them."""
    spool, out = tmp_path / "spool", tmp_path / "out"
    child = f"""
import os, sys; sys.path.insert(0, {str(REPO)!r})
from workloads.serving.requestlog import RequestLog
log = RequestLog({str(out)!r}, spool={str(spool)!r}, flush_seconds=600)
for i in range(5):
    log.put({{"i": i}})
os.kill(os.getpid(), 9)
"""
    subprocess.run([sys.executable, "-c", child], check=False, timeout=60)
    assert not list(out.rglob("*.jsonl"))  # killed before its batch was due
    successor = RequestLog(str(out), spool=str(spool), flush_seconds=0.1)
    successor.close()
    lines = [json.loads(line) for path in out.rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert sorted(r["i"] for r in lines) == list(range(5)) and not list(spool.iterdir())


def test_an_s3_prefix_receives_the_batches(s3, s3_env, tmp_path):
    """The cluster's form: an s3:// prefix on an S3-compatible endpoint (moto's server here)."""
    log = RequestLog(
        "s3://mlkit-test/teams/churn/serving/requests", spool=str(tmp_path), batch_size=10, flush_seconds=0.2
    )
    for i in range(25):
        log.put({"i": i})
    log.close()
    client = s3.store.s3_client()
    listed = client.list_objects_v2(Bucket="mlkit-test", Prefix="teams/churn/serving/requests/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert keys and all(k.endswith(".jsonl") for k in keys)
    lines = [line for k in keys for line in client.get_object(Bucket="mlkit-test", Key=k)["Body"].read().splitlines()]
    assert sorted(json.loads(line)["i"] for line in lines) == list(range(25)) and log.failed_batches == 0

"""The request log never blocks or fails a prediction: a full queue drops and counts."""

import json
import threading
import time

from workloads.serving.requestlog import RequestLog


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


def test_a_failing_writer_loses_only_its_batch(tmp_path):
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
    assert log.failed_batches == 1 and log.written == sum(calls[1:])


def test_an_s3_prefix_receives_the_batches(s3, s3_env):
    """The cluster's form: an s3:// prefix on an S3-compatible endpoint (moto's server here)."""
    log = RequestLog("s3://mlkit-test/teams/churn/serving/requests", batch_size=10, flush_seconds=0.2)
    for i in range(25):
        log.put({"i": i})
    log.close()
    client = s3.store.s3_client()
    listed = client.list_objects_v2(Bucket="mlkit-test", Prefix="teams/churn/serving/requests/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert keys and all(k.endswith(".jsonl") for k in keys)
    lines = [line for k in keys for line in client.get_object(Bucket="mlkit-test", Key=k)["Body"].read().splitlines()]
    assert sorted(json.loads(line)["i"] for line in lines) == list(range(25)) and log.failed_batches == 0

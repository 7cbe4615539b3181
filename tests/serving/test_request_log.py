"""The request log never blocks or fails a prediction: a full queue drops and counts."""

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

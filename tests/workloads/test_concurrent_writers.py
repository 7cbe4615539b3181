"""Two feature jobs writing one table at once: both commit, or the one that cannot wait fails in one line.

For real where it matters: two feature-job processes (Python and their JVMs, Spark and Hudi) on one
local store. The first is frozen (SIGSTOP) while its commit is inflight, exactly the moment at which,
without the kit's table lock, the second job's Hudi write rolls the first one's commit back and the
first dies with a Java traceback when it resumes. The object-store lease runs against moto (S3), fake-gcs-server (GCS) and Azurite (Azure Blob) on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlkit_dev.demo_data import TELCO, synthetic_batch
from mlkit_dev.storage_emulators import start
from tests.workloads.test_crash_recovery import SPEC, wait_for_write_in_progress
from workloads.common.featurestore import FeatureStore
from workloads.common.specs import load_spec
from workloads.common.tablelock import TableLock, TableLocked, lock_uri
from workloads.features.job import JobError, parse_event_time, run_batch

REPO = Path(__file__).resolve().parents[2]
TABLE = "customer_features"


def feature_job(store: Path, source: Path, event_time: str, log: Path, **env: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "workloads.features", "ingest", "--spec", str(SPEC), "--input", str(source)]
    command += ["--store", str(store), "--event-time", event_time, "--json"]
    environment = {**os.environ, "MLKIT_SPARK_SHUFFLE_PARTITIONS": "2", **env}
    # stderr to a file, read while the job runs (a pipe nobody reads could fill and block it).
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        start_new_session=True,
    )


def reports(stdout: str) -> list[dict]:
    # --json's document; the JVM may print a warning line before it (Hudi's size estimator attaching itself).
    lines = stdout.splitlines()
    return json.loads("\n".join(lines[lines.index("[") :]))


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def test_two_jobs_writing_one_table_at_once_both_commit(spark, tmp_path):
    store_dir = tmp_path / "store"
    store = FeatureStore(str(store_dir))
    [seed] = run_batch(spark, store, [load_spec(SPEC)], str(TELCO), event_time=parse_event_time("2026-01-01"))
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    big = synthetic_batch(tmp_path / "big.csv", rows=20_000)
    first = feature_job(store_dir, big, "2026-02-01", first_log)
    second = None
    try:
        wait_for_write_in_progress(store_dir / TABLE, {seed.instant}, first)
        os.killpg(first.pid, signal.SIGSTOP)  # frozen mid-commit, holding whatever it holds
        other = synthetic_batch(tmp_path / "other.csv", rows=5_000, seed=1)
        second = feature_job(store_dir, other, "2026-03-01", second_log)
        # The second job either queues behind the first (and says so) or, without a lock, writes and exits.
        wait_until(
            lambda: "waiting for table customer_features" in second_log.read_text() or second.poll() is not None,
            timeout=300,
            what="the second job to reach the table",
        )
        os.killpg(first.pid, signal.SIGCONT)
        first_out, _ = first.communicate(timeout=600)
        second_out, _ = second.communicate(timeout=600)
    finally:
        for job in (first, second):
            if job and job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
    assert (first.returncode, second.returncode) == (0, 0), (
        f"first: {first_log.read_text()[-1500:]}\nsecond: {second_log.read_text()[-1500:]}"
    )
    waiting = [line for line in second_log.read_text().splitlines() if line.startswith("waiting for table")]
    assert len(waiting) == 1 and f":{first.pid} (since " in waiting[0], waiting  # names the first job
    [one], [two] = reports(first_out), reports(second_out)
    assert [c.instant for c in store.commits(TABLE)] == [seed.instant, one["instant"], two["instant"]]
    assert one["written"] == 20_000 and two["written"] > 4_900  # a resampled row may equal its 02-01 version
    history = store.read(TABLE)
    assert len(history) == seed.written + one["written"] + two["written"]
    assert not history.duplicated(["customerID", "event_time"]).any()


def test_a_job_that_cannot_get_the_table_fails_in_one_line_and_its_rerun_commits(spark, tmp_path):
    store = FeatureStore(str(tmp_path / "store"))
    spec = load_spec(SPEC)
    when = parse_event_time("2026-01-01")
    with TableLock(store.root, TABLE, wait_s=0):
        os.environ["MLKIT_TABLE_LOCK_WAIT_S"] = "1"
        try:
            with pytest.raises(JobError) as refused:
                run_batch(spark, store, [spec], str(TELCO), event_time=when)
        finally:
            del os.environ["MLKIT_TABLE_LOCK_WAIT_S"]
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"table {TABLE} is being written by another job, ")
    assert message.endswith(
        "; waited 1 s (MLKIT_TABLE_LOCK_WAIT_S); nothing was written: run this job again (a batch re-run is idempotent)"
    )
    assert f":{os.getpid()} (since " in message  # names the holder
    assert not store.exists(TABLE)
    [report] = run_batch(spark, store, [spec], str(TELCO), event_time=when)
    assert report.written == 7043 and [c.instant for c in store.commits(TABLE)] == [report.instant]


def test_a_bad_wait_setting_is_one_line(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("MLKIT_TABLE_LOCK_WAIT_S", "soon")
    store = FeatureStore(str(tmp_path / "store"))
    with pytest.raises(JobError, match=r"^MLKIT_TABLE_LOCK_WAIT_S='soon' is not a number of seconds \(e.g. 600\)$"):
        run_batch(spark, store, [load_spec(SPEC)], str(TELCO), event_time=parse_event_time("2026-01-01"))


# --- the lease on each object store: S3 (moto), GCS (fake-gcs-server), Azure Blob (Azurite) ----------


@pytest.fixture(scope="module", params=["s3", "gs", "az"])
def lease_store(request, s3_store, gcs_store):
    """(root URI, ObjectStore) of one emulated object store; each test gets its own root."""
    if request.param == "s3":
        yield "s3://mlkit-test", s3_store
    elif request.param == "gs":
        yield "gs://mlkit-test", gcs_store
    else:
        emulator = start("az")
        yield emulator.root, emulator.store
        emulator.stop()


@pytest.fixture
def lease_root(lease_store, request):
    root, store = lease_store
    return f"{root}/{request.node.name.replace('[', '-').rstrip(']')}/features", store


def test_a_lease_admits_one_writer_and_the_next_after_release(lease_root):
    root, store = lease_root
    first = TableLock(root, TABLE, store, ttl_s=2.0)
    # The waiter outwaits two ttls: the holder's renewals keep the lease its own.
    second = TableLock(root, TABLE, store, wait_s=5.0, ttl_s=2.0, poll_s=0.2)
    with first, pytest.raises(TableLocked, match=r"being written by another job, .*:\d+ \(since "):
        assert store.at(lock_uri(root, TABLE)).exists()
        second.__enter__()
    with TableLock(root, TABLE, store, wait_s=1.0):
        pass
    assert not store.at(lock_uri(root, TABLE)).exists()


def test_a_lease_whose_holder_died_is_taken_over_after_its_ttl(lease_root):
    root, store = lease_root
    dead = TableLock(root, TABLE, store, ttl_s=1.0)
    dead.__enter__()
    dead._backend._stop.set()  # the holder dies: no more renewals, no release
    dead._backend._renewer.join()
    started = time.monotonic()
    with TableLock(root, TABLE, store, wait_s=10.0, ttl_s=1.0, poll_s=0.1):
        took = time.monotonic() - started
    assert 1.0 <= took < 5.0, took


def test_two_writers_racing_never_hold_the_lease_together(lease_root):
    root, store = lease_root
    inside, overlaps, done = [], [], []

    def writer():
        for _ in range(3):
            with TableLock(root, TABLE, store, wait_s=30.0, ttl_s=5.0, poll_s=0.05):
                inside.append(threading.get_ident())
                if len(inside) > 1:
                    overlaps.append(list(inside))
                time.sleep(0.1)
                inside.remove(threading.get_ident())
        done.append(True)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(done) == 2 and overlaps == []


def test_an_unsupported_store_is_refused_naming_the_accepted_ones():
    from workloads.common.storage import StorageError

    with pytest.raises(StorageError, match=r"hdfs:// is not supported\. Accepted: a directory"):
        TableLock("hdfs://namenode/features", TABLE, wait_s=0)

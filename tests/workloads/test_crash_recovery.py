"""A feature job killed in the middle of a write leaves the table at its last good commit, and a re-run completes it.

For real: the job runs as its own process (Python and its JVM), is killed with SIGKILL once the
new commit's data files are being written, the table is read, and the same batch is run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlkit_dev.demo_data import TELCO, synthetic_batch
from workloads.common.featurestore import FeatureStore

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "workloads" / "features" / "specs" / "customer_features.yaml"


def feature_job(store: Path, source: Path, event_time: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "workloads.features",
        "ingest",
        "--spec",
        str(SPEC),
        "--input",
        str(source),
        "--store",
        str(store),
        "--event-time",
        event_time,
        "--json",
    ]
    env = {**os.environ, "MLKIT_SPARK_SHUFFLE_PARTITIONS": "4"}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_for_write_in_progress(table: Path, known: set[str], proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait until a new commit is inflight and its first data file has appeared; return its instant."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the job finished before it could be killed:\n{proc.stderr.read()[-2000:]}")
        for inflight in (table / ".hoodie").glob("*.inflight"):
            instant = inflight.name.split(".")[0]
            if instant not in known and any(table.glob(f"*_{instant}.parquet")):
                return instant
        time.sleep(0.05)
    pytest.fail("no write started in time")


def test_killed_write_leaves_last_good_commit_and_rerun_completes(tmp_path):
    store_dir = tmp_path / "store"
    first = feature_job(store_dir, TELCO, "2026-01-01")
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    store = FeatureStore(str(store_dir))
    good = store.commits("customer_features")
    assert len(good) == 1
    before = store.read("customer_features").sort_values("customerID").reset_index(drop=True)

    # Large enough that its write takes a while on this machine.
    big = synthetic_batch(tmp_path / "big.csv", rows=150_000)
    victim = feature_job(store_dir, big, "2026-02-01")
    inflight = wait_for_write_in_progress(store_dir / "customer_features", {c.instant for c in good}, victim)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)

    # Readable, at the last good commit, with exactly its rows.
    assert [c.instant for c in store.commits("customer_features")] == [good[0].instant]
    after_kill = store.read("customer_features").sort_values("customerID").reset_index(drop=True)
    assert after_kill.drop(columns=["features"]).equals(before.drop(columns=["features"]))
    assert inflight not in set(after_kill["instant"])

    rerun = feature_job(store_dir, big, "2026-02-01")
    _out, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-3000:]
    commits = store.commits("customer_features")
    assert len(commits) == 2 and commits[-1].instant != inflight
    history = store.read("customer_features")
    assert len(history) == 7043 + 150_000
    assert not history.duplicated(["customerID", "event_time"]).any()
    latest = store.latest("customer_features")
    assert len(latest) == 7043 + 150_000

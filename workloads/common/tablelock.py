"""One writer per feature table at a time: a lock the kit owns, on the store the table lives on.

Hudi 1.0.2 writes in single-writer mode: a writer that finds another's commit inflight takes it for a
failed one and rolls it back, and that other job dies mid-write. Hudi's optimistic concurrency needs
a lock provider, and none in 1.0.2 works on every store the kit runs on (a local directory, S3 and
the S3-compatible stores). So the feature job takes this lock around its read-compare-write of a
table (and of its quarantine table): a second job waits for the first to commit, then reads the
committed table and writes its own commit, so both commit. A job that cannot get the lock within
``wait_s`` fails with one line before it writes anything; running it again is safe (a batch re-run
is idempotent). docs/feature-store.md says what this guarantees.

- A local directory: ``fcntl.flock`` on ``<root>/_locks/<table>.lock``. The kernel releases it when
  the holder exits, SIGKILL included, so a dead job never strands it.
- ``s3://``: a lease object at the same key, created with ``If-None-Match: *`` (one creator wins),
  renewed every ``ttl_s / 3`` with ``If-Match`` on its ETag, deleted on release. A holder that dies
  stops renewing; a waiter that has seen the same ETag for ``ttl_s`` on its own clock (no clock
  comparison between machines) takes it over with ``If-Match`` on that ETag, so one taker wins.
  Needs conditional writes, which AWS S3 has (since 2024) and moto; check your S3-compatible store.
- ``gs://`` and ``abfss://`` (the GCP and Azure targets): no lock yet; the job warns in one line and
  writes as before (GCS's ``ifGenerationMatch=0`` and Azure's ``If-None-Match: *`` would carry the same lease).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from workloads.common.settings import env, settings
from workloads.common.storage import ObjectStore, is_local, join, local_path

# How long a job waits for another writer of the same table before it gives up (seconds).
WAIT_ENV = "MLKIT_TABLE_LOCK_WAIT_S"
DEFAULT_WAIT_S = 1800.0
DEFAULT_TTL_S = 60.0


def _describe(holder: dict | None) -> str:
    return f"{holder.get('owner', '?')} (since {holder.get('since', '?')})" if holder else "another job"


class TableLocked(Exception):
    def __init__(self, table: str, holder: dict | None, waited: float):
        super().__init__(
            f"table {table} is being written by another job, {_describe(holder)}; waited {waited:.0f} s "
            f"({WAIT_ENV}); nothing was written: run this job again (a batch re-run is idempotent)"
        )


def lock_uri(root: str, table: str) -> str:
    return join(root, "_locks", f"{table}.lock")


def default_wait() -> float:
    raw = env(WAIT_ENV)
    if raw is None:
        return DEFAULT_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{WAIT_ENV}={raw!r} is not a number of seconds (e.g. 600)") from None
    if value < 0:
        raise ValueError(f"{WAIT_ENV}={raw!r} must not be negative")
    return value


class TableLock:
    """``with TableLock(root, table, store):`` holds the table's writer lock for the block."""

    def __init__(
        self,
        root: str,
        table: str,
        store: ObjectStore | None = None,
        *,
        wait_s: float | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        poll_s: float = 0.5,
    ):
        self.table, self.uri = table, lock_uri(root, table)
        self.store = store or settings().store
        self.wait_s = default_wait() if wait_s is None else wait_s
        self.ttl_s, self.poll_s = ttl_s, poll_s
        self.holder = {
            "owner": f"{socket.gethostname()}:{os.getpid()}",
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if is_local(self.uri):
            self._backend = _FileLock(Path(local_path(self.uri)))
        elif self.uri.startswith("s3://"):
            self._backend = _S3Lease(self.uri, self.store, ttl_s)
        else:
            # gs:// and abfss:// (GCP, Azure targets): no lock here yet. Say so rather than refuse the job.
            self._backend = _NoLock()
            print(
                f"warning: no writer lock for {self.uri} (local directories and s3:// have one): two jobs "
                "writing this table at once can fail (docs/feature-store.md)",
                file=sys.stderr,
                flush=True,
            )

    def __enter__(self) -> TableLock:
        started, announced = time.monotonic(), False
        while not self._backend.try_acquire(self.holder):
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                raise TableLocked(self.table, self._backend.holder(), waited)
            if not announced:
                announced = True
                print(
                    f"waiting for table {self.table}: {_describe(self._backend.holder())} is writing it "
                    f"(up to {self.wait_s:.0f} s, {WAIT_ENV})",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(min(self.poll_s, max(self.wait_s - waited, 0.01)))
        return self

    def __exit__(self, *exc) -> None:
        self._backend.release()


class _NoLock:
    def try_acquire(self, holder: dict) -> bool:
        return True

    def holder(self) -> dict | None:
        return None

    def release(self) -> None:
        pass


class _FileLock:
    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def try_acquire(self, holder: dict) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        self.fd = fd
        return True

    def holder(self) -> dict | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.path.read_text() or "null")
        return None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


class _S3Lease:
    def __init__(self, uri: str, store: ObjectStore, ttl_s: float):
        parsed = urlparse(uri)
        self.bucket, self.key, self.ttl_s = parsed.netloc, parsed.path.lstrip("/"), ttl_s
        self.client = store.s3_client()
        self.etag: str | None = None
        self.seen: tuple[str, float] | None = None  # (etag, when first seen) of another holder's lease
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def _put(self, body: dict, **condition) -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=json.dumps(body).encode(), **condition
            )
        except ClientError as e:
            # 412: the condition failed; 409: a concurrent conditional write to the same key won.
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise
        return answer["ETag"]

    def try_acquire(self, holder: dict) -> bool:
        from botocore.exceptions import ClientError

        self.body = holder
        etag = self._put(holder, IfNoneMatch="*")
        if etag is None:
            try:
                current = self.client.head_object(Bucket=self.bucket, Key=self.key)["ETag"]
            except ClientError:
                return False  # released between our put and this look: try again
            now = time.monotonic()
            if self.seen is None or self.seen[0] != current:
                self.seen = (current, now)
                return False
            if now - self.seen[1] < self.ttl_s:
                return False
            etag = self._put(holder, IfMatch=current)  # not renewed for a whole ttl: its holder is gone
            if etag is None:
                return False
        self.etag = etag
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.key}", daemon=True)
        self._renewer.start()
        return True

    def _renew(self) -> None:
        renewals = 0
        while not self._stop.wait(self.ttl_s / 3):
            renewals += 1  # a new body, so a new ETag: waiters watch the ETag change
            etag = self._put({**self.body, "renewals": renewals}, IfMatch=self.etag)
            if etag is None:
                self.lost = True
                return
            self.etag = etag

    def holder(self) -> dict | None:
        with contextlib.suppress(Exception):
            return json.loads(self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())
        return None

    def release(self) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join()
        if self.etag and not self.lost:
            with contextlib.suppress(Exception):
                if self.client.head_object(Bucket=self.bucket, Key=self.key)["ETag"] == self.etag:
                    self.client.delete_object(Bucket=self.bucket, Key=self.key)
        self.etag = None

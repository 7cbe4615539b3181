"""A bounded request log that predictions never wait for, and that keeps what was answered.

`put` appends the record to this process's spool file on local disk (a write to the page cache: no
waiting on the log store) before the prediction is answered, so an answered request survives its
worker being SIGKILLed (an OOM kill). A background thread moves spool files in batches, as JSON
lines, to a directory or a store prefix (s3://, gs://, abfss://: workloads/common/storage.py). A spool file whose process died (its flock is free) is
shipped by the next RequestLog on the same spool directory: gunicorn's replacement worker, or the
next container of the pod (the spool lives on the pod's /tmp emptyDir).

More than `capacity` records waiting drops the record and counts it (`dropped`), so a slow or
broken log store shows up in metrics, not in prediction latency or errors. A failed write is
retried on the next round; nothing is deleted before the store has it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from workloads.common.settings import env, settings


class RequestLog:
    def __init__(
        self,
        destination: str,
        *,
        spool: str | None = None,
        capacity: int = 10_000,
        batch_size: int = 200,
        flush_seconds: float = 2.0,
        writer=None,
        store=None,
    ):
        self.destination = destination.rstrip("/")
        # One spool directory per destination: a pod's workers (and its next container) share it.
        digest = hashlib.sha256(self.destination.encode()).hexdigest()[:12]
        default = Path(tempfile.gettempdir()) / "mlkit-request-log" / digest
        self.spool = Path(spool or env("MLKIT_REQUEST_LOG_SPOOL") or default)
        self.spool.mkdir(parents=True, exist_ok=True)
        self._capacity, self._batch_size, self._flush_seconds = capacity, batch_size, flush_seconds
        self._write = writer or self._writer_for(self.destination, store)
        self.dropped = 0
        self.written = 0
        self.failed_batches = 0
        self._lock = threading.Lock()
        self._waiting = 0  # records put and not yet written to the destination
        self._ready: list[tuple[Path, int, int]] = []  # spool files to ship: (path, locked fd, records)
        self._retry_at = 0.0
        self._open()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()
        # A pod stopped on scale-down gets SIGTERM: what is still spooled is written before the process ends.
        atexit.register(self.close)

    def put(self, record: dict) -> bool:
        """Append to the spool without waiting on the store; False (and a drop counted) when full."""
        line = (json.dumps(record, default=str) + "\n").encode()
        with self._lock:
            if self._waiting >= self._capacity:
                self.dropped += 1
                return False
            try:
                os.write(self._fd, line)
            except OSError:  # a full or broken local disk: the record is dropped, serving goes on
                self.dropped += 1
                return False
            self._waiting += 1
            self._records += 1
            self._first = self._first or time.monotonic()
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is spooled (waiting at most ``timeout``) and stop."""
        self._stop.set()
        self._thread.join(timeout)
        atexit.unregister(self.close)

    def _open(self) -> None:
        self._path = self.spool / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # held while this process lives: the file is not an orphan
        self._records, self._first = 0, 0.0

    def _rotate(self) -> None:
        with self._lock:
            if self._records:
                self._ready.append((self._path, self._fd, self._records))
                self._open()

    def _run(self) -> None:
        adopt_at = 0.0
        while True:
            stopping = self._stop.is_set()
            if time.monotonic() >= adopt_at:
                self._adopt_orphans()
                adopt_at = time.monotonic() + self._flush_seconds
            due = self._records >= self._batch_size or (
                self._first and time.monotonic() - self._first >= self._flush_seconds
            )
            if due or stopping:
                self._rotate()
            if stopping or time.monotonic() >= self._retry_at:
                self._ship()
            if stopping:
                if not self._ready:
                    os.close(self._fd)
                    with contextlib.suppress(FileNotFoundError):
                        self._path.unlink()
                break
            time.sleep(0.05)

    def _ship(self) -> None:
        for entry in list(self._ready):
            path, fd, count = entry
            records = []
            for line in path.read_bytes().splitlines():
                with contextlib.suppress(ValueError):  # a line cut short by a kill mid-write
                    records.append(json.loads(line))
            try:
                if records:
                    self._write(records)
            except Exception:  # kept in the spool; retried after a flush interval
                self.failed_batches += 1
                self._retry_at = time.monotonic() + self._flush_seconds
                return
            self.written += len(records)
            path.unlink()
            os.close(fd)  # unlinked first: an adopter that locks it after this finds no file
            self._ready.remove(entry)
            with self._lock:
                self._waiting -= count

    def _adopt_orphans(self) -> None:
        """Spool files of dead processes: their lock is free, so this process takes and ships them."""
        for path in sorted(self.spool.glob("*.jsonl")):
            if path == self._path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    raise FileNotFoundError(path)  # shipped and removed while we opened it
            except (BlockingIOError, FileNotFoundError):
                os.close(fd)
                continue
            self._ready.append((path, fd, 0))

    @staticmethod
    def _writer_for(destination: str, store):
        """A batch writer to ``destination``: one JSON-lines object per batch under <day>/ (any store scheme)."""
        place = (store or settings().store).at(destination)  # an unsupported scheme fails here, at start-up

        def write(batch):
            now = datetime.now(UTC)
            name = f"{now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex[:8]}.jsonl"
            (place / name).write_bytes("".join(json.dumps(r, default=str) + "\n" for r in batch).encode())

        return write

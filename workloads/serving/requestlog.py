"""An asynchronous, bounded request log: predictions never wait for it and never fail because of it.

Records go into a bounded queue; a background thread writes them in batches as JSON lines to a
directory or an s3:// prefix. A full queue drops the record and counts it (`dropped`), so a slow
or broken log store shows up in metrics, not in prediction latency or errors.
"""

from __future__ import annotations

import atexit
import json
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path


class RequestLog:
    def __init__(
        self,
        destination: str,
        *,
        capacity: int = 10_000,
        batch_size: int = 200,
        flush_seconds: float = 2.0,
        writer=None,
    ):
        self.destination = destination.rstrip("/")
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._batch_size, self._flush_seconds = batch_size, flush_seconds
        self._write = writer or self._writer_for(self.destination)
        self.dropped = 0
        self.written = 0
        self.failed_batches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()
        # A pod stopped on scale-down gets SIGTERM: what is still queued is written before the process ends.
        atexit.register(self.close)

    def put(self, record: dict) -> bool:
        """Enqueue without waiting; False (and a drop counted) when the queue is full."""
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most ``timeout``) and stop."""
        self._stop.set()
        self._thread.join(timeout)
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch, deadline = [], time.monotonic() + self._flush_seconds
            while len(batch) < self._batch_size and time.monotonic() < deadline:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, min(0.2, deadline - time.monotonic()))))
                except queue.Empty:
                    if self._stop.is_set():
                        break
            if batch:
                try:
                    self._write(batch)
                    self.written += len(batch)
                except Exception:  # a failed write loses this batch only; serving goes on
                    self.failed_batches += 1

    @staticmethod
    def _writer_for(destination: str):
        def name() -> str:
            now = datetime.now(UTC)
            return f"{now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex[:8]}.jsonl"

        def lines(batch) -> bytes:
            return "".join(json.dumps(r, default=str) + "\n" for r in batch).encode()

        if destination.startswith("s3://"):
            from workloads.common.storage import ObjectStore

            client = ObjectStore.from_env().s3_client()
            bucket, _, prefix = destination.removeprefix("s3://").partition("/")

            def write_s3(batch):
                client.put_object(Bucket=bucket, Key=f"{prefix}/{name()}".lstrip("/"), Body=lines(batch))

            return write_s3

        def write_local(batch):
            path = Path(destination) / name()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(lines(batch))

        return write_local

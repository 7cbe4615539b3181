"""One writer per feature table at a time: a lock the kit owns, on the store the table lives on.

Hudi 1.0.2 writes in single-writer mode: a writer that finds another's commit inflight takes it for a
failed one and rolls it back, and that other job dies mid-write. Hudi's optimistic concurrency needs
a lock provider, and none in 1.0.2 works on every store the kit runs on. So the feature job takes
this lock around its read-compare-write of a table (and of its quarantine table): a second job waits for the first to commit, then reads the
committed table and writes its own commit, so both commit. A job that cannot get the lock within
``wait_s`` fails with one line before it writes anything; running it again is safe (a batch re-run
is idempotent). docs/feature-store.md says what this guarantees.

- A local directory: ``fcntl.flock`` on ``<root>/_locks/<table>.lock``. The kernel releases it when
  the holder exits, SIGKILL included, so a dead job never strands it.
- An object store: a lease object at the same key, created only if absent (one creator wins),
  renewed every ``ttl_s / 3`` by a write conditional on its version, deleted on release. A holder
  that dies stops renewing; a waiter that has seen the same version for ``ttl_s`` on its own clock
  (no clock comparison between machines) takes it over with a write conditional on that version, so
  one taker wins. The condition is the store's own: on ``s3://`` If-None-Match: * and If-Match on the
  ETag (AWS S3 since 2024, moto; check your S3-compatible store), on ``gs://`` ifGenerationMatch, on
  ``abfss://`` (through the account's Blob endpoint) If-None-Match: * and If-Match on the ETag.
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
from typing import Protocol
from urllib.parse import urlparse

from workloads.common.settings import env, settings
from workloads.common.storage import ObjectStore, StorageError, azure_container, is_local, join, local_path, scheme_of

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
        else:
            objects = {"s3": _S3Object, "gs": _GcsObject, "abfss": _AzureBlob, "az": _AzureBlob}[scheme_of(self.uri)]
            self._backend = _Lease(objects(self.uri, self.store), ttl_s)

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


class _Lease:
    """A lease held by conditional writes: any store that can create-if-absent and replace-if-unchanged."""

    def __init__(self, objects: _ConditionalObject, ttl_s: float):
        self.objects, self.ttl_s = objects, ttl_s
        self.version: str | None = None  # the store's version (ETag, generation) of our lease
        self.seen: tuple[str, float] | None = None  # (version, when first seen) of another holder's lease
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def try_acquire(self, holder: dict) -> bool:
        self.body = holder
        version = self.objects.create(_encode(holder))
        if version is None:
            current = self.objects.version()
            if current is None:
                return False  # released between our write and this look: try again
            now = time.monotonic()
            if self.seen is None or self.seen[0] != current:
                self.seen = (current, now)
                return False
            if now - self.seen[1] < self.ttl_s:
                return False
            version = self.objects.replace(_encode(holder), current)  # not renewed for a whole ttl: its holder is gone
            if version is None:
                return False
        self.version = version
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="table-lease", daemon=True)
        self._renewer.start()
        return True

    def _renew(self) -> None:
        renewals = 0
        while not self._stop.wait(self.ttl_s / 3):
            renewals += 1  # a new body, so a new version: waiters watch the version change
            version = self.objects.replace(_encode({**self.body, "renewals": renewals}), self.version)
            if version is None:
                self.lost = True
                return
            self.version = version

    def holder(self) -> dict | None:
        with contextlib.suppress(Exception):
            return json.loads(self.objects.read())
        return None

    def release(self) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join()
        if self.version and not self.lost:
            with contextlib.suppress(Exception):
                self.objects.delete(self.version)
        self.version = None


def _encode(body: dict) -> bytes:
    return json.dumps(body).encode()


class _ConditionalObject(Protocol):
    """One object on a store with conditional writes. ``create`` and ``replace`` return the new version,
    or None when the condition failed (another writer got there first)."""

    def create(self, body: bytes) -> str | None: ...
    def replace(self, body: bytes, version: str) -> str | None: ...
    def version(self) -> str | None: ...
    def read(self) -> bytes: ...
    def delete(self, version: str) -> None: ...


class _S3Object:
    """S3: If-None-Match: * to create, If-Match on the ETag to replace (AWS since 2024, moto; check your S3-compatible store)."""

    def __init__(self, uri: str, store: ObjectStore):
        parsed = urlparse(uri)
        self.bucket, self.key = parsed.netloc, parsed.path.lstrip("/")
        self.client = store.s3_client()

    def _put(self, body: bytes, **condition) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, **condition)["ETag"]
        except ClientError as e:
            # 412: the condition failed; 409: a concurrent conditional write to the same key won.
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise

    def create(self, body: bytes) -> str | None:
        return self._put(body, IfNoneMatch="*")

    def replace(self, body: bytes, version: str) -> str | None:
        return self._put(body, IfMatch=version)

    def version(self) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key)["ETag"]
        except ClientError:
            return None

    def read(self) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()

    def delete(self, version: str) -> None:
        if self.version() == version:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)


class _GcsObject:
    """GCS: ifGenerationMatch=0 to create, ifGenerationMatch=<generation> to replace and to delete."""

    def __init__(self, uri: str, store: ObjectStore):
        from google.cloud import storage

        parsed = urlparse(uri)
        if store.endpoint:  # an emulator (fake-gcs-server) takes no credentials
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(
                project="mlkit", credentials=AnonymousCredentials(), client_options={"api_endpoint": store.endpoint}
            )
        else:  # GKE workload identity, through the default credentials
            client = storage.Client()
        self.blob = client.bucket(parsed.netloc).blob(parsed.path.lstrip("/"))

    def _upload(self, body: bytes, generation: int) -> str | None:
        from google.api_core.exceptions import PreconditionFailed

        try:
            self.blob.upload_from_string(body, if_generation_match=generation)
        except PreconditionFailed:
            return None
        return str(self.blob.generation)

    def create(self, body: bytes) -> str | None:
        return self._upload(body, 0)

    def replace(self, body: bytes, version: str) -> str | None:
        return self._upload(body, int(version))

    def version(self) -> str | None:
        from google.api_core.exceptions import NotFound

        try:
            self.blob.reload()
        except NotFound:
            return None
        return str(self.blob.generation)

    def read(self) -> bytes:
        return self.blob.download_as_bytes()

    def delete(self, version: str) -> None:
        self.blob.delete(if_generation_match=int(version))


class _AzureBlob:
    """Azure Blob (and ADLS Gen2 through its Blob endpoint): If-None-Match: * to create, If-Match on the ETag."""

    def __init__(self, uri: str, store: ObjectStore):
        from azure.storage.blob import BlobClient

        container, account = azure_container(uri)
        account = account or store.account
        if not account:
            raise StorageError(f"{uri}: no storage account: name it in the URI or set AZURE_STORAGE_ACCOUNT")
        path = urlparse(uri).path.lstrip("/")
        if store.endpoint:  # Azurite: the account in the path
            url = f"{store.endpoint.rstrip('/')}/{account}"
        else:
            url = f"https://{account}.blob.core.windows.net"
        if store.account_key:
            credential = {"account_name": account, "account_key": store.account_key}
        else:  # AKS workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.blob = BlobClient(url, container, path, credential=credential)

    def _upload(self, body: bytes, **condition) -> str | None:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        try:
            return self.blob.upload_blob(body, **condition)["etag"]
        except (ResourceExistsError, ResourceModifiedError):
            return None

    def create(self, body: bytes) -> str | None:
        return self._upload(body, overwrite=False)  # sent as If-None-Match: *

    def replace(self, body: bytes, version: str) -> str | None:
        from azure.core import MatchConditions

        return self._upload(body, overwrite=True, etag=version, match_condition=MatchConditions.IfNotModified)

    def version(self) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.blob.get_blob_properties().etag
        except ResourceNotFoundError:
            return None

    def read(self) -> bytes:
        return self.blob.download_blob().readall()

    def delete(self, version: str) -> None:
        from azure.core import MatchConditions

        self.blob.delete_blob(etag=version, match_condition=MatchConditions.IfNotModified)

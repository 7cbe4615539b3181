"""Every object store the platform hands out, on this machine: one emulator per scheme, on 127.0.0.1.

    file   a temporary directory
    s3     moto's S3 server (.venv/workloads/bin/moto_server)
    gs     fake-gcs-server (a Go module, built by `make setup` into .cache/bin)
    az     (abfss:// URIs) Azurite's Blob service (an npm package, installed by `make setup` into .cache/npm); it has
           no ADLS Gen2 DFS endpoint, so abfss:// is reached here through the Blob API only

Each ``Emulator`` has one bucket (container), a ``root`` URI inside it and the ``ObjectStore`` that
reaches it, so one test suite runs unchanged over every scheme.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from mlkit_dev import REPO
from mlkit_dev.local import LocalProcess, LocalS3, free_port
from workloads.common.storage import ObjectStore

SCHEMES = ("file", "s3", "gs", "az")
BUCKET = "mlkit-test"
# Azurite's well-known development account (public, documented by Microsoft; it guards nothing).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Emulator:
    scheme: str
    root: str  # e.g. gs://mlkit-test
    store: ObjectStore
    env: dict[str, str] = field(default_factory=dict)  # what a subprocess needs to reach it (ObjectStore.from_env)
    _stop: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def stop(self) -> None:
        self._stop.close()


def tool(name: str) -> Path:
    path = REPO / ".cache" / ("npm/node_modules/.bin" if name.startswith("azurite") else "bin") / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make setup`")
    return path


def start(scheme: str) -> Emulator:
    """The emulator for ``scheme``, started and holding an empty bucket."""
    stack = contextlib.ExitStack()
    if scheme == "file":
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlkit-store-"))
        return Emulator("file", directory, ObjectStore(), {}, stack)
    if scheme == "s3":
        s3 = stack.enter_context(LocalS3(BUCKET))
        env = {"MLKIT_STORE_ENDPOINT": s3.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        return Emulator("s3", f"s3://{BUCKET}", s3.store, env | {"AWS_REGION": "us-east-1"}, stack)
    if scheme == "gs":
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [str(tool("fake-gcs-server")), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
        command += ["-backend", "memory", "-public-host", f"127.0.0.1:{port}", "-log-level", "warn"]
        stack.enter_context(LocalProcess(command, f"{url}/storage/v1/b", dict(os.environ)))
        created = requests.post(f"{url}/storage/v1/b?project=mlkit", json={"name": BUCKET}, timeout=10)
        created.raise_for_status()
        return Emulator("gs", f"gs://{BUCKET}", ObjectStore(endpoint=url), {"MLKIT_STORE_ENDPOINT": url}, stack)
    if scheme == "az":
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [str(tool("azurite-blob")), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
        command += ["--silent", "--skipApiVersionCheck", "--loose", "--inMemoryPersistence"]
        stack.enter_context(_Azurite(command, port))
        store = ObjectStore(endpoint=url, account=AZURITE_ACCOUNT, account_key=AZURITE_KEY)
        store.at(f"az://{BUCKET}").fs.create_dir(BUCKET)
        env = {"MLKIT_STORE_ENDPOINT": url, "AZURE_STORAGE_ACCOUNT": AZURITE_ACCOUNT, "AZURE_STORAGE_KEY": AZURITE_KEY}
        # The platform's form of an Azure root; Azurite serves it through the Blob API.
        return Emulator("az", f"abfss://{BUCKET}@{AZURITE_ACCOUNT}.dfs.core.windows.net", store, env, stack)
    raise ValueError(f"no emulator for {scheme!r}; one of {SCHEMES}")


class _Azurite(LocalProcess):
    """Azurite has no health endpoint and refuses unsigned requests: ready once its port accepts."""

    def __init__(self, command: list[str], port: int):
        self.port = port
        super().__init__(command, f"tcp://127.0.0.1:{port}", dict(os.environ), start_s=60)

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False


def profile_for(emulator: Emulator, team: str = "churn", namespace: str | None = None) -> dict:
    """A team profile (mlkit_contract.TeamProfile, as JSON) rooted on ``emulator``: what a chart would mount."""
    scheme = {"file": "s3", "az": "abfss"}.get(emulator.scheme, emulator.scheme)
    root = f"{emulator.root}/teams/{team}"
    return {
        "team": team,
        "namespace": namespace or team,
        "root": root,
        "featureStore": f"{root}/features",
        "models": f"{root}/models",
        "requestLogs": f"{root}/request-logs",
        "objectStore": {
            "scheme": scheme,
            "bucket": BUCKET,
            "endpoint": emulator.store.endpoint,
            "region": emulator.store.region,
            "account": emulator.store.account,
            "pathStyle": emulator.store.path_style,
        },
        "serviceAccounts": {"spark": f"{team}-spark", "models": f"{team}-models"},
        "podLabels": {},
        "storeKeysSecret": {"spark": None, "models": None},
        "hadoopConf": {},
        "hadoopConfigMap": f"{team}-hadoop",
        "gpu": {"resourceName": "nvidia.com/gpu", "nodeSelector": {}, "tolerations": []},
        "pools": {},
        "mlflow": {"trackingUri": None},
    }

"""Fixtures for the workloads: one Spark session per test run, and a real S3-compatible endpoint on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from workloads.common.storage import ObjectStore
from workloads.serving.local import free_port

BUCKET = "mlkit-test"


@pytest.fixture(scope="session")
def s3_store():
    """moto's S3 server on 127.0.0.1 with one bucket; the ObjectStore that reaches it."""
    port = free_port()
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = ObjectStore(
        endpoint=f"http://127.0.0.1:{port}",
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        path_style=True,
    )
    client = boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.2)
    yield store
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def spark(s3_store):
    from workloads.common.spark import spark_session

    os.environ.setdefault("MLKIT_SPARK_SHUFFLE_PARTITIONS", "2")
    session = spark_session("mlkit-tests", s3_store)
    yield session
    session.stop()

"""Fixtures for the workloads: one Spark session per test run, on real S3 and GCS emulators on loopback."""

from __future__ import annotations

import os

import pytest

from mlkit_dev.local import LocalS3
from mlkit_dev.storage_emulators import start

BUCKET = "mlkit-test"


@pytest.fixture(scope="session")
def s3_store():
    """moto's S3 server on 127.0.0.1 with one bucket; the ObjectStore that reaches it."""
    with LocalS3(BUCKET) as s3:
        yield s3.store


@pytest.fixture(scope="session")
def gcs_store():
    """fake-gcs-server on 127.0.0.1 with the same bucket name; the ObjectStore that reaches it."""
    emulator = start("gs")
    yield emulator.store
    emulator.stop()


@pytest.fixture(scope="session")
def spark(s3_store, gcs_store):
    """The session reaches both: s3a:// through moto, gs:// through the GCS connector on fake-gcs-server."""
    from workloads.common.spark import spark_session

    os.environ.setdefault("MLKIT_SPARK_SHUFFLE_PARTITIONS", "2")
    gcs = {f"spark.hadoop.{key}": value for key, value in gcs_store.hadoop_conf("gs").items()}
    session = spark_session("mlkit-tests", s3_store, extra_conf=gcs)
    yield session
    session.stop()

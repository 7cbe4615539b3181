"""Fixtures for the workloads: one Spark session per test run, and a real S3-compatible endpoint on loopback."""

from __future__ import annotations

import os

import pytest

from workloads.serving.local import LocalS3

BUCKET = "mlkit-test"


@pytest.fixture(scope="session")
def s3_store():
    """moto's S3 server on 127.0.0.1 with one bucket; the ObjectStore that reaches it."""
    with LocalS3(BUCKET) as s3:
        yield s3.store


@pytest.fixture(scope="session")
def spark(s3_store):
    from workloads.common.spark import spark_session

    os.environ.setdefault("MLKIT_SPARK_SHUFFLE_PARTITIONS", "2")
    session = spark_session("mlkit-tests", s3_store)
    yield session
    session.stop()

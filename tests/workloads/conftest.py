"""Fixtures for the workloads: one Spark session per test run, on real S3 and GCS emulators on loopback, and one
run of the closed monitoring loop."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from mlkit_dev import REPO
from mlkit_dev.demo_data import TELCO, record_batches
from mlkit_dev.local import LocalS3
from mlkit_dev.storage_emulators import start

BUCKET = "mlkit-test"
SPECS = REPO / "workloads" / "features" / "specs"
CONFIG = REPO / "workloads" / "training" / "configs" / "churn.yaml"


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


@pytest.fixture(scope="session")
def closed_loop(spark, tmp_path_factory):
    """mlkit_dev/monitoring_loop.py run once on a January feature store and a champion trained on it: the
    champion's TrainingReport and the loop's story. Its data directory is ``story["data"]``, the batch it
    ingested ``story["march"]``."""
    from workloads.common.featurestore import FeatureStore
    from workloads.common.specs import load_spec
    from workloads.features.job import run_batch
    from workloads.training.config import load_config
    from workloads.training.train import train

    data = tmp_path_factory.mktemp("loop")
    store = FeatureStore(str(data / "features"))
    specs = [load_spec(SPECS / "customer_features.yaml"), load_spec(SPECS / "churn_labels.yaml")]
    reports = run_batch(spark, store, specs, str(TELCO), event_time=datetime(2026, 1, 1, tzinfo=UTC))
    record_batches(data, {"January": reports})
    # A short schedule: the trigger retrains with the served version's config, so this bounds both runs.
    champion = train(
        store, load_config(CONFIG, epochs=8, patience=3), tracking_uri=f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"
    )
    from mlkit_dev.monitoring_loop import demo_run

    march, story = demo_run(data, timeout=900)  # as make demo runs it
    return champion, {**story, "data": data, "march": march}

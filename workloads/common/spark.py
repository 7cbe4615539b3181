"""A Spark session set up for Hudi and the object store, the same locally and in the cluster.

In the cluster the Spark operator supplies the master and the jars sit in the image's /opt/spark/jars;
locally the session runs on this machine from the SPARK_HOME `make setup` builds (.cache/spark: pyspark
with the same jars in place of Spark's Hadoop client), so both run one classpath.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from workloads.common.settings import env, settings
from workloads.common.storage import ObjectStore

# What Hudi needs from Spark (Hudi's quick-start settings for Spark 3.5).
HUDI_SPARK_CONF = {
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.sql.extensions": "org.apache.spark.sql.hudi.HoodieSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.hudi.catalog.HoodieCatalog",
    "spark.kryo.registrator": "org.apache.spark.HoodieSparkKryoRegistrar",
}
LOCAL_SPARK_HOME = Path(__file__).resolve().parents[2] / ".cache" / "spark"
LOG4J2 = Path(__file__).resolve().parent / "log4j2.properties"


class SparkSetupError(RuntimeError):
    pass


def local_spark_home() -> Path:
    """SPARK_HOME if set, else what `make setup` built; it must hold the Hudi bundle."""
    home = Path(os.environ.setdefault("SPARK_HOME", str(LOCAL_SPARK_HOME)))
    if not glob.glob(str(home / "jars" / "hudi-spark*.jar")):
        raise SparkSetupError(f"the Hudi Spark bundle is missing from {home / 'jars'}: run `make setup`")
    return home


def spark_session(app_name: str, store: ObjectStore | None = None, extra_conf: dict[str, str] | None = None):
    """Get or create the session on ``store`` (default: this process's, from the team profile).
    MLKIT_SPARK_MASTER overrides the local default (local[2])."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:  # pragma: no cover - the workloads environment always has it
        raise SparkSetupError("pyspark is not installed: run `make setup` (the workloads environment)") from e

    # Python workers must be this interpreter, not whatever `python3` is on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    master = env("MLKIT_SPARK_MASTER")
    in_cluster = "SPARK_HOME" in os.environ and os.environ.get("KUBERNETES_SERVICE_HOST")
    if master or not in_cluster:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # stay on loopback, whatever the hostname resolves to
        local_spark_home()
        builder = (
            builder.master(master or "local[2]")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", env("MLKIT_SPARK_SHUFFLE_PARTITIONS", "4"))
            .config("spark.driver.memory", env("MLKIT_SPARK_DRIVER_MEMORY", "3g"))
            # Quiet startup; allowAttachSelf lets Hudi's object-size estimator attach without a warning.
            .config(
                "spark.driver.extraJavaOptions",
                f"-Dlog4j2.configurationFile={LOG4J2} -Djdk.attach.allowAttachSelf=true",
            )
        )
    conf = {
        **HUDI_SPARK_CONF,
        "spark.sql.session.timeZone": "UTC",
        # With CSV column pruning on, a row with too few or too many fields is flagged as corrupt only
        # when every column is selected; the feature job selects the spec's columns, so turn it off.
        "spark.sql.csv.parser.columnPruning.enabled": "false",
    }
    for key, value in (store or settings().store).hadoop_conf().items():
        conf[f"spark.hadoop.{key}"] = value
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(env("MLKIT_SPARK_LOG_LEVEL", "ERROR"))
    return session

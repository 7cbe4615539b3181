"""The pipeline's steps as plain functions: what each KFP component calls, with artifact paths and parameters.

Each step is a thin layer over the training code (workloads/training), the same functions
`python -m workloads.training train` runs in one process; here they run one per task, and the artifacts
module carries their results from task to task. A known failure ends the task with one line,
``error: <message>``, and exit code 1, as the training CLI does; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from workloads.common.models import problems
from workloads.pipeline.featurejob import Batch
from workloads.training.config import ConfigError, TrainConfig

# Each task is a fresh process: a step imports what it uses (torch, pandas, hudi) only when it runs, which on
# this 2-core machine is seconds per task.
if TYPE_CHECKING:
    from workloads.common.featurestore import FeatureStore
    from workloads.pipeline.deploy import Deployer, Deployment
    from workloads.pipeline.featurejob import FeatureJob

# Where a run executes: this machine (kfp.local), or a KFP cluster. It picks the feature job and the deployer.
RUNTIMES = ("local", "cluster")
LATEST = "latest"  # an as_of value: the table's latest commit, as if it were not named

T = TypeVar("T")


def known_errors() -> tuple[type[Exception], ...]:
    """The failures of bad input or state, each with a message that says what to fix."""
    from workloads.common.featurestore import FeatureStoreError
    from workloads.pipeline.deploy import DeployError
    from workloads.pipeline.featurejob import FeatureJobError
    from workloads.pipeline.kube import KubeError
    from workloads.training.data import TrainingDataError
    from workloads.training.train import ExportError

    return (ConfigError, TrainingDataError, FeatureStoreError, FeatureJobError, DeployError, KubeError, ExportError)


def reported(step: Callable[..., T]) -> Callable[..., T]:
    """A known failure becomes ``error: <message>`` on stderr and exit code 1: the task's log says why, once."""

    @functools.wraps(step)
    def run(*args, **kwargs):
        try:
            return step(*args, **kwargs)
        except Exception as e:
            if not isinstance(e, known_errors()):
                raise
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None

    return run


def parse_config(config: dict, as_of: dict | None = None) -> TrainConfig:
    """The training config from the pipeline's parameters: ``as_of`` (table -> instant or "latest") over its own."""
    pins = {**(config.get("as_of") or {}), **(as_of or {})}
    try:
        return TrainConfig.model_validate({**config, "as_of": {t: i for t, i in pins.items() if i and i != LATEST}})
    except ValidationError as e:
        listed = "\n".join(f"  {p}" for p in problems(e, root="(config)"))
        raise ConfigError(f"pipeline parameters config/as_of: invalid training config\n{listed}") from None


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ConfigError(f"pipeline parameter runtime={runtime!r}: expected one of {list(RUNTIMES)}")


def open_store(feature_store: str) -> FeatureStore:
    from workloads.common.featurestore import FeatureStore

    return FeatureStore.open(feature_store or None)


def feature_job_for(runtime: str, *, release: str, namespace: str, run_id: str) -> FeatureJob:
    from workloads.pipeline.featurejob import LocalFeatureJob, SparkApplicationJob

    return LocalFeatureJob() if runtime == "local" else SparkApplicationJob(release, namespace, run_id)


def deployer_for(runtime: str, *, release: str, namespace: str) -> Deployer:
    from workloads.pipeline.deploy import AliasDeployer, SeldonDeployer

    return AliasDeployer() if runtime == "local" else SeldonDeployer(release, namespace)


@reported
def feature_job(
    *,
    config: dict,
    as_of: dict,
    feature_store: str,
    runtime: str,
    batch: Batch | None,
    release: str = "",
    namespace: str = "",
    run_id: str = "",
) -> tuple[dict[str, str], list[dict]]:
    """The first step: check the parameters, ingest ``batch`` if there is one, then pin every table once.

    Every bad parameter fails here, before any Spark job or training: the config, the runtime, the store, a
    pinned instant the table does not have, and (after the batch, which may create it) a table that is missing.
    Returns the pins (table -> instant) every later step reads, so one run sees one version of each table."""
    check_runtime(runtime)
    train_config = parse_config(config, as_of)
    store = open_store(feature_store)
    tables = [train_config.label_table, *train_config.feature_tables]
    reports: list[dict] = []
    if batch is not None:
        store.snapshot(train_config.as_of)  # a pinned instant is history: it must exist before the batch
        job = feature_job_for(runtime, release=release, namespace=namespace, run_id=run_id)
        reports = job.run(store, batch)
    pinned = store.snapshot({t: train_config.as_of.get(t) for t in tables})
    return {t: p.instant for t, p in pinned.items()}, reports


@reported
def read(*, config: dict, pins: dict, feature_store: str, out: str) -> dict:
    """The point-in-time training set at the pinned instants (its own checks: workloads/training/data.py)."""
    from workloads.pipeline import artifacts
    from workloads.training.data import build_training_set

    store = open_store(feature_store)
    data = build_training_set(store, parse_config(config, pins))
    artifacts.save_training_set(out, data, store.root)
    return {"rows": len(data.labels), "instants": data.instants, "rows_without_features": data.dropped_without_features}


@reported
def validate(*, config: dict, min_rows: int, training_set: str) -> dict[str, float]:
    """The checks before training, on the set as read: enough rows, both classes in every split. Returns its profile."""
    import numpy as np

    from workloads.pipeline import artifacts
    from workloads.training.data import TrainingDataError

    parse_config(config)
    data, _ = artifacts.load_training_set(training_set)
    rows = len(data.labels)
    if rows < min_rows:
        raise TrainingDataError(
            f"the training set has {rows} labelled rows with features, fewer than min_rows={min_rows}; "
            f"ingest more data or lower min_rows"
        )
    profile = {
        "rows": float(rows),
        "positive_rate": float(data.labels.mean()),
        "features": float(data.features.shape[1]),
    }
    for part in ("train", "validation", "test"):
        labels = data.labels[data.split == part]
        if len(np.unique(labels)) < 2:
            raise TrainingDataError(f"the {part} split has {len(labels)} rows of a single class: nothing to evaluate")
        profile[f"{part}_rows"] = float(len(labels))
    profile["rows_without_features"] = float(data.dropped_without_features)
    return profile


@reported
def split(*, training_set: str, train: str, validation: str, test: str) -> dict[str, int]:
    """The three splits as their own datasets (the split itself is the set's: a hash of the entity key)."""
    from workloads.pipeline import artifacts

    data, _ = artifacts.load_training_set(training_set)
    return {
        part: artifacts.save_part(path, data, part)
        for part, path in (("train", train), ("validation", validation), ("test", test))
    }


@reported
def train(*, config: dict, train: str, validation: str, model: str) -> dict:
    """Fit on the train split with early stopping on validation, and export to ONNX."""
    from workloads.pipeline import artifacts
    from workloads.training.model import fit
    from workloads.training.train import export_onnx

    train_config = parse_config(config)
    train_part, validation_part = artifacts.load_part(train), artifacts.load_part(validation)
    result = fit(train_config, train_part, validation_part)
    inputs = train_part[0].shape[1]
    artifacts.save_model(model, result, export_onnx(result.model, inputs), inputs)
    return {"best_epoch": result.best_epoch, "epochs": len(result.history), "device": result.device}


@reported
def evaluate(*, config: dict, tracking_uri: str, model: str, test: str, evaluation: str) -> tuple[dict, dict]:
    """Test metrics, the ONNX export's parity, and the gate: the champion scored on this same test split.
    Returns (metrics, the challenge as a dict)."""
    from dataclasses import asdict

    from workloads.pipeline import artifacts
    from workloads.training.train import challenge_champion, check_parity, configure_tracking, evaluate_model

    train_config = parse_config(config)
    result, onnx_bytes = artifacts.load_model(model, train_config)
    x_test, y_test = artifacts.load_part(test)
    scored = evaluate_model(result.model, onnx_bytes, x_test, y_test)
    check_parity(scored.parity)
    configure_tracking(tracking_uri or None)
    challenge = challenge_champion(train_config.model_name, x_test, y_test, scored.test["roc_auc"])
    artifacts.save_evaluation(evaluation, scored, challenge)
    metrics = {f"test_{k}": v for k, v in scored.test.items()} | {"onnx_max_abs_diff": scored.parity}
    metrics |= {f"champion_test_{k}": v for k, v in challenge.champion_test.items()}
    return metrics, asdict(challenge)


@reported
def register(
    *,
    config: dict,
    tags: dict,
    tracking_uri: str,
    training_set: str,
    model: str,
    evaluation: str,
    pipeline_run: str = "",
) -> tuple[str, str]:
    """One MLflow run with everything `train` logs (lineage tags, params, serving inputs, per-epoch and test
    metrics, both models, monitoring's reference); the ONNX model becomes a new version. Returns (version, run id)."""
    import mlflow

    from workloads.pipeline import artifacts
    from workloads.training.train import log_epoch, log_evaluation, register_model, start_record, use_experiment

    train_config = parse_config(config)
    data, feature_store = artifacts.load_training_set(training_set)
    result, onnx_bytes = artifacts.load_model(model, train_config)
    scored, _ = artifacts.load_evaluation(evaluation, onnx_bytes)
    use_experiment(train_config.model_name, tracking_uri or None)
    run_tags = {**{str(k): str(v) for k, v in (tags or {}).items()}, "mlkit.pipeline.run": pipeline_run}
    with mlflow.start_run() as run:
        start_record(feature_store, train_config, data, run_tags)
        for epoch, metrics in enumerate(result.history, start=1):
            log_epoch(epoch, metrics)
        log_evaluation(scored, result)
        version = register_model(result, scored, train_config, data)
    return version, run.info.run_id


@reported
def deploy(
    *,
    config: dict,
    runtime: str,
    tracking_uri: str,
    version: str,
    run_id: str,
    evaluation: str,
    release: str = "",
    namespace: str = "",
) -> Deployment:
    """Carry out the gate's decision (the alias; in the cluster also the SeldonDeployment) and record it on the run."""
    import mlflow

    from workloads.pipeline import artifacts
    from workloads.training.train import configure_tracking, log_decision

    check_runtime(runtime)
    train_config = parse_config(config)
    _, challenge = artifacts.load_evaluation(evaluation, b"")
    configure_tracking(tracking_uri or None)
    done = deployer_for(runtime, release=release, namespace=namespace).deploy(
        train_config.model_name, version, challenge
    )
    with mlflow.start_run(run_id=run_id):
        log_decision(done.reason, challenge.champion_test)
        mlflow.set_tag("mlkit.deployment", json.dumps(done.details, sort_keys=True))
    return done

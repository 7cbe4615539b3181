"""The training pipeline in KFP v2's DSL: typed components over workloads.pipeline.steps, and their DAG.

    feature-job -> read-training-set -> validate-training-set -> split-training-set -> train-model
        -> evaluate-model -> register-model -> deploy-model

Each component body only imports and calls its step, so the compiled YAML carries no training logic; every
component runs in the kit's training image, which has the workloads code and kfp (no install at run time).
The feature job's SparkApplication runs in the feature image, as its feature-job release names it.

No `from __future__ import annotations` here: KFP reads the components' annotations as types.
"""

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import yaml
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from mlkit_contract import CREDENTIALS_SECRET, PROFILE_CONFIGMAP, PROFILE_MOUNT

NAME = "mlkit-training"
TRAINING_IMAGE = "mlkit-training"  # scripts/images.py builds it from workloads/training/Dockerfile
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "churn.yaml"
MLFLOW_CREDENTIALS = {key: key for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}


class ImageError(ValueError):
    pass


@dataclass(frozen=True)
class Images:
    """Where the kit's images are: the registry of the stack's mlkit:images and the kit's tag (KIT_IMAGE_TAG)."""

    registry: str
    tag: str

    def __post_init__(self):
        if not self.registry or "://" in self.registry:
            raise ImageError(f"registry {self.registry!r}: expected a registry such as 123456789012.dkr.ecr.../mlkit")
        if not self.tag or self.tag == "latest":
            raise ImageError(
                f"image tag {self.tag!r}: expected the kit's release tag (infra/versions.py KIT_IMAGE_TAG)"
            )

    @property
    def training(self) -> str:
        return f"{self.registry.rstrip('/')}/{TRAINING_IMAGE}:{self.tag}"


# --- components: each calls one step of workloads.pipeline.steps ----------------------------------------


def feature_job(
    config: dict,
    as_of: dict,
    feature_store: str,
    runtime: str,
    batch_source: str,
    batch_event_time: str,
    batch_specs: list,
    feature_job_release: str,
    namespace: str,
    run_id: str,
) -> NamedTuple("Outputs", [("pins", dict), ("batches", str)]):
    """Check the parameters, ingest batch_source if given (SparkApplication in the cluster), pin every table."""
    import json
    from collections import namedtuple

    from workloads.pipeline import steps
    from workloads.pipeline.featurejob import Batch

    batch = Batch(batch_source, batch_event_time, [str(s) for s in batch_specs]) if batch_source else None
    pins, reports = steps.feature_job(
        config=config,
        as_of=as_of,
        feature_store=feature_store,
        runtime=runtime,
        batch=batch,
        release=feature_job_release,
        namespace=namespace,
        run_id=run_id,
    )
    print(json.dumps({"pins": pins, "batches": reports}, indent=2))
    return namedtuple("Outputs", ["pins", "batches"])(pins, json.dumps(reports))


def read_training_set(config: dict, pins: dict, feature_store: str, training_set: Output[Dataset]):
    """The point-in-time training set at the pinned instants."""
    from workloads.pipeline import steps

    about = steps.read(config=config, pins=pins, feature_store=feature_store, out=training_set.path)
    training_set.metadata.update(about)


def validate_training_set(config: dict, min_rows: int, training_set: Input[Dataset], profile: Output[Metrics]):
    """Enough rows and both classes in every split, before any training."""
    from workloads.pipeline import steps

    for key, value in steps.validate(config=config, min_rows=min_rows, training_set=training_set.path).items():
        profile.log_metric(key, value)


def split_training_set(
    training_set: Input[Dataset], train: Output[Dataset], validation: Output[Dataset], test: Output[Dataset]
):
    """The train, validation and test splits as datasets."""
    from workloads.pipeline import steps

    rows = steps.split(training_set=training_set.path, train=train.path, validation=validation.path, test=test.path)
    for part, artifact in (("train", train), ("validation", validation), ("test", test)):
        artifact.metadata["rows"] = rows[part]


def train_model(config: dict, train: Input[Dataset], validation: Input[Dataset], model: Output[Model]):
    """Fit with early stopping on the validation split; export to ONNX."""
    from workloads.pipeline import steps

    model.metadata.update(steps.train(config=config, train=train.path, validation=validation.path, model=model.path))


def evaluate_model(
    config: dict,
    tracking_uri: str,
    model: Input[Model],
    test: Input[Dataset],
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
) -> NamedTuple("Outputs", [("promote", bool), ("reason", str)]):
    """Test metrics, ONNX parity, and the gate against the champion on the same test split."""
    from collections import namedtuple

    from workloads.pipeline import steps

    scores, challenge = steps.evaluate(
        config=config, tracking_uri=tracking_uri, model=model.path, test=test.path, evaluation=evaluation.path
    )
    for key, value in scores.items():
        metrics.log_metric(key, value)
    print(challenge["reason"])
    return namedtuple("Outputs", ["promote", "reason"])(challenge["promote"], challenge["reason"])


def register_model(
    config: dict,
    tags: dict,
    tracking_uri: str,
    pipeline_run: str,
    training_set: Input[Dataset],
    model: Input[Model],
    evaluation: Input[Artifact],
) -> NamedTuple("Outputs", [("version", str), ("run_id", str)]):
    """An MLflow run with the lineage tags; the ONNX model registered as a new version."""
    from collections import namedtuple

    from workloads.pipeline import steps

    version, run_id = steps.register(
        config=config,
        tags=tags,
        tracking_uri=tracking_uri,
        training_set=training_set.path,
        model=model.path,
        evaluation=evaluation.path,
        pipeline_run=pipeline_run,
    )
    print(f"registered version {version} (MLflow run {run_id})")
    return namedtuple("Outputs", ["version", "run_id"])(version, run_id)


def deploy_model(
    config: dict,
    runtime: str,
    tracking_uri: str,
    version: str,
    run_id: str,
    serving_release: str,
    namespace: str,
    evaluation: Input[Artifact],
) -> NamedTuple("Outputs", [("promoted", bool), ("reason", str)]):
    """The champion alias if the gate passed; in the cluster also the serving release's SeldonDeployment."""
    import json
    from collections import namedtuple

    from workloads.pipeline import steps

    done = steps.deploy(
        config=config,
        runtime=runtime,
        tracking_uri=tracking_uri,
        version=version,
        run_id=run_id,
        evaluation=evaluation.path,
        release=serving_release,
        namespace=namespace,
    )
    print(done.reason, json.dumps(done.details))
    return namedtuple("Outputs", ["promoted", "reason"])(done.promoted, done.reason)


STEPS = (
    feature_job,
    read_training_set,
    validate_training_set,
    split_training_set,
    train_model,
    evaluate_model,
    register_model,
    deploy_model,
)


class RunOutputs(NamedTuple):
    """What a run returns: the registered version, its MLflow run, and the gate's decision."""

    version: str
    run_id: str
    promoted: bool
    promotion: str


def default_config() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def build(images: Images):
    """The pipeline, its components in ``images``' training image. Defaults: the churn config, latest instants."""
    from kfp import kubernetes

    made = {step.__name__: dsl.component(step, base_image=images.training, install_kfp_package=False) for step in STEPS}

    def configured(task, *, mlflow: bool = False):
        # The feature store changes under the same parameters: a cached step would pin yesterday's instants.
        task.set_caching_options(False)
        # The team profile and the namespace it is checked against, where the run's pods can see the
        # team's ConfigMap (a run in the team namespace); elsewhere the store and MLflow come as parameters.
        kubernetes.use_config_map_as_volume(
            task, PROFILE_CONFIGMAP, mount_path=posixpath.dirname(PROFILE_MOUNT), optional=True
        )
        kubernetes.use_field_path_as_env(task, "POD_NAMESPACE", "metadata.namespace")
        if mlflow:
            kubernetes.use_secret_as_env(task, CREDENTIALS_SECRET, MLFLOW_CREDENTIALS, optional=True)
        return task

    # KFP reads the parameters' defaults from this signature; it copies them, so mutable defaults are safe here.
    @dsl.pipeline(name=NAME, description="Feature store -> checks -> PyTorch -> champion gate -> MLflow -> serving")
    def training(
        config: dict = default_config(),  # noqa: B008
        as_of: dict = {},  # noqa: B006
        feature_store: str = "",
        tracking_uri: str = "",
        tags: dict = {},  # noqa: B006
        runtime: str = "cluster",
        namespace: str = "",
        min_rows: int = 500,
        batch_source: str = "",
        batch_event_time: str = "",
        batch_specs: list = [],  # noqa: B006
        feature_job_release: str = "features",
        serving_release: str = "model",
    ) -> RunOutputs:
        features = configured(
            made["feature_job"](
                config=config,
                as_of=as_of,
                feature_store=feature_store,
                runtime=runtime,
                batch_source=batch_source,
                batch_event_time=batch_event_time,
                batch_specs=batch_specs,
                feature_job_release=feature_job_release,
                namespace=namespace,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            )
        )
        read = configured(
            made["read_training_set"](config=config, pins=features.outputs["pins"], feature_store=feature_store)
        )
        checked = configured(
            made["validate_training_set"](config=config, min_rows=min_rows, training_set=read.outputs["training_set"])
        )
        parts = configured(made["split_training_set"](training_set=read.outputs["training_set"]).after(checked))
        fitted = configured(
            made["train_model"](config=config, train=parts.outputs["train"], validation=parts.outputs["validation"])
        )
        evaluated = configured(
            made["evaluate_model"](
                config=config, tracking_uri=tracking_uri, model=fitted.outputs["model"], test=parts.outputs["test"]
            ),
            mlflow=True,
        )
        registered = configured(
            made["register_model"](
                config=config,
                tags=tags,
                tracking_uri=tracking_uri,
                pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                training_set=read.outputs["training_set"],
                model=fitted.outputs["model"],
                evaluation=evaluated.outputs["evaluation"],
            ),
            mlflow=True,
        )
        deployed = configured(
            made["deploy_model"](
                config=config,
                runtime=runtime,
                tracking_uri=tracking_uri,
                version=registered.outputs["version"],
                run_id=registered.outputs["run_id"],
                serving_release=serving_release,
                namespace=namespace,
                evaluation=evaluated.outputs["evaluation"],
            ),
            mlflow=True,
        )
        return RunOutputs(
            version=registered.outputs["version"],
            run_id=registered.outputs["run_id"],
            promoted=deployed.outputs["promoted"],
            promotion=deployed.outputs["reason"],
        )

    return training


def compile_pipeline(images: Images, path: str | Path) -> Path:
    from kfp import compiler

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build(images), package_path=str(path))
    return path

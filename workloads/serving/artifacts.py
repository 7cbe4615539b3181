"""Where a served model comes from: the registry, a bundle on the object store, or a local directory.

All three give a model bundle (workloads/common/bundle.py), the layout a training run logs.
`export` pins a registered version as a bundle on the store, so a deployment can start without
reaching MLflow (an air-gapped cluster, or a registry outage during a scale-up):

    python -m workloads.serving.artifacts models:/churn-classifier@champion s3://<bucket>/teams/churn/models/churn-classifier
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from workloads.common.bundle import BundleError, ModelBundle
from workloads.common.settings import settings
from workloads.common.storage import ObjectStore, StorageError, is_local, join, local_path

FORMS = "models:/<name>@<alias>, models:/<name>/<version>, a bundle on the store (s3://, gs://, abfss://, az://) or a directory"


class ModelSourceError(ValueError):
    """The model URI cannot be used; the message names it and the accepted forms."""


def fetch(uri: str, store: ObjectStore | None = None) -> ModelBundle:
    """The bundle ``uri`` names, in a local directory."""
    if uri.startswith("models:/"):
        target = Path(tempfile.mkdtemp(prefix="mlkit-model-"))
        fetch_registered(uri, target)
        directory = target
    else:
        try:
            if is_local(uri):
                directory = Path(local_path(uri))
                if not directory.is_dir():
                    raise ModelSourceError(f"model URI {uri!r}: nothing under that prefix. Accepted: {FORMS}")
            else:
                directory = Path(tempfile.mkdtemp(prefix="mlkit-model-"))
                if not (store or settings().store).at(uri).download(directory):
                    raise ModelSourceError(f"model URI {uri!r}: nothing under that prefix. Accepted: {FORMS}")
        except StorageError as e:
            raise ModelSourceError(f"model URI {uri!r}: {e}") from None
    try:
        return ModelBundle.read(directory, source=f"model URI {uri!r}")
    except BundleError as e:
        raise ModelSourceError(f"{e}. Accepted: {FORMS}") from None


def fetch_registered(uri: str, target: Path) -> tuple[str, str]:
    """Download a registered version (by alias or number) into ``target`` as a bundle; its name and version."""
    import mlflow

    reference = uri.removeprefix("models:/")
    client = mlflow.MlflowClient()
    if "@" in reference:
        name, _, alias = reference.partition("@")
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, _, number = reference.partition("/")
        if not (name and number.isdigit()):
            raise ModelSourceError(f"model URI {uri!r}: expected one of {FORMS}")
        version = client.get_model_version(name, number)
    # The run's artifacts carry the config, specs and transformations; the ONNX model is its own
    # logged model (MLflow 3), fetched through the registry into model/.
    mlflow.artifacts.download_artifacts(run_id=version.run_id, dst_path=str(target))
    mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version.version}", dst_path=str(target / "model")
    )
    ModelBundle.write_meta(target, name, str(version.version))
    return name, str(version.version)


def export(uri: str, destination: str, store: ObjectStore | None = None) -> str:
    """Pin a registered version to ``destination`` (any store URI or a directory), under <destination>/<version>."""
    with tempfile.TemporaryDirectory(prefix="mlkit-export-") as staging:
        _, version = fetch_registered(uri, Path(staging))
        ModelBundle.read(Path(staging), source=uri)  # a broken registered version is not pinned
        target = join(destination, version)
        (store or settings().store).at(target).upload(Path(staging))
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[1].startswith("models:/"):
        sys.exit("usage: python -m workloads.serving.artifacts models:/<name>@<alias> <store URI or directory>")
    from mlflow.exceptions import MlflowException

    try:
        print(export(sys.argv[1], sys.argv[2]))
    except (ModelSourceError, BundleError, StorageError, MlflowException) as e:
        sys.exit(f"error: {e}")

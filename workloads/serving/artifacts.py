"""Where a served model comes from: the registry, a directory on the object store, or a local directory.

All three give the same layout, the one a training run logs:
    model/model.onnx (+ its external data)   the registered ONNX model
    training/config.json                      the training config (which feature tables, in order)
    features/<table>/spec.json, transform.json  what requests are validated and transformed with
    meta.json                                 {"name", "version"} (written by export; optional)

`export` pins a registered version to a directory, so a deployment can start without reaching
MLflow (an air-gapped cluster, or a registry outage during a scale-up):

    python -m workloads.serving.artifacts models:/churn-classifier@champion s3://bucket/teams/churn/models/churn-classifier
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from workloads.common.storage import ObjectStore

FORMS = "models:/<name>@<alias>, models:/<name>/<version>, s3://<bucket>/<prefix> or a directory"


class ModelSourceError(ValueError):
    """The model URI cannot be used; the message names it and the accepted forms."""


def fetch(uri: str) -> tuple[Path, str, str]:
    """A local directory in the layout above, the model's name and its version."""
    if uri.startswith("models:/"):
        target = Path(tempfile.mkdtemp(prefix="mlkit-model-"))
        name, version = fetch_registered(uri, target)
        return target, name, version
    if uri.startswith("s3://"):
        target = Path(tempfile.mkdtemp(prefix="mlkit-model-"))
        _download_prefix(uri, target)
        directory = target
    elif "://" in uri:
        raise ModelSourceError(
            f"model URI {uri!r}: this image reads model directories from s3:// only; on GCS or ADLS serve from "
            f"the registry (models:/...), whose server reads the bucket. Accepted: {FORMS}"
        )
    else:
        directory = Path(uri)
    if not (directory / "model" / "model.onnx").is_file():
        raise ModelSourceError(f"model URI {uri!r}: no model/model.onnx there. Accepted: {FORMS}")
    meta = json.loads((directory / "meta.json").read_text()) if (directory / "meta.json").exists() else {}
    return directory, meta.get("name", directory.name), str(meta.get("version", "local"))


def fetch_registered(uri: str, target: Path) -> tuple[str, str]:
    """Download a registered version (by alias or number) into ``target``; its name and version."""
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
    (target / "meta.json").write_text(json.dumps({"name": name, "version": str(version.version)}))
    return name, str(version.version)


def export(uri: str, destination: str) -> str:
    """Pin a registered version to ``destination`` (s3:// or a directory), under <destination>/<version>."""
    with tempfile.TemporaryDirectory(prefix="mlkit-export-") as staging:
        _, version = fetch_registered(uri, Path(staging))
        target = f"{destination.rstrip('/')}/{version}"
        if target.startswith("s3://"):
            _upload_dir(Path(staging), target)
        else:
            shutil.copytree(staging, target, dirs_exist_ok=True)
    return target


def _split(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _download_prefix(uri: str, target: Path) -> None:
    bucket, prefix = _split(uri)
    client = ObjectStore.from_env().s3_client()
    found = False
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            found = True
            path = target / item["Key"].removeprefix(f"{prefix}/")
            path.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(path))
    if not found:
        raise ModelSourceError(f"model URI {uri!r}: nothing under that prefix. Accepted: {FORMS}")


def _upload_dir(source: Path, uri: str) -> None:
    bucket, prefix = _split(uri)
    client = ObjectStore.from_env().s3_client()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(source).as_posix()}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[1].startswith("models:/"):
        sys.exit("usage: python -m workloads.serving.artifacts models:/<name>@<alias> <s3://bucket/prefix | directory>")
    from mlflow.exceptions import MlflowException

    try:
        print(export(sys.argv[1], sys.argv[2]))
    except (ModelSourceError, MlflowException) as e:
        sys.exit(f"error: {e}")

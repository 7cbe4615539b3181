"""`python -m workloads.pipeline`: compile the training pipeline, run it on this machine, upload it, start a run.

Exit codes: 0 ok, 1 a bad parameter, a failed task or an unreachable server, 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="The training pipeline (Kubeflow Pipelines v2): compile, run locally, upload, start.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)

HostOpt = Annotated[str, typer.Option("--host", help="the KFP API, e.g. http://localhost:8080 after a port-forward")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="training config YAML; default the churn config the pipeline carries")
]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="NAME=JSON (or NAME=text) pipeline parameter; repeatable")
]


def fail(message: str) -> None:
    err.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def parse_params(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--param {item!r}: expected NAME=VALUE")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value  # plain text: a string parameter
    return out


def load_config(path: Path | None) -> dict:
    import yaml

    from workloads.pipeline.definition import default_config

    if path is None:
        return default_config()
    try:
        return yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        fail(f"{path}: cannot read: {e.strerror}")
    return {}


@app.command("compile")
def compile_(
    output: Annotated[Path, typer.Option("--output", help="where to write the pipeline YAML")],
    registry: Annotated[str, typer.Option("--registry", help="the stack's mlkit:images registry")],
    tag: Annotated[str, typer.Option("--tag", help="the kit's image tag (infra/versions.py KIT_IMAGE_TAG)")],
) -> None:
    """Compile the pipeline to YAML, every component in REGISTRY/mlkit-training:TAG."""
    from workloads.pipeline.definition import ImageError, Images, compile_pipeline

    try:
        images = Images(registry, tag)
    except ImageError as e:
        fail(str(e))
    path = compile_pipeline(images, output)
    print(f"{path}: components in {images.training}")


@app.command("run-local")
def run_local(
    store: Annotated[str, typer.Option("--store", help="root of the feature store")],
    tracking_uri: Annotated[str, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow")] = "",
    pipeline_root: Annotated[Path, typer.Option("--pipeline-root", help="where the tasks' artifacts go")] = Path(
        "data/pipeline"
    ),
    config: ConfigOpt = None,
    param: ParamOpt = None,
) -> None:
    """Run the pipeline here with kfp.local, each task a subprocess of this Python (runtime=local)."""
    from workloads.pipeline.client import PipelineFailed
    from workloads.pipeline.client import run_local as run
    from workloads.training.config import ConfigError

    try:
        outputs = run(
            pipeline_root=str(pipeline_root.resolve()),
            config=load_config(config),
            feature_store=store,
            tracking_uri=tracking_uri,
            **parse_params(param),
        )
    except (PipelineFailed, ConfigError) as e:
        fail(str(e))
    print(json.dumps(outputs, indent=2))


@app.command()
def upload(
    package: Annotated[Path, typer.Argument(help="the compiled pipeline (make pipeline)")],
    host: HostOpt,
    version: Annotated[str, typer.Option("--version", help="a name for this version, e.g. the kit's tag and a date")],
) -> None:
    """Upload the compiled pipeline as a new version of mlkit-training."""
    import kfp

    from workloads.pipeline.client import upload as send

    print(send(kfp.Client(host=host), str(package), version=version))


@app.command()
def start(
    host: HostOpt,
    run_name: Annotated[str, typer.Option("--run-name", help="the run's name: a second start of it starts nothing")],
    store: Annotated[str, typer.Option("--store", help="root of the feature store")],
    tracking_uri: Annotated[str, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow")] = "",
    config: ConfigOpt = None,
    param: ParamOpt = None,
    service_account: Annotated[
        str | None, typer.Option("--service-account", help="the account the run's pods run as")
    ] = None,
) -> None:
    """Start a run of the uploaded pipeline's newest version on a KFP server."""
    import kfp

    from workloads.pipeline.client import PipelineNotFound, start_run
    from workloads.training.config import ConfigError

    try:
        started = start_run(
            kfp.Client(host=host),
            run_name=run_name,
            config=load_config(config),
            feature_store=store,
            tracking_uri=tracking_uri,
            service_account=service_account,
            **parse_params(param),
        )
    except (ConfigError, PipelineNotFound) as e:
        fail(str(e))
    print(json.dumps({"run_id": started.run_id, "started": started.started}))


if __name__ == "__main__":
    sys.exit(app())

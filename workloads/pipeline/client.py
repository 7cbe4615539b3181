"""Starting the training pipeline: on a KFP server through kfp.Client (what the retraining trigger calls), or on
this machine with kfp.local.

    start_run(kfp.Client(host=...), run_name=..., config=..., feature_store=..., tracking_uri=..., tags=...)
    run_local(config=..., feature_store=..., tracking_uri=..., pipeline_root=...)

Parameters are checked before anything is started: an unknown name or a config that fails validation is a
ConfigError here, not a failed run later.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import sys
from dataclasses import dataclass

from workloads.training.config import ConfigError

EXPERIMENT = "retraining"  # where triggered runs are grouped in the KFP UI


class PipelineNotFound(Exception):
    pass


class PipelineFailed(Exception):
    """A local run's task failed; ``task`` is the first to fail and ``message`` its ``error:`` line (or the last line)."""

    def __init__(self, task: str, message: str):
        super().__init__(f"task {task} failed: {message}")
        self.task, self.message = task, message


def parameters() -> dict[str, inspect.Parameter]:
    """The pipeline's parameters, as its definition declares them (names, defaults)."""
    from workloads.pipeline.definition import Images, build

    return dict(inspect.signature(build(Images("local", "local")).pipeline_func).parameters)


def run_parameters(*, config: dict, check_config: bool = True, **given) -> dict:
    """The parameters of one run: names checked against the pipeline's own, ``config`` (a training config as a
    mapping) validated unless ``check_config`` is off, ``tags`` turned to strings (MLflow's tags are)."""
    from workloads.pipeline.steps import parse_config

    known = parameters()
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"unknown pipeline parameters {unknown}; the pipeline takes {sorted(known)}")
    if check_config:
        parse_config(config, given.get("as_of"))
    out = {"config": config, **{k: v for k, v in given.items() if v is not None}}
    if "tags" in out:
        out["tags"] = {str(k): str(v) for k, v in out["tags"].items()}
    return out


@dataclass(frozen=True)
class Started:
    run_id: str
    started: bool  # False: a run of that name was there already (a retried trigger), and is returned instead


def start_run(
    client,
    *,
    run_name: str,
    config: dict,
    feature_store: str,
    tracking_uri: str = "",
    tags: dict[str, str] | None = None,
    as_of: dict[str, str] | None = None,
    pipeline: str | None = None,
    experiment: str = EXPERIMENT,
    service_account: str | None = None,
    **more,
) -> Started:
    """Start one run of the uploaded pipeline's newest version on the KFP server ``client`` (a kfp.Client).

    ``run_name`` makes it idempotent: a run of that name in ``experiment`` is returned, not started again.
    The trigger passes its Retrain's fields: config (the served version's, without as_of pins), the feature store
    it was trained on, MLflow, and its mlkit.trigger.* tags; anything else is a parameter of the pipeline."""
    from workloads.pipeline.definition import NAME

    params = run_parameters(
        config=config, feature_store=feature_store, tracking_uri=tracking_uri, tags=tags or {}, as_of=as_of, **more
    )
    pipeline = pipeline or NAME
    experiment_id = _experiment(client, experiment)
    same = json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": run_name}]})
    existing = client.list_runs(experiment_id=experiment_id, filter=same, page_size=1).runs or []
    if existing:
        return Started(existing[0].run_id, False)
    pipeline_id = client.get_pipeline_id(pipeline)
    if pipeline_id is None:
        raise PipelineNotFound(
            f"no pipeline {pipeline!r} on the KFP server: upload it first (python -m workloads.pipeline upload --host ...)"
        )
    versions = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc").pipeline_versions
    if not versions:
        raise PipelineNotFound(f"pipeline {pipeline!r} has no version on the KFP server: upload one")
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=run_name,
        params=params,
        pipeline_id=pipeline_id,
        version_id=versions[0].pipeline_version_id,
        enable_caching=False,  # the feature store changes under the same parameters
        service_account=service_account,
    )
    return Started(run.run_id, True)


def _experiment(client, name: str) -> str:
    try:
        return client.get_experiment(experiment_name=name).experiment_id
    except ValueError:  # kfp.Client: "No experiment is found with name ..."
        return client.create_experiment(name).experiment_id


def upload(client, package: str, *, version: str, pipeline: str | None = None) -> str:
    """Upload a compiled pipeline as a new version of ``pipeline`` (created on first upload); its version id."""
    from workloads.pipeline.definition import NAME

    pipeline = pipeline or NAME
    pipeline_id = client.get_pipeline_id(pipeline)
    if pipeline_id is None:
        created = client.upload_pipeline(package, pipeline_name=pipeline)
        pipeline_id = created.pipeline_id
    uploaded = client.upload_pipeline_version(package, pipeline_version_name=version, pipeline_id=pipeline_id)
    return uploaded.pipeline_version_id


# --- local runs ------------------------------------------------------------------------------------------


class _Tee(io.TextIOBase):
    """What the local runner prints (its tasks' output), passed on and kept, to name a failed task's error."""

    def __init__(self, out):
        self.out, self.kept = out, []

    def write(self, text: str) -> int:
        self.kept.append(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_local(*, pipeline_root: str, config: dict, **given) -> dict:
    """One run on this machine with kfp.local: each task a subprocess of this Python (its environment, no
    venv, nothing installed), ``runtime=local``. Returns the pipeline's outputs; PipelineFailed names the task."""
    from kfp import local

    from workloads.pipeline.definition import Images, build

    # The config is left to the pipeline's first step, which checks it as it does in the cluster.
    params = run_parameters(config=config, check_config=False, runtime="local", **given)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root, raise_on_error=True)
    pipeline = build(Images("local", "local"))
    tee = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(tee):
            return dict(pipeline(**params).outputs)
    except RuntimeError as e:
        found = re.search(r"Inner task failed: (\S+?)\.?$", ANSI.sub("", str(e)))
        if not found:
            raise
        lines = [ANSI.sub("", line).rstrip() for line in "".join(tee.kept).splitlines()]
        raise PipelineFailed(found.group(1).strip("'"), _error(lines) or str(e)) from None


def _error(lines: list[str]) -> str | None:
    """The last ``error:`` line a task printed, with the indented lines that continue it (a config's problems)."""
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("error: ")]
    if not starts:
        return None
    first = starts[-1]
    message = [lines[first].lstrip().removeprefix("error: ")]
    for line in lines[first + 1 :]:
        if not line.startswith("  "):
            break
        message.append(line.strip())
    return "\n".join(message)

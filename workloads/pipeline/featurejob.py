"""The pipeline's optional first step, the feature job: run in this process, or as a SparkApplication in the cluster.

Both take one batch (a source and an event time) and leave it committed in the feature store before the
pipeline pins its tables. Locally the job runs here (workloads.features.job.run_batch, Spark in local mode).
In the cluster it is a SparkApplication made from the team's feature-job release (charts/feature-job): the
release's own object is the template (image, specs, team profile, service account, identity labels and Hadoop
settings as the chart rendered them), and only the batch's ``--input`` and ``--event-time`` change.
"""

from __future__ import annotations

import copy
import hashlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workloads.pipeline.kube import SCHEDULED_SPARK_APPLICATION, SPARK_APPLICATION, KubeApi, KubeError, pod_namespace

if TYPE_CHECKING:
    from workloads.common.featurestore import FeatureStore


class FeatureJobError(Exception):
    """The batch could not be ingested; nothing after this step runs."""


@dataclass(frozen=True)
class Batch:
    """One raw batch to ingest: the source (a path or store URI), its event time (ISO 8601; empty: now), its specs."""

    source: str
    event_time: str = ""
    specs: list[str] = field(default_factory=list)  # spec files (local); the cluster uses its release's specs


class FeatureJob(ABC):
    """Ingests one batch into the feature store and returns what it did, for the task's log."""

    @abstractmethod
    def run(self, store: FeatureStore, batch: Batch) -> list[dict]: ...


class LocalFeatureJob(FeatureJob):
    """The feature job in this process: the same run_batch `python -m workloads.features ingest` runs."""

    def run(self, store: FeatureStore, batch: Batch) -> list[dict]:
        from workloads.common.spark import SparkSetupError, spark_session
        from workloads.common.specs import SpecError, load_spec
        from workloads.features.job import JobError, parse_event_time, run_batch

        if not batch.specs:
            raise FeatureJobError("ingest_specs is empty: a local feature job needs the spec files of its tables")
        try:
            specs = [load_spec(path) for path in batch.specs]
            when = parse_event_time(batch.event_time or None)
            spark = spark_session("mlkit-pipeline-features", store.store)
            try:
                return [r.as_dict() for r in run_batch(spark, store, specs, batch.source, event_time=when)]
            finally:
                spark.stop()
        except (SpecError, JobError, SparkSetupError) as e:
            raise FeatureJobError(str(e)) from None


# Spark operator states (status.applicationState.state) after which nothing more happens.
DONE, FAILED = {"COMPLETED"}, {"FAILED", "SUBMISSION_FAILED"}


@dataclass
class SparkApplicationJob(FeatureJob):
    """A SparkApplication made from the feature-job release ``release`` in ``namespace``; waits for it to finish."""

    release: str
    namespace: str = ""
    run_id: str = ""  # the pipeline run: names the SparkApplication, so a retried task finds its own
    timeout_s: float = 3 * 3600
    poll_s: float = 10.0
    api: KubeApi | None = None

    def run(self, store: FeatureStore, batch: Batch) -> list[dict]:
        api = self.api or KubeApi()
        namespace = pod_namespace(self.namespace)
        try:
            template = api.get(SPARK_APPLICATION, namespace, self.release) or api.get(
                SCHEDULED_SPARK_APPLICATION, namespace, self.release
            )
            if template is None:
                raise FeatureJobError(
                    f"no SparkApplication or ScheduledSparkApplication {self.release!r} in namespace {namespace}: "
                    f"install the feature job there first (helm install {self.release} charts/feature-job -n {namespace})"
                )
            body = spark_application(template, name=run_name(self.release, self.run_id), batch=batch, store=store.root)
            created, new = api.create(SPARK_APPLICATION, namespace, body)
            return [self._wait(api, namespace, created["metadata"]["name"]) | {"created": new}]
        except KubeError as e:
            raise FeatureJobError(str(e)) from None

    def _wait(self, api: KubeApi, namespace: str, name: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while True:
            app = api.get(SPARK_APPLICATION, namespace, name)
            if app is None:
                raise FeatureJobError(f"SparkApplication {namespace}/{name} was deleted before it finished")
            state = (app.get("status") or {}).get("applicationState") or {}
            if state.get("state") in DONE:
                return {"sparkApplication": f"{namespace}/{name}", "state": state["state"]}
            if state.get("state") in FAILED:
                raise FeatureJobError(
                    f"SparkApplication {namespace}/{name} {state['state']}: {state.get('errorMessage') or 'no message'}"
                    f" (kubectl -n {namespace} logs {name}-driver)"
                )
            if time.monotonic() > deadline:
                raise FeatureJobError(
                    f"SparkApplication {namespace}/{name} did not finish in {self.timeout_s:.0f} s (state {state.get('state')})"
                )
            time.sleep(self.poll_s)


def run_name(release: str, run_id: str) -> str:
    """A DNS-1123 name unique to the pipeline run: Spark names the driver pod after it."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10] if run_id else f"{time.time_ns():x}"[-10:]
    return f"{release[:40].rstrip('-')}-pl-{digest}"


def spark_application(template: dict, *, name: str, batch: Batch, store: str) -> dict:
    """The release's SparkApplication (or a ScheduledSparkApplication's template) reading ``batch`` instead.

    The release must write the store the pipeline reads: otherwise its pins would name instants of another store."""
    scheduled = template.get("kind") == SCHEDULED_SPARK_APPLICATION.kind
    spec = copy.deepcopy(template["spec"]["template"] if scheduled else template["spec"])
    arguments = list(spec.get("arguments") or [])
    if not arguments or arguments[0] != "ingest":
        raise FeatureJobError(
            f"{template['kind']} {template['metadata']['name']}: its arguments {arguments} are not the feature job's ingest"
        )
    release_store = _option(arguments, "--store")
    if release_store is not None and release_store.rstrip("/") != store.rstrip("/"):
        raise FeatureJobError(
            f"the feature-job release writes {release_store}, but the pipeline reads {store}: "
            f"pass feature_store={release_store} or use the release of that store"
        )
    arguments = _set_option(arguments, "--input", batch.source)
    arguments = _set_option(arguments, "--event-time", batch.event_time or None)
    spec["arguments"] = arguments
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels["mlkit.io/started-by"] = "training-pipeline"
    return {
        "apiVersion": SPARK_APPLICATION.api_version,
        "kind": SPARK_APPLICATION.kind,
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def _option(arguments: list[str], flag: str) -> str | None:
    return arguments[arguments.index(flag) + 1] if flag in arguments else None


def _set_option(arguments: list[str], flag: str, value: str | None) -> list[str]:
    """``arguments`` with ``flag value`` replaced, added, or (value None) removed."""
    out = list(arguments)
    if flag in out:
        at = out.index(flag)
        del out[at : at + 2]
    if value is not None:
        out += [flag, value]
    return out

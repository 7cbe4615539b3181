"""The retraining trigger: an Alertmanager webhook receiver that starts retraining when a model's drift alert fires.

    # in the cluster (charts/drift-monitor): Jobs in the team namespace, claims as ConfigMaps there
    python -m workloads.monitoring.trigger serve --host 0.0.0.0 --port 8080 --launcher job \
        --token-file /etc/mlkit/trigger-token/token --model churn-classifier
    # on this machine: the training command as a subprocess, claims under --state-dir
    MLKIT_TRIGGER_TOKEN=... python -m workloads.monitoring.trigger serve --port 8080 --tracking-uri sqlite:///...

``POST /alerts`` takes Alertmanager's webhook payload (version 4) with ``Authorization: Bearer <token>``.
For each model named by a firing alert labelled ``mlkit_action=retrain`` (with ``registered_model`` and
``registered_version``) it reads the served version's MLflow run (its training config and its feature store,
the lineage training records), drops the config's ``as_of`` pins, so the new run reads the latest feature data,
and starts one training run tagged with the alert that started it (``mlkit.trigger.*``). It answers 202 with
what it started and why it started nothing else; a bad token is a 401, a malformed payload a 400 or 422 naming
the field, and a failure to reach MLflow or the launcher a 503, which Alertmanager retries.

Idempotent per alert-group episode. Alertmanager resends a group every repeat_interval, after its own restart,
and from every replica of a cluster. An episode is the groupKey plus the earliest ``startsAt`` of the model's
retrain alerts in the notification: the same on every resend; a group that resolves and fires again is a new
one. Before it starts anything the receiver creates a claim named after (groupKey, model, episode) with a
create-if-absent write, and only the creator launches: concurrent deliveries, a restarted receiver and a second
replica start at most one run. Claims live where the launcher runs:

- ``job`` (the cluster): a ConfigMap in the team namespace, created through the API server (which answers
  409 when the name exists) and found with ``kubectl get configmaps -l mlkit.io/retrain-claim``; the Job gets
  the same name. Not the object store: the team's cloud identity is bound to the profile's service accounts,
  and this pod runs as its own, which may create Jobs; MLflow serves artifacts through its server, so the
  receiver needs no store access at all.
- ``local``: a JSON file under ``--state-dir``/claims, created with link(2), which fails when the name exists.

A launch that fails releases its claim and answers 503, so the resend starts it. A receiver killed between its
claim and its launch leaves the claim in state ``claimed``: that episode starts nothing more (at most once, never
twice), and the answer says which claim to delete to let the next resend start it.

Launchers share one small interface (``Launcher.launch``): ``local`` (the training command, or with
``local-pipeline`` the training pipeline under kfp.local), ``job`` (a Job from
the chart's template), ``kfp`` (a run of the training pipeline on Kubeflow Pipelines, workloads/pipeline, with the
same config and tags; claims in the team namespace as for ``job``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from workloads.common import metrics
from workloads.common.models import problems
from workloads.common.settings import env

log = logging.getLogger("mlkit.trigger")

REPO = Path(__file__).resolve().parents[2]
ACTION_LABEL, ACTION = "mlkit_action", "retrain"
TAG_PREFIX = "mlkit.trigger."
# Where the Job's pod finds its training config: the pod's own annotation, projected by the downward API
# (one object to create, nothing to clean up, the config readable on the Job).
CONFIG_ANNOTATION = "mlkit.io/train-config"
CONFIG_DIR = "/etc/mlkit/retrain"
CLAIM_LABEL = "mlkit.io/retrain-claim"
CLAIM_KEY = "claim.json"
MAX_BODY_BYTES = 4 << 20  # a group of a few thousand alerts; Alertmanager sends far less with maxAlerts
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # workloads.training.config.TrainConfig.model_name
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


# --- errors -----------------------------------------------------------------------------------------------


class TriggerError(Exception):
    """The receiver cannot start with these settings; the message names the option or file."""


class Unavailable(Exception):
    """MLflow, the API server or the claims' store cannot be reached now: a 503, which Alertmanager retries."""


class NotRetrainable(Exception):
    """The served version cannot be retrained from its lineage (no such version, no training config, ...)."""


class LaunchError(Unavailable):
    """The launcher could not start the run; its claim is released and the notification answered 503."""


class BadAlert(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


# --- the payload (Alertmanager's webhook, version 4) --------------------------------------------------------


class Alert(BaseModel):
    # Alertmanager sends more (annotations, endsAt, generatorURL): only what the receiver reads is checked.
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    startsAt: AwareDatetime
    fingerprint: str = Field(min_length=1)


class Notification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1)


def parse(body: bytes) -> Notification:
    """The notification in ``body``; ValueError (not JSON) or BadAlert (the fields wrong), each naming the problem."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError("request body: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"request body: not JSON ({e})") from None
    try:
        notification = Notification.model_validate(data)
    except ValidationError as e:
        raise BadAlert(problems(e, root="(notification)")) from None
    bad = []
    for i, alert in enumerate(notification.alerts):
        if alert.labels.get(ACTION_LABEL) != ACTION:
            continue
        model, version = alert.labels.get("registered_model"), alert.labels.get("registered_version")
        where = f"alerts[{i}].labels"
        if not model:
            bad.append(f"{where}.registered_model: is required on an alert labelled {ACTION_LABEL}={ACTION}")
        elif not MODEL_NAME.match(model):
            bad.append(f"{where}.registered_model: {model!r} is not a registered model name")
        if not version:
            bad.append(f"{where}.registered_version: is required on an alert labelled {ACTION_LABEL}={ACTION}")
        elif not version.isdigit():
            bad.append(f"{where}.registered_version: {version!r} is not a model version number")
    if bad:
        raise BadAlert(bad)
    return notification


# --- what to start --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrain:
    """One training run to start, the same for every launcher."""

    name: str  # unique to (groupKey, model, episode): the claim's and the Job's name
    model: str
    config: dict  # the served version's training config, without as_of pins
    store: str  # the feature store the served version was trained on
    tracking_uri: str
    tags: dict[str, str]

    def pipeline_command(self, config_path: str, pipeline_root: str, python: str = "python") -> list[str]:
        """The training pipeline run on this machine with kfp.local (workloads/pipeline/__main__.py `run-local`)."""
        return [
            python,
            *("-m", "workloads.pipeline", "run-local", "--config", config_path, "--pipeline-root", pipeline_root),
            *("--store", self.store, "--tracking-uri", self.tracking_uri),
            *("--param", f"tags={json.dumps(self.tags, sort_keys=True)}"),
        ]

    def command(self, config_path: str, python: str = "python") -> list[str]:
        """The training CLI's command line (workloads/training/__main__.py `train`)."""
        tags = [arg for key, value in sorted(self.tags.items()) for arg in ("--tag", f"{key}={value}")]
        return [
            python,
            *("-m", "workloads.training", "train", "--config", config_path),
            *("--store", self.store, "--tracking-uri", self.tracking_uri),
            *tags,
        ]


@dataclass(frozen=True)
class Launched:
    started: bool  # False: the launcher found this run already started (a Job of that name exists)
    details: dict


def dns_label(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].rstrip("-") or "model"


def episode_of(alerts: list[Alert]) -> datetime:
    return min(alert.startsAt for alert in alerts).astimezone(UTC)


def run_name(group_key: str, model: str, episode: datetime) -> str:
    """A DNS-1123 label (a Job's name must be one: it becomes its pods' job-name label), at most 54 characters."""
    digest = hashlib.sha256(f"{group_key}\0{model}".encode()).hexdigest()[:10]
    return f"retrain-{dns_label(model, 20)}-{episode.strftime('%Y%m%dt%H%M%Sz')}-{digest}"


# --- launchers ------------------------------------------------------------------------------------------


class Launcher(ABC):
    """Starts one training run. ``launch`` returns what it started; LaunchError when it could not."""

    kind: str

    @abstractmethod
    def launch(self, retrain: Retrain) -> Launched: ...


class LocalLauncher(Launcher):
    """The training command (or, with ``pipeline``, the training pipeline under kfp.local) as a detached
    subprocess; its config, command, pid, log and exit code in ``directory/<name>/``."""

    def __init__(self, directory: Path, python: str = sys.executable, *, pipeline: bool = False):
        self.directory, self.python, self.pipeline = directory, python, pipeline
        self.kind = "local-pipeline" if pipeline else "local"

    def launch(self, retrain: Retrain) -> Launched:
        run_dir = self.directory / retrain.name
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            config = run_dir / "config.json"
            config.write_text(json.dumps(retrain.config, indent=2) + "\n")
            if self.pipeline:
                command = retrain.pipeline_command(str(config), str(run_dir / "pipeline"), python=self.python)
            else:
                command = retrain.command(str(config), python=self.python)
            (run_dir / "command.json").write_text(json.dumps(command, indent=2) + "\n")
            # The kit's packages from this checkout, wherever the receiver was started.
            path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
            with open(run_dir / "train.log", "ab") as output:
                process = subprocess.Popen(
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=run_dir,
                    env={**os.environ, "PYTHONPATH": path},
                    start_new_session=True,  # a receiver stopped or restarted does not stop the training
                )
        except OSError as e:
            raise LaunchError(f"could not start the training command in {run_dir}: {e}") from None
        (run_dir / "pid").write_text(f"{process.pid}\n")  # its own process group: stop it with kill -- -<pid>
        threading.Thread(target=self._reap, args=(process, run_dir), name=f"reap-{process.pid}", daemon=True).start()
        return Launched(
            True, {"launcher": self.kind, "pid": process.pid, "command": command, "log": str(run_dir / "train.log")}
        )

    @staticmethod
    def _reap(process: subprocess.Popen, run_dir: Path) -> None:
        code = process.wait()  # no zombie; the code for whoever reads the run directory
        (run_dir / "exit-code").write_text(f"{code}\n")
        log.info("training %s exited %s (log %s)", run_dir.name, code, run_dir / "train.log")


@dataclass(frozen=True)
class KubeApi:
    """The Kubernetes API server, as this pod's service account (its token re-read per request: it rotates)."""

    server: str
    namespace: str
    token_file: Path | None = None
    token: str | None = None
    ca_file: str | None = None
    timeout: float = 10.0

    @classmethod
    def in_cluster(cls, namespace: str | None = None) -> KubeApi:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        token = SERVICE_ACCOUNT / "token"
        if not host or not token.is_file():
            raise TriggerError(
                "--launcher job runs in a pod: KUBERNETES_SERVICE_HOST is unset or no service-account token is "
                f"mounted at {token} (automountServiceAccountToken must stay on); on a laptop use --launcher local"
            )
        if not namespace:
            namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip()
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return cls(server, namespace, token_file=token, ca_file=str(SERVICE_ACCOUNT / "ca.crt"))

    def request(
        self, method: str, path: str, body: dict | None = None, content_type: str = "application/json"
    ) -> tuple[int, dict]:
        import requests

        token = self.token_file.read_text().strip() if self.token_file else self.token
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": content_type}
        try:
            response = requests.request(
                method,
                f"{self.server}{path}",
                data=None if body is None else json.dumps(body),
                headers=headers,
                verify=self.ca_file or True,
                timeout=self.timeout,
            )
        except requests.RequestException as e:
            raise Unavailable(f"the Kubernetes API server {self.server} did not answer: {e}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {"message": response.text[:300]}
        return response.status_code, answer if isinstance(answer, dict) else {"message": str(answer)[:300]}


def _refused(what: str, status: int, answer: dict, namespace: str) -> str:
    hint = "; the chart's Role lets the trigger act in its own namespace only" if status == 403 else ""
    return f"the API server refused {what} in namespace {namespace} ({status}): {answer.get('message', answer)}{hint}"


class JobLauncher(Launcher):
    """A Kubernetes Job in the team namespace, from the chart's Job template (the pod's identity, image,
    resources and mounts); this fills in the name, the training command and its config."""

    kind = "job"

    def __init__(self, api: KubeApi, template: dict):
        self.api, self.template = api, template
        containers = (((template.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
        if template.get("kind") != "Job" or not isinstance(containers, list) or len(containers) != 1:
            raise TriggerError(
                "the Job template is not a Job with one container (spec.template.spec.containers): "
                "charts/drift-monitor renders it as the ConfigMap <release>-retrain-job"
            )

    def body(self, retrain: Retrain) -> dict:
        job = copy.deepcopy(self.template)
        meta = job.setdefault("metadata", {})
        meta.update(name=retrain.name, namespace=self.api.namespace)
        meta.setdefault("labels", {})["mlkit.io/registered-model"] = dns_label(retrain.model, 63)
        meta.setdefault("annotations", {}).update({"mlkit.io/registered-model": retrain.model})
        pod = job["spec"]["template"]
        pod.setdefault("metadata", {}).setdefault("annotations", {})[CONFIG_ANNOTATION] = json.dumps(retrain.config)
        spec = pod["spec"]
        spec.setdefault("volumes", []).append(
            {
                "name": "retrain-config",
                "downwardAPI": {
                    "items": [
                        {
                            "path": "config.json",
                            "fieldRef": {"fieldPath": f"metadata.annotations['{CONFIG_ANNOTATION}']"},
                        }
                    ]
                },
            }
        )
        [container] = spec["containers"]
        container["command"] = retrain.command(f"{CONFIG_DIR}/config.json")
        container.pop("args", None)
        container.setdefault("volumeMounts", []).append(
            {"name": "retrain-config", "mountPath": CONFIG_DIR, "readOnly": True}
        )
        return job

    def launch(self, retrain: Retrain) -> Launched:
        body = self.body(retrain)
        status, answer = self.api.request("POST", f"/apis/batch/v1/namespaces/{self.api.namespace}/jobs", body)
        where = {"launcher": self.kind, "job": retrain.name, "namespace": self.api.namespace}
        if status == 201:
            uid = (answer.get("metadata") or {}).get("uid")
            return Launched(
                True, {**where, "uid": uid, "command": body["spec"]["template"]["spec"]["containers"][0]["command"]}
            )
        if status == 409:  # the name is unique to the episode: it was started before
            return Launched(False, {**where, "reason": f"Job {self.api.namespace}/{retrain.name} already exists"})
        raise LaunchError(_refused(f"Job {retrain.name}", status, answer, self.api.namespace))


LAUNCHERS: dict[str, type[Launcher]] = {"local": LocalLauncher, "job": JobLauncher}


class KfpLauncher(Launcher):
    """A run of the training pipeline uploaded to Kubeflow Pipelines (workloads.pipeline.client.start_run), named
    after the claim: a retried launch finds that run and starts no second one. ``client``: a kfp.Client."""

    kind = "kfp"

    def __init__(self, client, service_account: str | None = None):
        self.client, self.service_account = client, service_account

    @classmethod
    def connect(cls, host: str, service_account: str | None = None) -> KfpLauncher:
        import kfp

        # In the cluster kfp.Client reads the pod's projected service-account token for KFP's auth proxy.
        return cls(kfp.Client(host=host), service_account)

    def launch(self, retrain: Retrain) -> Launched:
        import urllib3
        from kfp_server_api.exceptions import ApiException

        from workloads.pipeline.client import PipelineNotFound, start_run
        from workloads.training.config import ConfigError

        try:
            started = start_run(
                self.client,
                run_name=retrain.name,
                config=retrain.config,
                feature_store=retrain.store,
                tracking_uri=retrain.tracking_uri,
                tags=retrain.tags,
                service_account=self.service_account,
            )
        except (PipelineNotFound, ConfigError) as e:
            raise LaunchError(f"Kubeflow Pipelines: {e}") from None
        except ApiException as e:
            raise LaunchError(f"Kubeflow Pipelines answered {e.status} {e.reason}: {str(e.body)[:300]}") from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise LaunchError(f"Kubeflow Pipelines is unreachable: {e}") from None
        return Launched(started.started, {"launcher": self.kind, "run_id": started.run_id, "run_name": retrain.name})


# --- claims ---------------------------------------------------------------------------------------------


class Claims(ABC):
    """At most one start per name: ``create`` succeeds for exactly one caller until the claim is released."""

    @abstractmethod
    def create(self, name: str, record: dict) -> bool: ...

    @abstractmethod
    def read(self, name: str) -> dict | None: ...

    @abstractmethod
    def update(self, name: str, record: dict) -> None: ...

    @abstractmethod
    def release(self, name: str) -> None: ...

    @abstractmethod
    def where(self, name: str) -> str: ...


class DirectoryClaims(Claims):
    """``<directory>/<name>.json``; written whole to a temporary file, then linked into place: link(2) fails when
    the name exists, so one writer wins and no reader ever sees half a claim."""

    def __init__(self, directory: Path):
        self.directory = directory

    def where(self, name: str) -> str:
        return str(self.directory / f"{name}.json")

    def _write(self, name: str, record: dict, replace: bool) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.directory, prefix=f".{name}.", delete=False) as tmp:
                json.dump(record, tmp, indent=2)
            try:
                if replace:
                    os.replace(tmp.name, self.where(name))
                    return True
                os.link(tmp.name, self.where(name))
                return True
            except FileExistsError:
                return False
            finally:
                Path(tmp.name).unlink(missing_ok=True)
        except OSError as e:
            raise Unavailable(f"cannot write the claim {self.where(name)}: {e.strerror}") from None

    def create(self, name: str, record: dict) -> bool:
        return self._write(name, record, replace=False)

    def update(self, name: str, record: dict) -> None:
        self._write(name, record, replace=True)

    def read(self, name: str) -> dict | None:
        try:
            return json.loads(Path(self.where(name)).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise Unavailable(f"cannot read the claim {self.where(name)}: {e}") from None

    def release(self, name: str) -> None:
        Path(self.where(name)).unlink(missing_ok=True)


class ConfigMapClaims(Claims):
    """A ConfigMap per claim in the team namespace: the API server's create is create-if-absent (409)."""

    def __init__(self, api: KubeApi):
        self.api = api
        self.path = f"/api/v1/namespaces/{api.namespace}/configmaps"

    def where(self, name: str) -> str:
        return f"ConfigMap {self.api.namespace}/{name}"

    def create(self, name: str, record: dict) -> bool:
        labels = {CLAIM_LABEL: "true", "mlkit.io/registered-model": dns_label(record["registered_model"], 63)}
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels},
            "data": {CLAIM_KEY: json.dumps(record, indent=2)},
        }
        status, answer = self.api.request("POST", self.path, body)
        if status == 201:
            return True
        if status == 409:
            return False
        raise Unavailable(_refused(f"the claim {self.where(name)}", status, answer, self.api.namespace))

    def read(self, name: str) -> dict | None:
        status, answer = self.api.request("GET", f"{self.path}/{name}")
        if status == 404:
            return None
        if status != 200:
            raise Unavailable(_refused(f"reading the claim {self.where(name)}", status, answer, self.api.namespace))
        try:
            return json.loads((answer.get("data") or {})[CLAIM_KEY])
        except (KeyError, ValueError):
            return {"state": "unreadable", "note": f"{self.where(name)} has no JSON {CLAIM_KEY}"}

    def update(self, name: str, record: dict) -> None:
        patch = {"data": {CLAIM_KEY: json.dumps(record, indent=2)}}
        status, answer = self.api.request("PATCH", f"{self.path}/{name}", patch, "application/merge-patch+json")
        if status != 200:
            raise Unavailable(_refused(f"updating the claim {self.where(name)}", status, answer, self.api.namespace))

    def release(self, name: str) -> None:
        status, answer = self.api.request("DELETE", f"{self.path}/{name}")
        if status not in (200, 202, 404):
            raise Unavailable(_refused(f"deleting the claim {self.where(name)}", status, answer, self.api.namespace))


# --- the served version's lineage (MLflow) ------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    run_id: str
    config: dict
    store: str


class ServedRuns:
    """Reads a registered version's run: the training config it logged and the feature store it read."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client = None
        self._lock = threading.Lock()

    def client(self):
        from mlflow import MlflowClient

        with self._lock:  # one client (and, on SQLite, one engine) for every request
            if self._client is None:
                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            return self._client

    def _call(self, what: str, call):
        from mlflow.exceptions import MlflowException

        try:
            return call()
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotRetrainable(f"{what}: not found in MLflow ({self.tracking_uri})") from None
            raise Unavailable(f"MLflow ({self.tracking_uri}) failed on {what}: {e.message}") from None

    def source(self, model: str, version: str) -> Source:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        from workloads.common.bundle import CONFIG
        from workloads.training.config import TrainConfig

        client = self.client()
        registered = self._call(f"model {model} version {version}", lambda: client.get_model_version(model, version))
        if not registered.run_id:
            raise NotRetrainable(f"model {model} version {version} was not registered by a training run (no run id)")
        run = self._call(f"run {registered.run_id}", lambda: client.get_run(registered.run_id))
        store = run.data.tags.get("mlkit.feature_store")  # a lineage tag of workloads/training/train.py
        if not store:
            raise NotRetrainable(
                f"run {registered.run_id} of {model} v{version} has no mlkit.feature_store tag: "
                "it was not trained by workloads.training, so there is no lineage to retrain from"
            )
        with tempfile.TemporaryDirectory(prefix="mlkit-trigger-") as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=registered.run_id, artifact_path=CONFIG, dst_path=tmp, tracking_uri=self.tracking_uri
                )
                recorded = json.loads(Path(path).read_text())
            except (OSError, ValueError) as e:
                raise NotRetrainable(f"run {registered.run_id} has no readable {CONFIG}: {e}") from None
            except MlflowException as e:
                if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                    raise NotRetrainable(f"run {registered.run_id} has no {CONFIG}") from None
                raise Unavailable(f"MLflow ({self.tracking_uri}) failed reading {CONFIG}: {e.message}") from None
        # The latest feature data: the run's config without the instants it was pinned to.
        recorded = {**recorded, "as_of": {}} if isinstance(recorded, dict) else recorded
        try:
            config = TrainConfig.model_validate(recorded)
        except ValidationError as e:
            raise NotRetrainable(
                f"run {registered.run_id}'s {CONFIG} is not a training config: {'; '.join(problems(e, root='(config)'))}"
            ) from None
        if config.model_name != model:
            raise NotRetrainable(f"run {registered.run_id} trained {config.model_name!r}, not {model!r}")
        return Source(registered.run_id, config.model_dump(mode="json"), store)


# --- the receiver -------------------------------------------------------------------------------------------


class Metrics:
    """The receiver's counters, on a registry of its own (one process serves them: no multiprocess mode)."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = CollectorRegistry()
        self.received = Counter(metrics.TRIGGER_RECEIVED, "Webhook notifications received", registry=self.registry)
        self.rejected = Counter(
            metrics.TRIGGER_REJECTED, "Notifications refused, by reason", ["reason"], registry=self.registry
        )
        self.started = Counter(
            metrics.TRIGGER_STARTED, "Retraining runs started", ["registered_model"], registry=self.registry
        )
        self.duplicate = Counter(
            metrics.TRIGGER_DUPLICATE,
            "Retrain alerts already started for their episode",
            ["registered_model"],
            registry=self.registry,
        )
        self.failed = Counter(
            metrics.TRIGGER_FAILED, "Retrain alerts that started nothing, by reason", ["registered_model", "reason"],
            registry=self.registry,
        )  # fmt: skip
        self.ignored = Counter(
            metrics.TRIGGER_IGNORED, "Alerts that ask for nothing here", ["reason"], registry=self.registry
        )


@dataclass
class Receiver:
    """Decides, per notification, what to start; the HTTP layer only authenticates and parses."""

    launcher: Launcher
    claims: Claims
    runs: ServedRuns
    models: frozenset[str] = frozenset()  # the models this receiver retrains; empty: any
    namespace: str | None = None  # alerts of another namespace are not this team's
    metrics: Metrics = field(default_factory=Metrics)

    def handle(self, notification: Notification) -> dict:
        answer: dict[str, Any] = {"groupKey": notification.groupKey, "status": notification.status}
        answer |= {"started": [], "notStarted": [], "ignored": []}
        by_model: dict[str, list[Alert]] = {}
        for alert in notification.alerts:
            reason = self._ignored(alert, notification)
            if reason:
                self.metrics.ignored.labels(reason[0]).inc()
                answer["ignored"].append(
                    {"fingerprint": alert.fingerprint, "alertname": alert.labels.get("alertname"), "reason": reason[1]}
                )
            else:
                by_model.setdefault(alert.labels["registered_model"], []).append(alert)
        for model, alerts in sorted(by_model.items()):
            # The episode counts every retrain alert of the model, resolved ones too: a group's earliest alert
            # may resolve in the notification that still carries it.
            everyone = [a for a in notification.alerts if a.labels.get("registered_model") == model]
            outcome = self._retrain(notification.groupKey, model, alerts, episode_of(everyone))
            answer["started" if outcome.pop("started") else "notStarted"].append(outcome)
        if notification.status == "resolved":
            answer["reason"] = "the group is resolved: a resolved notification starts nothing"
        return answer

    def _ignored(self, alert: Alert, notification: Notification) -> tuple[str, str] | None:
        labels = alert.labels
        if labels.get(ACTION_LABEL) != ACTION:
            return "not_retrain", f"not a retrain alert (no label {ACTION_LABEL}={ACTION})"
        if alert.status != "firing" or notification.status == "resolved":
            return "resolved", "resolved: a resolved alert starts nothing"
        if self.namespace and labels.get("namespace") != self.namespace:
            return "other_namespace", f"namespace {labels.get('namespace')!r} is not this receiver's ({self.namespace})"
        if self.models and labels["registered_model"] not in self.models:
            return (
                "other_model",
                f"model {labels['registered_model']!r} is not one this receiver retrains ({', '.join(sorted(self.models))})",
            )
        return None

    def _retrain(self, group_key: str, model: str, alerts: list[Alert], episode: datetime) -> dict:
        name = run_name(group_key, model, episode)
        version = str(max(int(a.labels["registered_version"]) for a in alerts))  # the newest version alerted on
        outcome: dict[str, Any] = {"registered_model": model, "registered_version": version}
        outcome |= {"episode": episode.isoformat().replace("+00:00", "Z"), "claim": self.claims.where(name)}
        if existing := self.claims.read(name):  # the usual resend: no MLflow lookup
            return self._duplicate(model, outcome, existing)
        try:
            source = self.runs.source(model, version)
        except NotRetrainable as e:
            self.metrics.failed.labels(model, "not_retrainable").inc()
            log.warning("%s v%s: not retrainable: %s", model, version, e)
            return {**outcome, "started": False, "reason": f"not retrainable: {e}"}
        except Unavailable:
            self.metrics.failed.labels(model, "unavailable").inc()
            raise
        record = {
            "state": "claimed",
            "groupKey": group_key,
            "registered_model": model,
            "registered_version": version,
            "source_run": source.run_id,
            "episode": outcome["episode"],
            "alertnames": sorted({a.labels.get("alertname", "") for a in alerts}),
            "fingerprints": sorted({a.fingerprint for a in alerts}),
            "claimedAt": datetime.now(UTC).isoformat(timespec="seconds"),
            "claimedBy": f"{socket.gethostname()}:{os.getpid()}",
        }
        if not self.claims.create(name, record):  # a concurrent delivery claimed it first
            return self._duplicate(model, outcome, self.claims.read(name) or {})
        retrain = Retrain(
            name=name,
            model=model,
            config=source.config,
            store=source.store,
            tracking_uri=self.runs.tracking_uri,
            tags={
                f"{TAG_PREFIX}alertname": ",".join(record["alertnames"]),
                f"{TAG_PREFIX}group_key": hashlib.sha256(group_key.encode()).hexdigest(),
                f"{TAG_PREFIX}fingerprint": ",".join(record["fingerprints"]),
                f"{TAG_PREFIX}starts_at": outcome["episode"],
                f"{TAG_PREFIX}served_version": version,
                f"{TAG_PREFIX}source_run": source.run_id,
                f"{TAG_PREFIX}claim": self.claims.where(name),
            },
        )
        try:
            launched = self.launcher.launch(retrain)
        except Unavailable:
            self.claims.release(name)  # nothing started: the resend may start it
            self.metrics.failed.labels(model, "unavailable").inc()
            raise
        try:
            self.claims.update(name, {**record, "state": "launched", "launch": launched.details})
        except Unavailable as e:  # the run is started either way; the claim alone still stops a second one
            log.warning("%s: started, but the claim could not record it: %s", name, e)
        if not launched.started:
            return self._duplicate(model, outcome, {**record, "launch": launched.details})
        self.metrics.started.labels(model).inc()
        log.info("%s v%s: started %s (%s)", model, version, name, launched.details)
        return {**outcome, "started": True, "name": name, "launch": launched.details, "tags": retrain.tags}

    def _duplicate(self, model: str, outcome: dict, claim: dict) -> dict:
        self.metrics.duplicate.labels(model).inc()
        if claim.get("state") == "claimed":
            reason = (
                f"already claimed for this episode at {claim.get('claimedAt')} by {claim.get('claimedBy')}, launch not "
                "recorded yet: it is starting now, or that receiver stopped before recording it (then this episode "
                f"starts nothing more; delete {outcome['claim']} to let the next resend start it)"
            )
        else:
            launch = claim.get("launch") or {}
            run = launch.get("run_id") and f"pipeline run {launch['run_id']}"
            what = launch.get("reason") or launch.get("job") or run or launch.get("log") or "a run"
            reason = f"already started for this episode ({what}; claimed at {claim.get('claimedAt')})"
        return {**outcome, "started": False, "reason": reason}


# --- HTTP -----------------------------------------------------------------------------------------------------


class Token:
    """The shared bearer token: from a file (a mounted Secret, re-read so a rotation needs no restart) or a value."""

    def __init__(self, file: Path | None = None, value: str | None = None):
        self.file, self.value = file, value
        self.current()  # fail at start-up, not on the first alert

    def current(self) -> bytes:
        if self.file is not None:
            try:
                token = self.file.read_text().strip()
            except OSError as e:
                raise TriggerError(f"--token-file {self.file}: cannot read: {e.strerror}") from None
            if not token:
                raise TriggerError(f"--token-file {self.file} is empty")
            return token.encode()
        if not self.value:
            raise TriggerError("no token: pass --token-file (a mounted Secret) or set MLKIT_TRIGGER_TOKEN")
        return self.value.encode()

    def accepts(self, header: str | None) -> bool:
        scheme, _, given = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Digests first: compare_digest is constant-time for equal lengths only, and a digest hides the length.
        given_digest = hashlib.sha256(given.strip().encode()).digest()
        return hmac.compare_digest(given_digest, hashlib.sha256(self.current()).digest())


def create_app(receiver: Receiver, token: Token, max_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="mlkit retraining trigger", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = receiver.metrics

    def refuse(status: int, reason: str, message: str, listed: list[str] | None = None) -> JSONResponse:
        metrics.rejected.labels(reason).inc()
        body = {"error": message} | ({"problems": listed} if listed else {})
        return JSONResponse(body, status_code=status)

    @app.post("/alerts")
    async def alerts(request: Request) -> Response:
        metrics.received.inc()
        try:
            authorized = token.accepts(request.headers.get("authorization"))
        except TriggerError as e:  # the Secret went missing under a running receiver
            return JSONResponse({"error": f"the receiver has no token to check against: {e}"}, status_code=503)
        if not authorized:
            metrics.rejected.labels("unauthorized").inc()
            return JSONResponse(
                {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            return refuse(413, "too_large", f"request body: {declared} bytes, over the limit of {max_bytes}")
        body = bytearray()
        async for chunk in request.stream():  # a chunked body has no length to refuse up front
            body += chunk
            if len(body) > max_bytes:
                return refuse(413, "too_large", f"request body: over the limit of {max_bytes} bytes")
        try:
            notification = parse(bytes(body))
        except BadAlert as e:
            return refuse(
                422,
                "invalid",
                f"not an Alertmanager webhook notification (version 4): {e.problems[0]}",
                e.problems,
            )
        except ValueError as e:
            return refuse(400, "not_json", str(e))
        try:
            answer = await run_in_threadpool(receiver.handle, notification)
        except Unavailable as e:
            log.warning("503 for %s: %s", notification.groupKey, e)
            return JSONResponse({"error": str(e), "retry": True}, status_code=503)
        return JSONResponse(answer, status_code=202)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "launcher": receiver.launcher.kind}

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not a bad request: one line to the client (no stack trace), the traceback to the log.
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    return app


# --- command line -------------------------------------------------------------------------------------------

cli = typer.Typer(
    help="The retraining trigger: an Alertmanager webhook receiver that starts training for drift alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class LauncherKind(StrEnum):
    local = "local"
    local_pipeline = "local-pipeline"
    job = "job"
    kfp = "kfp"


def default_state_dir() -> Path:
    return Path(env("MLKIT_DATA_DIR") or REPO / "data") / "retrain"


@cli.callback()
def main() -> None:
    """The retraining trigger."""


@cli.command()
def serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port to listen on")] = 8080,
    host: Annotated[str, typer.Option("--host", help="address to bind (the chart binds 0.0.0.0)")] = "127.0.0.1",
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="the shared bearer token, a mounted Secret; else MLKIT_TRIGGER_TOKEN"),
    ] = None,
    launcher: Annotated[
        LauncherKind,
        typer.Option(
            "--launcher",
            help="local: the training command here; local-pipeline: the pipeline here (kfp.local); "
            "job: a Kubernetes Job; kfp: a Kubeflow Pipelines run",
        ),
    ] = LauncherKind.local,
    kfp_host: Annotated[
        str | None, typer.Option("--kfp-host", help="kfp launcher: the KFP API, e.g. http://ml-pipeline.kubeflow:8888")
    ] = None,
    kfp_service_account: Annotated[
        str | None, typer.Option("--kfp-service-account", help="kfp launcher: the account the run's pods use")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="a registered model this receiver retrains; repeatable; default any"),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow; default the team profile's"),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="local launcher: claims and runs; default data/retrain")
    ] = None,
    job_template: Annotated[
        Path, typer.Option("--job-template", help="job launcher: the Job template the chart mounts")
    ] = Path("/etc/mlkit/retrain-job/job.json"),
    namespace: Annotated[
        str | None, typer.Option("--namespace", envvar="POD_NAMESPACE", help="the team namespace; default the pod's")
    ] = None,
) -> None:
    """Serve POST /alerts (Alertmanager's webhook), GET /healthz and GET /metrics."""
    import uvicorn

    from workloads.common.settings import SettingsError, settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # MLflow's client retries for minutes by default; Alertmanager's own retry is the one that should wait.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        profile = settings().profile
        token = Token(token_file, None if token_file else env("MLKIT_TRIGGER_TOKEN"))
        uri = tracking_uri or (profile.mlflow.tracking_uri if profile else None)
        if not uri:
            raise TriggerError("no MLflow: pass --tracking-uri or set MLFLOW_TRACKING_URI (or run with a team profile)")
        if launcher is LauncherKind.job:
            api = KubeApi.in_cluster(namespace or (profile.namespace if profile else None))
            try:
                template = json.loads(job_template.read_text())
            except (OSError, ValueError) as e:
                raise TriggerError(f"--job-template {job_template}: cannot read a JSON Job: {e}") from None
            chosen: Launcher = JobLauncher(api, template)
            claims: Claims = ConfigMapClaims(api)
            namespace = api.namespace
        elif launcher is LauncherKind.kfp:
            if not kfp_host:
                raise TriggerError(
                    "--launcher kfp needs --kfp-host (the KFP API, e.g. http://ml-pipeline.kubeflow:8888)"
                )
            api = KubeApi.in_cluster(namespace or (profile.namespace if profile else None))
            chosen, claims = KfpLauncher.connect(kfp_host, kfp_service_account), ConfigMapClaims(api)
            namespace = api.namespace
        else:
            state = state_dir or default_state_dir()
            pipeline = launcher is LauncherKind.local_pipeline
            chosen, claims = LocalLauncher(state / "runs", pipeline=pipeline), DirectoryClaims(state / "claims")
            namespace = namespace or (profile.namespace if profile else None)
    except (TriggerError, SettingsError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    receiver = Receiver(chosen, claims, ServedRuns(uri), frozenset(model or ()), namespace)
    log.info(
        "retraining trigger on %s:%s: launcher %s, models %s, namespace %s, MLflow %s",
        host, port, chosen.kind, sorted(receiver.models) or "any", namespace or "any", uri,
    )  # fmt: skip
    uvicorn.run(create_app(receiver, token), host=host, port=port, log_level="info", timeout_graceful_shutdown=10)


if __name__ == "__main__":
    sys.exit(cli())

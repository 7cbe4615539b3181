"""The retraining trigger, for real: the receiver under uvicorn on 127.0.0.1, Alertmanager-shaped webhooks over HTTP,
a served version trained by workloads.training on Hudi tables the feature job wrote, MLflow on SQLite, the local
launcher running the training command to a new registered version, and the Job launcher against a live API server
(mlkit_dev.simcluster) with the chart's own RBAC and Job template."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
import requests
import urllib3
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlkit_dev.demo_data import TELCO, second_batch
from tests.charts.helm import helm
from tests.workloads.kfp_client import RecordingClient
from workloads.common.featurestore import FeatureStore
from workloads.common.specs import load_spec
from workloads.features.job import run_batch
from workloads.monitoring.trigger import (
    ConfigMapClaims,
    DirectoryClaims,
    JobLauncher,
    KfpLauncher,
    KubeApi,
    LaunchError,
    Receiver,
    Retrain,
    ServedRuns,
    Unavailable,
    parse,
    run_name,
)
from workloads.training.config import load_config
from workloads.training.train import train

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "workloads" / "features" / "specs"
CONFIG = REPO / "workloads" / "training" / "configs" / "churn.yaml"
MODEL, NAMESPACE, TOKEN = "churn-classifier", "churn", "a-shared-token-0123456789abcdef"
GROUP_KEY = '{}/{mlkit_action="retrain"}:{namespace="churn", registered_model="churn-classifier"}'
STARTS = "2026-11-24T10:15:00.123456789Z"  # Alertmanager writes nanoseconds
JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
TABLES = ("customer_features", "churn_labels")


# --- the served model ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(spark, tmp_path_factory):
    """A served version trained on January's tables (its lineage pins them), then February's batch lands:
    retraining must read February, not the served run's pins."""
    root = tmp_path_factory.mktemp("trigger")
    store = FeatureStore(str(root / "features"))
    specs = [load_spec(SPECS / f"{table}.yaml") for table in TABLES]
    run_batch(spark, store, specs, str(TELCO), event_time=JAN)
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    small = load_config(CONFIG, epochs=2, patience=2, model={"hidden_layers": [8]})
    report = train(store, small, tracking_uri=tracking)
    run_batch(spark, store, specs, str(second_batch(root / "feb.csv").path), event_time=FEB)
    return {"store": store, "tracking": tracking, "report": report, "root": root}


# --- the receiver as a process ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m workloads.monitoring.trigger serve` on 127.0.0.1 with the local launcher."""

    def __init__(self, state: Path, tracking: str, *args: str):
        self.state, self.tracking, self.args = state, tracking, args
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.port = free_port()
        self.log = self.state.parent / f"{self.state.name}-server-{self.port}.log"
        command = [
            *(sys.executable, "-m", "workloads.monitoring.trigger", "serve", "--port", str(self.port)),
            *("--tracking-uri", self.tracking, "--state-dir", str(self.state)),
            *("--model", MODEL, "--namespace", NAMESPACE, *self.args),
        ]
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLKIT_", "MLFLOW_TRACKING"))}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**environment, "MLKIT_TRIGGER_TOKEN": TOKEN}
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"the receiver exited {self.process.returncode}:\n{self.log.read_text()}"
            )
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the receiver did not answer /healthz in 90 s:\n{self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body, token: str | None = TOKEN, **headers) -> requests.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(
            f"{self.url}/alerts", data=data, headers={"Content-Type": "application/json", **headers}, timeout=60
        )

    def metrics(self) -> dict[tuple[str, tuple], float]:
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.endswith("_total")
        }

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def receiver(served):
    server = Server(served["root"] / "state", served["tracking"]).start()
    yield server
    server.stop()
    stop_trainings(server.state)


def stop_trainings(state: Path) -> None:
    """Training runs the receiver started and a failed test left running (each leads its own process group)."""
    for run_dir in (state / "runs").glob("*"):
        if (run_dir / "pid").is_file() and not (run_dir / "exit-code").exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int((run_dir / "pid").read_text()), signal.SIGTERM)


def claims(state: Path) -> set[str]:
    return {p.name for p in (state / "claims").glob("*.json")}


def alert(*, status="firing", starts=STARTS, fingerprint="4f2a9c0e1b7d3a55", **labels) -> dict:
    """One alert as Alertmanager's webhook sends it (version 4)."""
    base = {
        "alertname": "MlkitFeatureDrift",
        "mlkit_action": "retrain",
        "namespace": NAMESPACE,
        "registered_model": MODEL,
        "registered_version": "1",
        "severity": "warning",
    }
    return {
        "status": status,
        "labels": {k: v for k, v in {**base, **labels}.items() if v is not None},
        "annotations": {"summary": "max feature PSI above 0.2 for 10m"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-24T12:00:00Z",
        "generatorURL": "http://prometheus.monitoring.svc:9090/graph?g0.expr=mlkit_drift_max_psi",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict, status: str = "firing", group_key: str = GROUP_KEY) -> dict:
    alerts = alerts or (alert(),)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "churn/release-retrain/retrain",
        "groupLabels": {"namespace": NAMESPACE, "registered_model": MODEL},
        "commonLabels": {"mlkit_action": "retrain"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.monitoring.svc:9093",
        "alerts": list(alerts),
    }


# --- authentication and malformed payloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "longer", "not-bearer", "empty"],
)
def test_a_missing_or_wrong_token_is_401_and_starts_nothing(receiver, headers):
    before = claims(receiver.state)
    answer = receiver.post(notification(alert(starts="2026-11-20T08:00:00Z")), token=None, **headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json() == {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}
    assert claims(receiver.state) == before


def without(payload: dict, path: str) -> dict:
    payload = copy.deepcopy(payload)
    *parents, leaf = path.split(".")
    node = payload
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    del node[leaf]
    return payload


def changed(payload: dict, path: str, value) -> dict:
    payload = copy.deepcopy(payload)
    *parents, leaf = path.split(".")
    node = payload
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(leaf) if leaf.isdigit() else leaf] = value
    return payload


GOOD = notification(alert(starts="2026-11-21T09:00:00Z"))
MALFORMED = [
    (b"not json", 400, "request body: not JSON"),
    (b"", 400, "request body: not JSON"),
    (b"[" * 100_000, 400, "request body: JSON nested too deeply"),
    (b"\xff\xfe{}", 400, "request body: not JSON"),
    (b"[]", 422, "(notification): Input should be a valid dictionary"),
    (without(GOOD, "version"), 422, "version: is required"),
    (changed(GOOD, "version", "3"), 422, "version: Input should be '4'"),
    (without(GOOD, "groupKey"), 422, "groupKey: is required"),
    (changed(GOOD, "status", "pending"), 422, "status: Input should be 'firing' or 'resolved'"),
    (changed(GOOD, "alerts", []), 422, "alerts: List should have at least 1 item"),
    (changed(GOOD, "alerts", {"0": {}}), 422, "alerts: Input should be a valid list"),
    (without(GOOD, "alerts.0.startsAt"), 422, "alerts[0].startsAt: is required"),
    (changed(GOOD, "alerts.0.startsAt", "yesterday"), 422, "alerts[0].startsAt: Input should be a valid datetime"),
    (changed(GOOD, "alerts.0.startsAt", "2026-11-21T09:00:00"), 422, "alerts[0].startsAt: Input should have timezone"),
    (without(GOOD, "alerts.0.fingerprint"), 422, "alerts[0].fingerprint: is required"),
    (changed(GOOD, "alerts.0.fingerprint", ""), 422, "alerts[0].fingerprint: String should have at least 1 character"),
    (without(GOOD, "alerts.0.labels"), 422, "alerts[0].labels: is required"),
    (changed(GOOD, "alerts.0.labels.registered_version", 1), 422, "alerts[0].labels.registered_version: Input should be a valid string"),
    (without(GOOD, "alerts.0.labels.registered_model"), 422, "alerts[0].labels.registered_model: is required on an alert labelled mlkit_action=retrain"),
    (changed(GOOD, "alerts.0.labels.registered_model", "churn classifier"), 422, "alerts[0].labels.registered_model: 'churn classifier' is not a registered model name"),
    (changed(GOOD, "alerts.0.labels.registered_version", "v1"), 422, "alerts[0].labels.registered_version: 'v1' is not a model version number"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "message"), MALFORMED, ids=[m for _, _, m in MALFORMED])
def test_a_malformed_payload_is_a_4xx_naming_the_field_and_starts_nothing(receiver, body, status, message):
    before = claims(receiver.state)
    answer = receiver.post(body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert message in error, error
    if status == 422:
        assert error.startswith("not an Alertmanager webhook notification (version 4): ")
    assert "Traceback" not in answer.text
    assert claims(receiver.state) == before


def test_a_body_over_the_limit_is_413_before_it_is_parsed(receiver):
    answer = receiver.post(b"{" + b" " * (5 << 20) + b"}")
    assert answer.status_code == 413 and "over the limit of 4194304" in answer.json()["error"]

    def chunks():  # chunked: no Content-Length to refuse up front
        for _ in range(5):
            yield b" " * (1 << 20)

    answer = requests.post(
        f"{receiver.url}/alerts", data=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    assert answer.status_code == 413 and "over the limit" in answer.json()["error"]


# --- what is and is not started -----------------------------------------------------------------------------


def test_a_resolved_notification_starts_nothing(receiver):
    before = claims(receiver.state)
    resolved = notification(alert(status="resolved", starts="2026-11-22T07:00:00Z"), status="resolved")
    answer = receiver.post(resolved)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["started"] == [] and body["notStarted"] == []
    assert body["reason"] == "the group is resolved: a resolved notification starts nothing"
    assert [i["reason"] for i in body["ignored"]] == ["resolved: a resolved alert starts nothing"]
    assert claims(receiver.state) == before


def test_alerts_that_are_not_this_receivers_retrains_are_ignored_with_the_reason(receiver):
    before = claims(receiver.state)
    answer = receiver.post(
        notification(
            alert(mlkit_action=None, fingerprint="1", starts="2026-11-22T08:00:00Z"),
            alert(mlkit_action="page", fingerprint="2", starts="2026-11-22T08:00:00Z"),
            alert(namespace="fraud", fingerprint="3", starts="2026-11-22T08:00:00Z"),
            alert(registered_model="fraud-scorer", fingerprint="4", starts="2026-11-22T08:00:00Z"),
            alert(status="resolved", fingerprint="5", starts="2026-11-22T08:00:00Z"),
        )
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["started"] == body["notStarted"] == []
    assert [(i["fingerprint"], i["reason"]) for i in body["ignored"]] == [
        ("1", "not a retrain alert (no label mlkit_action=retrain)"),
        ("2", "not a retrain alert (no label mlkit_action=retrain)"),
        ("3", "namespace 'fraud' is not this receiver's (churn)"),
        ("4", "model 'fraud-scorer' is not one this receiver retrains (churn-classifier)"),
        ("5", "resolved: a resolved alert starts nothing"),
    ]
    assert claims(receiver.state) == before


def test_a_version_the_registry_does_not_hold_is_not_retrainable_and_claims_nothing(receiver):
    before = claims(receiver.state)
    answer = receiver.post(notification(alert(registered_version="99", starts="2026-11-22T09:00:00Z")))
    assert answer.status_code == 202, answer.text
    [outcome] = answer.json()["notStarted"]
    assert outcome["reason"] == f"not retrainable: model {MODEL} version 99: not found in MLflow ({receiver.tracking})"
    assert claims(receiver.state) == before


# --- one episode, one run -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def episode(receiver):
    """One firing episode delivered four times at once, then twice more (Alertmanager's resends)."""
    payload = notification(
        alert(fingerprint="4f2a9c0e1b7d3a55"),
        alert(alertname="MlkitPredictionDrift", fingerprint="9e8d7c6b5a493827", starts="2026-11-24T10:20:00Z"),
    )
    before = claims(receiver.state)
    barrier, answers = threading.Barrier(4), []

    def deliver():
        barrier.wait()
        answers.append(receiver.post(payload))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers += [receiver.post(payload) for _ in range(2)]
    return {"payload": payload, "answers": answers, "new_claims": claims(receiver.state) - before}


def test_a_firing_retrain_alert_starts_exactly_one_run_even_delivered_concurrently(receiver, episode, served):
    assert [a.status_code for a in episode["answers"]] == [202] * 6, [a.text for a in episode["answers"]]
    started = [s for a in episode["answers"] for s in a.json()["started"]]
    duplicates = [s for a in episode["answers"] for s in a.json()["notStarted"]]
    assert len(started) == 1 and len(duplicates) == 5, [a.json() for a in episode["answers"]]
    [run] = started
    name = run_name(GROUP_KEY, MODEL, datetime(2026, 11, 24, 10, 15, 0, 123456, tzinfo=UTC))
    assert run["name"] == name and episode["new_claims"] == {f"{name}.json"}
    # Losers of the race see the winner's claim, launched or still launching.
    prefixes = ("already started for this episode", "already claimed for this episode")
    assert all(d["reason"].startswith(prefixes) for d in duplicates), duplicates
    # The exact training command: the served run's config (unpinned) and store, MLflow, and the alert as tags.
    state = receiver.state
    tags = {
        "mlkit.trigger.alertname": "MlkitFeatureDrift,MlkitPredictionDrift",
        "mlkit.trigger.claim": str(state / "claims" / f"{name}.json"),
        "mlkit.trigger.fingerprint": "4f2a9c0e1b7d3a55,9e8d7c6b5a493827",
        "mlkit.trigger.group_key": run["tags"]["mlkit.trigger.group_key"],
        "mlkit.trigger.served_version": "1",
        "mlkit.trigger.source_run": served["report"].run_id,
        "mlkit.trigger.starts_at": "2026-11-24T10:15:00.123456Z",
    }
    assert run["tags"] == tags and len(tags["mlkit.trigger.group_key"]) == 64
    config = state / "runs" / name / "config.json"
    assert run["launch"]["command"] == [
        *(sys.executable, "-m", "workloads.training", "train", "--config", str(config)),
        *("--store", served["store"].root, "--tracking-uri", served["tracking"]),
        *[arg for key in sorted(tags) for arg in ("--tag", f"{key}={tags[key]}")],
    ]
    written = json.loads(config.read_text())
    assert written["as_of"] == {} and written["model_name"] == MODEL and written["epochs"] == 2
    metrics = receiver.metrics()
    assert metrics[("mlkit_trigger_retrains_started_total", (("registered_model", MODEL),))] == 1
    assert metrics[("mlkit_trigger_retrains_duplicate_total", (("registered_model", MODEL),))] == 5


def test_after_a_restart_the_same_episode_still_starts_nothing(served, receiver, episode):
    again = Server(receiver.state, served["tracking"]).start()
    try:
        answer = again.post(episode["payload"])
        assert answer.status_code == 202, answer.text
        assert answer.json()["started"] == []
        [outcome] = answer.json()["notStarted"]
        assert outcome["reason"].startswith("already started for this episode"), outcome
    finally:
        again.stop()


def test_the_started_run_registers_a_new_version_on_the_latest_data_with_the_alert_recorded(episode, served):
    [run] = [s for a in episode["answers"] for s in a.json()["started"]]
    run_dir = Path(run["launch"]["log"]).parent
    deadline = time.monotonic() + 600
    while not (run_dir / "exit-code").exists():
        assert time.monotonic() < deadline, (run_dir / "train.log").read_text()[-3000:]
        time.sleep(2)
    assert (run_dir / "exit-code").read_text().strip() == "0", (run_dir / "train.log").read_text()[-3000:]
    client = mlflow.MlflowClient(served["tracking"])
    experiment = client.get_experiment_by_name(MODEL)
    [new] = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`mlkit.trigger.fingerprint` = '4f2a9c0e1b7d3a55,9e8d7c6b5a493827'",
    )
    assert new.info.status == "FINISHED"
    assert {k: v for k, v in new.data.tags.items() if k.startswith("mlkit.trigger.")} == run["tags"]
    [version] = client.search_model_versions(f"run_id = '{new.info.run_id}'")
    assert version.name == MODEL and int(version.version) > int(served["report"].model_version)
    # The latest feature data (February), not the instants the served version was pinned to.
    store = served["store"]
    latest = {table: store.commits(table)[-1].instant for table in TABLES}
    assert json.loads(new.data.tags["mlkit.instants"]) == latest != served["report"].instants


# --- failures -----------------------------------------------------------------------------------------------


def test_a_failed_launch_releases_the_claim_and_answers_503_so_the_resend_starts_it(served, tmp_path):
    state = tmp_path / "state"
    (state).mkdir()
    (state / "runs").write_text("a file where the launcher's directory goes")
    server = Server(state, served["tracking"]).start()
    try:
        payload = notification(alert(starts="2026-11-23T06:00:00Z", fingerprint="aa55"))
        answer = server.post(payload)
        assert answer.status_code == 503, answer.text
        assert answer.json()["retry"] is True and "could not start the training command" in answer.json()["error"]
        assert claims(state) == set()  # released: nothing was started
        (state / "runs").unlink()
        answer = server.post(payload)
        assert answer.status_code == 202, answer.text
        assert len(answer.json()["started"]) == 1
        assert len(claims(state)) == 1
    finally:
        server.stop()
        stop_trainings(state)  # its training is not what this test is about


def test_the_receiver_refuses_to_start_without_a_token_or_mlflow(tmp_path):
    base = [sys.executable, "-m", "workloads.monitoring.trigger", "serve", "--state-dir", str(tmp_path)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLKIT_", "MLFLOW_TRACKING"))}
    cases = [
        ([*base, "--tracking-uri", "sqlite:///x.db"], {}, "error: no token: pass --token-file"),
        ([*base, "--token-file", str(tmp_path / "missing")], {}, "--token-file"),
        ([*base], {"MLKIT_TRIGGER_TOKEN": TOKEN}, "error: no MLflow: pass --tracking-uri"),
    ]
    for command, extra, message in cases:
        done = subprocess.run(
            command, capture_output=True, text=True, env={**environment, **extra}, timeout=120, check=False
        )
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


# --- the Job launcher against a live API server -------------------------------------------------------------

BIN = REPO / ".cache" / "bin"
INFRA_PYTHON = REPO / ".venv" / "infra" / "bin" / "python"
OPERATOR_CRDS = REPO.parent / "shared" / "upstream-charts" / "kube-prometheus-stack" / "charts" / "crds" / "crds"
CLUSTER_TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The simulated control plane (`make cluster`'s), started from the infra environment, which it imports."""
    missing = [tool for tool in CLUSTER_TOOLS if not (BIN / tool).is_file()]
    if missing or not INFRA_PYTHON.is_file():
        pytest.skip(f"no live control plane here: {missing or INFRA_PYTHON} missing (make cluster-tools builds them)")
    directory = tmp_path_factory.mktemp("cluster")
    simcluster = [str(INFRA_PYTHON), "-m", "mlkit_dev.simcluster"]
    up = subprocess.run(
        [*simcluster, "up", "sim", "--dir", str(directory)], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        yield directory
    finally:
        subprocess.run([*simcluster, "down", "--dir", str(directory)], timeout=120, cwd=REPO, check=False)


def kubectl(directory: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(BIN / "kubectl"), f"--kubeconfig={directory / 'kubeconfig'}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def wait_for(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def established(directory: Path, crd: str) -> bool:
    conditions = json.loads(kubectl(directory, "get", "crd", crd, "-o", "json")).get("status", {}).get("conditions")
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions or [])


@pytest.fixture(scope="module")
def installed(cluster, tmp_path_factory):
    """The chart, rendered by helm for namespace `example` (the lint profile's team) and applied: the API server
    checks every object, Pod Security `restricted` every pod. Returns the API as the trigger's service account."""
    tmp = tmp_path_factory.mktemp("chart")
    kubectl(cluster, "create", "namespace", "example")
    kubectl(cluster, "create", "namespace", "fraud")
    kubectl(cluster, "label", "namespace", "example", "pod-security.kubernetes.io/enforce=restricted")
    kubectl(cluster, "-n", "example", "create", "serviceaccount", "ml")  # the platform makes the team's accounts
    for crd in (OPERATOR_CRDS / "crd-alertmanagerconfigs.yaml", OPERATOR_CRDS / "crd-servicemonitors.yaml"):
        kubectl(cluster, "apply", "--server-side", "-f", str(crd))
    for name in ("alertmanagerconfigs", "servicemonitors"):
        wait_for(f"CRD {name} established", lambda name=name: established(cluster, f"{name}.monitoring.coreos.com"))
    values = yaml.safe_load((REPO / "charts" / "drift-monitor" / "ci" / "lint-values.yaml").read_text())
    # Rendered for the namespace it goes into: the RoleBinding names the trigger's account there.
    rendered = helm(
        "template", "release", str(REPO / "charts" / "drift-monitor"), "-n", "example", values=values, tmp_path=tmp
    )
    assert rendered.returncode == 0, rendered.stderr
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kubectl(cluster, "-n", "example", "apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    kubeconfig = yaml.safe_load((cluster / "kubeconfig").read_text())
    token = kubectl(cluster, "-n", "example", "create", "token", "release-trigger").strip()
    server = kubeconfig["clusters"][0]["cluster"]["server"]

    def api(namespace: str = "example") -> KubeApi:
        return KubeApi(server, namespace, token=token, ca_file=str(cluster / "pki" / "ca.crt"))

    [template] = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "release-retrain-job"]
    return {"api": api, "template": json.loads(template["data"]["job.json"]), "documents": documents}


def test_the_chart_installs_on_a_live_api_server_and_its_pods_pass_restricted(cluster, installed):
    kinds = json.loads(
        kubectl(cluster, "-n", "example", "get", "all,alertmanagerconfigs,servicemonitors", "-o", "json")
    )
    assert {i["kind"] for i in kinds["items"]} >= {
        "AlertmanagerConfig",
        "CronJob",
        "Deployment",
        "Service",
        "ServiceMonitor",
    }
    # The Deployment's pod was admitted under `restricted` (the ReplicaSet would report FailedCreate otherwise).
    wait_for(
        "the trigger's pod",
        lambda: json.loads(
            kubectl(cluster, "-n", "example", "get", "pods", "-l", "app.kubernetes.io/component=trigger", "-o", "json")
        )["items"],
    )


def test_the_job_launcher_starts_one_job_per_episode_as_the_triggers_account(cluster, installed, served):
    api = installed["api"]()
    receiver = Receiver(
        JobLauncher(api, installed["template"]), ConfigMapClaims(api), ServedRuns(served["tracking"]),
        frozenset({MODEL}), "example",
    )  # fmt: skip
    payload = notification(alert(namespace="example", starts="2026-11-24T11:00:00Z", fingerprint="b0b0"))
    first, second = (receiver.handle(parse(json.dumps(payload).encode())) for _ in range(2))
    [started] = first["started"]
    assert second["started"] == [] and second["notStarted"][0]["reason"].startswith("already started"), second
    name = started["name"]
    job = json.loads(kubectl(cluster, "-n", "example", "get", "job", name, "-o", "json"))
    pod = job["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["command"] == started["launch"]["command"]
    assert container["command"][:4] == ["python", "-m", "workloads.training", "train"]
    assert container["command"][container["command"].index("--store") + 1] == served["store"].root
    assert container["command"][container["command"].index("--config") + 1] == "/etc/mlkit/retrain/config.json"
    config = json.loads(pod["metadata"]["annotations"]["mlkit.io/train-config"])
    assert config["model_name"] == MODEL and config["as_of"] == {}
    assert pod["spec"]["serviceAccountName"] == "ml" and container["image"] == "ghcr.io/example/mlkit-training:0.1.0"
    claim = json.loads(kubectl(cluster, "-n", "example", "get", "configmap", name, "-o", "json"))
    assert claim["metadata"]["labels"]["mlkit.io/retrain-claim"] == "true"
    record = json.loads(claim["data"]["claim.json"])
    assert record["state"] == "launched" and record["launch"]["job"] == name and record["fingerprints"] == ["b0b0"]
    # The Job's pod was admitted under `restricted`, with its config projected from the annotation.
    pods = wait_for(
        "the training Job's pod",
        lambda: json.loads(kubectl(cluster, "-n", "example", "get", "pods", "-l", f"job-name={name}", "-o", "json"))[
            "items"
        ],
    )
    volumes = {v["name"]: v for v in pods[0]["spec"]["volumes"]}
    assert volumes["retrain-config"]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['mlkit.io/train-config']"
    )


def test_the_triggers_account_may_not_start_jobs_or_claim_in_another_namespace(installed, served):
    api = installed["api"]("fraud")
    with pytest.raises(LaunchError, match=r"refused Job x in namespace fraud \(403\).*its own namespace only"):
        JobLauncher(api, installed["template"]).launch(Retrain("x", MODEL, {}, "s", "t", {}))
    with pytest.raises(Unavailable, match=r"in namespace fraud \(403\)"):
        ConfigMapClaims(api).create("x", {"registered_model": MODEL})


def test_a_launch_refused_by_the_api_server_releases_the_claim(cluster, installed, served):
    """A Job the API server rejects (here: a resource quantity it cannot parse) starts nothing and leaves no claim."""
    api = installed["api"]()
    template = copy.deepcopy(installed["template"])
    template["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "not-a-quantity"}}
    receiver = Receiver(
        JobLauncher(api, template), ConfigMapClaims(api), ServedRuns(served["tracking"]), namespace="example"
    )
    payload = notification(alert(namespace="example", starts="2026-11-24T12:00:00Z", fingerprint="c0c0"))
    with pytest.raises(LaunchError, match=r"refused Job .* in namespace example \((400|422)\)"):
        receiver.handle(parse(json.dumps(payload).encode()))
    name = run_name(GROUP_KEY, MODEL, datetime(2026, 11, 24, 12, tzinfo=UTC))
    assert ConfigMapClaims(api).read(name) is None


# --- the Kubeflow Pipelines launcher ------------------------------------------------------------------------


class UnreachableKfp(RecordingClient):
    def get_experiment(self, **kw):
        self._record("get_experiment", **kw)
        raise urllib3.exceptions.MaxRetryError(None, "/apis/v2beta1/experiments", "connection refused")


def test_the_kfp_launcher_starts_one_pipeline_run_per_episode_named_after_its_claim(served, tmp_path):
    client = RecordingClient()
    receiver = Receiver(
        KfpLauncher(client, service_account="churn-pipelines"), DirectoryClaims(tmp_path), ServedRuns(served["tracking"]),
        frozenset({MODEL}), NAMESPACE,
    )  # fmt: skip
    payload = json.dumps(notification(alert(starts="2026-11-24T12:00:00Z", fingerprint="kf01"))).encode()
    first, second = (receiver.handle(parse(payload)) for _ in range(2))
    [started] = first["started"]
    assert started["launch"]["launcher"] == "kfp" and started["launch"]["run_id"] == "r1"
    [duplicate] = second["notStarted"]
    assert second["started"] == [] and "already started for this episode (pipeline run r1" in duplicate["reason"]
    [(_, run)] = [c for c in client.calls if c[0] == "run_pipeline"]
    assert run["job_name"] == started["name"] and run["service_account"] == "churn-pipelines"
    params = run["params"]
    assert params["feature_store"] == served["store"].root and params["config"]["as_of"] == {}
    assert params["tags"]["mlkit.trigger.alertname"] == "MlkitFeatureDrift"
    assert params["tags"]["mlkit.trigger.source_run"] == served["report"].run_id


def test_an_unreachable_kfp_is_a_503_that_releases_the_claim(served, tmp_path):
    receiver = Receiver(
        KfpLauncher(UnreachableKfp()), DirectoryClaims(tmp_path), ServedRuns(served["tracking"]),
        frozenset({MODEL}), NAMESPACE,
    )  # fmt: skip
    payload = json.dumps(notification(alert(starts="2026-11-24T13:00:00Z", fingerprint="kf02"))).encode()
    with pytest.raises(Unavailable, match="Kubeflow Pipelines is unreachable"):
        receiver.handle(parse(payload))
    assert list(tmp_path.glob("*.json")) == []  # Alertmanager's resend may start it

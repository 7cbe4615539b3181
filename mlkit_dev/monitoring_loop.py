"""Monitoring closes the loop, with every part real and on loopback: the champion served by the Seldon microservice,
normal then drifted traffic, the drift job pushing to a Pushgateway, Prometheus evaluating the platform's own drift
rule, Alertmanager routing it to the retraining trigger, the trigger retraining, and the champion gate deciding.

Used by `make demo` and tests/workloads/test_monitoring_loop.py. Runs in the workloads environment inside a private
network namespace (the microservice binds 0.0.0.0): `scripts/confined .venv/workloads/bin/python -m
mlkit_dev.monitoring_loop DATA_DIR`, which prints the story as JSON. DATA_DIR holds `make demo`'s feature store
(features/) and MLflow registry (mlflow/mlflow.db) with a champion; the loop writes DATA_DIR/monitoring/: the
request log (requests/), the trigger's claims and training runs (retrain/) and the story (story.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from mlkit_dev import REPO
from mlkit_dev.demo_data import TELCO, SecondBatch, second_batch
from mlkit_dev.local import LocalMlflow, LocalProcess, LocalServer, free_port, only_loopback, run_confined
from mlkit_dev.observability import LocalAlertmanager, LocalPrometheus, LocalPushgateway

MODEL = "churn-classifier"
SPECS = REPO / "workloads" / "features" / "specs"
TABLES = ("customer_features", "churn_labels")
SERVING_PYTHON = str(REPO / ".venv" / "serving" / "bin" / "python")
INFRA_PYTHON = str(REPO / ".venv" / "infra" / "bin" / "python")
WORKLOADS_PYTHON = ".venv/workloads/bin/python"
TOKEN = "loop-token"


FOR = "3s"  # the feature-drift alert's `for`: the platform's default is 30m


def platform_rules() -> dict:
    """The PrometheusRule groups the platform deploys (infra/components/alerts.py, from the same config model),
    with the drift alert's `for` cut to seconds so the loop needs no half-hour wait. Rendered in the infra
    environment, which holds the platform's code."""
    render = (
        "import json, sys\n"
        "from infra.components.alerts import rule_groups\n"
        "from infra.config import Alerts\n"
        "print(json.dumps(rule_groups(Alerts.model_validate(json.loads(sys.argv[1])))))"
    )
    overrides = {"featureDrift": {"for": FOR}}
    done = subprocess.run(
        [INFRA_PYTHON, "-c", render, json.dumps(overrides)], cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rendering the platform's alert rules failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def traffic(count: int, *, seed: int, drifted: bool) -> list[dict]:
    """Telco customers as prediction requests; drifted: charges up 60 and most customers on two-year contracts."""
    rows = pd.read_csv(TELCO, dtype=str).sample(count, random_state=seed).drop(columns=["Churn"])
    if drifted:
        rows["MonthlyCharges"] = (rows["MonthlyCharges"].astype(float) + 60).round(2).astype(str)
        rng = np.random.default_rng(seed)
        rows["Contract"] = rng.choice(["Month-to-month", "One year", "Two year"], count, p=[0.1, 0.1, 0.8])
    return rows.to_dict(orient="records")


def send(url: str, rows: list[dict], *, feedback: pd.Series | None = None) -> int:
    ok = 0
    for row in rows:
        ok += requests.post(f"{url}/api/v1.0/predictions", json={"jsonData": row}, timeout=30).status_code == 200
        if feedback is not None:
            truth = 1 if feedback[row["customerID"]] == "Yes" else 0
            # Seldon hands a feedback request's features on from `data` (names and ndarray), not from jsonData.
            request = {"data": {"names": list(row), "ndarray": [list(row.values())]}}
            requests.post(
                f"{url}/api/v1.0/feedback",
                json={"request": request, "truth": {"data": {"ndarray": [[truth]]}}},
                timeout=30,
            )
    return ok


def drift_job(model_uri: str, request_log: Path, window: str, until: datetime, pushgateway: str, env: dict) -> dict:
    command = [sys.executable, "-m", "workloads.monitoring", "drift", "--model-uri", model_uri]
    command += ["--request-log", str(request_log), "--window", window, "--until", until.isoformat()]
    command += ["--pushgateway", pushgateway, "--json"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the drift job failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout)


def wait_for(what: str, check, timeout_s: float, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


class Trigger(LocalProcess):
    """The retraining trigger (workloads.monitoring.trigger) with a local launcher: the training command, or the
    training pipeline under kfp.local (``local-pipeline``), as a subprocess."""

    def __init__(self, tracking_uri: str, token: Path, state: Path, data: Path, launcher: str):
        self.port = free_port()
        command = [sys.executable, "-m", "workloads.monitoring.trigger", "serve", "--port", str(self.port)]
        command += ["--token-file", str(token), "--launcher", launcher, "--model", MODEL]
        command += ["--tracking-uri", tracking_uri, "--state-dir", str(state)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLKIT_DATA_DIR": str(data)}
        super().__init__(command, f"{self.url}/healthz", env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def firing(prometheus: LocalPrometheus, name: str) -> list[dict]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"]


def retrained(client, model: str) -> list:
    """The model's versions whose runs the trigger started (tagged mlkit.trigger.*)."""
    versions = client.search_model_versions(f"name = '{model}'")
    return [v for v in versions if "mlkit.trigger.alertname" in client.get_run(v.run_id).data.tags]


def feature_job(batch: Path, store: Path, event_time: str, pushgateway: str, env: dict) -> list[dict]:
    """The feature job's command on a new batch, pushing its counts as in the cluster."""
    specs = [arg for table in TABLES for arg in ("--spec", str(SPECS / f"{table}.yaml"))]
    command = [sys.executable, "-m", "workloads.features", "ingest", *specs, "--input", str(batch)]
    command += ["--store", str(store), "--event-time", event_time, "--pushgateway", pushgateway, "--json"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the feature job failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout)


def serve_champion_in(data: Path) -> dict:
    """What a fresh server of models:/<name>@champion answers with: the alias decides what is served."""
    [row] = traffic(1, seed=3, drifted=False)
    with (
        LocalMlflow(f"sqlite:///{data / 'mlflow' / 'mlflow.db'}") as tracking,
        LocalServer(f"models:/{MODEL}@champion", python=SERVING_PYTHON, MLFLOW_TRACKING_URI=tracking.url) as server,
    ):
        answer = requests.post(f"{server.url}/api/v1.0/predictions", json={"jsonData": row}, timeout=30).json()
    return {"version": answer["meta"]["tags"]["model_version"], "probability": answer["data"]["tensor"]["values"][0]}


def main(
    data: Path, count: int = 300, *, batch: Path | None = None, event_time: str = "", launcher: str = "local"
) -> dict:
    """``batch``: a feature batch the feature job ingests between the normal and the drifted traffic (new data
    for the retraining to learn from); ``launcher``: the trigger's (local or local-pipeline)."""
    if not only_loopback():
        raise SystemExit("run inside a private network namespace (scripts/confined): the microservice binds 0.0.0.0")
    import mlflow

    began = time.monotonic()
    story: dict = {}
    work = data / "monitoring"  # the request log, the trigger's claims and runs, story.json; rebuilt each run
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    token = work / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    request_log = work / "requests"
    truth = pd.read_csv(TELCO, dtype=str).set_index("customerID")["Churn"]
    with (
        LocalMlflow(f"sqlite:///{data / 'mlflow' / 'mlflow.db'}") as tracking,
        LocalServer(
            f"models:/{MODEL}@champion",
            str(request_log),
            threads=2,
            python=SERVING_PYTHON,
            MLFLOW_TRACKING_URI=tracking.url,
            MLKIT_REQUEST_LOG_FLUSH_SECONDS="0.5",
        ) as server,
        LocalPushgateway() as pushgateway,
        Trigger(tracking.url, token, work / "retrain", data, launcher) as trigger,
        LocalAlertmanager(f"{trigger.url}/alerts", token) as alertmanager,
        LocalPrometheus(
            platform_rules(),
            {
                "pushgateway": (pushgateway.url.removeprefix("http://"), "/metrics"),
                "serving": (f"127.0.0.1:{server.metrics}", "/prometheus"),
            },
            alertmanager.url,
        ) as prometheus,
    ):
        client = mlflow.MlflowClient(tracking.url)
        champion = client.get_model_version_by_alias(MODEL, "champion")
        model_uri = f"models:/{MODEL}/{champion.version}"
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": tracking.url}
        story["champion"] = {"version": champion.version, "run": champion.run_id}
        story["servers"] = {"started_s": round(time.monotonic() - began, 1)}

        def phase(rows: list[dict], labelled: bool) -> dict:
            started = datetime.now(UTC)
            served = send(server.url, rows, feedback=truth if labelled else None)
            time.sleep(1.5)  # the request log's flush (0.5 s here)
            # The window is this phase's traffic; the job runs as the CronJob would, a process of its own.
            until = datetime.now(UTC)
            seconds = int((until - started).total_seconds()) + 1
            window = f"{seconds}s"
            report = drift_job(model_uri, request_log, window, until, pushgateway.url, env)
            if report["no_data"]:
                raise RuntimeError(f"the drift job found no usable requests in {window}: skipped {report['skipped']}")
            return {
                "since": (until - timedelta(seconds=seconds)).isoformat(),
                "until": until.isoformat(),
                "sent": len(rows),
                "served": served,
                "window": window,
                "rows_compared": report["rows"],
                "max_psi": round(report["max_psi"], 4),
                "prediction_psi": round(report["prediction_psi"], 4),
                "roc_auc": report["roc_auc"] and round(report["roc_auc"], 4),
                "drifted_features": report["drifted"],
                "skipped": report["skipped"],
            }

        # Normal traffic: customers like the training set's, with their labels as feedback.
        normal = phase(traffic(count, seed=1, drifted=False), labelled=True)
        wait_for(
            "the drift job's metrics in Prometheus",
            lambda: prometheus.query(f'mlkit_drift_max_psi{{registered_version="{champion.version}"}}'),
            30,
        )
        time.sleep(6)  # longer than the alert's `for` plus two evaluations: it would have fired by now
        normal["alerts"] = [a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] == "firing"]
        normal["served_series"] = len(prometheus.query("mlkit_predictions_total"))
        story["normal"] = normal

        if batch:  # next month's batch lands: the retraining after the alert will see it
            reports = feature_job(batch, data / "features", event_time, pushgateway.url, env)
            story["batch"] = {"source": str(batch), "event_time": event_time, "reports": reports}
            rows = wait_for(
                "the feature job's metrics in Prometheus",
                lambda: prometheus.query('mlkit_feature_job_rows{stage="quarantined", namespace="local"}'),
                30,
            )
            story["batch"]["quarantined_in_prometheus"] = {r["metric"]["table"]: float(r["value"][1]) for r in rows}

        # Drifted traffic: charges up 60, most customers on two-year contracts.
        drifted_at = time.monotonic()
        drifted = phase(traffic(count, seed=2, drifted=True), labelled=False)
        [alert] = wait_for("MlkitFeatureDrift firing", lambda: firing(prometheus, "MlkitFeatureDrift"), 60)
        drifted["alert"] = {
            "name": alert["labels"]["alertname"],
            "labels": {k: alert["labels"][k] for k in ("registered_model", "registered_version", "mlkit_action")},
            "description": alert["annotations"]["description"],
            "firing_after_job_s": round(time.monotonic() - drifted_at, 1),
        }
        story["drifted"] = drifted

        # Alertmanager -> the trigger -> training, the served version's config on the latest features.
        [claim] = wait_for("the trigger's claim", lambda: list((work / "retrain" / "claims").glob("*.json")), 60)
        run_dir = work / "retrain" / "runs" / claim.stem
        exit_code = run_dir / "exit-code"  # the local launcher writes it when the run ends
        wait_for("the retraining run", exit_code.is_file, 600, 1)
        code = int(exit_code.read_text())
        if code != 0:
            raise RuntimeError(f"retraining exited {code}: {(run_dir / 'train.log').read_text()[-3000:]}")
        [version] = retrained(client, MODEL)
        run = client.get_run(version.run_id)
        champion_now = client.get_model_version_by_alias(MODEL, "champion")
        story["retrain"] = {
            "claim": json.loads(claim.read_text())["state"],
            "version": version.version,
            "trigger_tags": {k: v for k, v in run.data.tags.items() if k.startswith("mlkit.trigger.")},
            "test_roc_auc": round(run.data.metrics["test_roc_auc"], 4),
            "instants": json.loads(run.data.tags["mlkit.instants"]),  # the feature data it was trained on
            "champion_gate": run.data.tags.get("mlkit.promotion"),
            "champion_now": champion_now.version,
            "alert_to_new_version_s": round(time.monotonic() - drifted_at, 1),
        }
        started = requests.get(f"{trigger.url}/metrics", timeout=10).text
        story["retrain"]["trigger_started"] = sum(
            float(line.split()[-1])
            for line in started.splitlines()
            if line.startswith("mlkit_trigger_retrains_started_total")
        )
    # A fresh server of the champion alias: the new version if the gate promoted it, else the old one still.
    story["served_after"] = serve_champion_in(data)
    story["seconds"] = round(time.monotonic() - began, 1)
    (work / "story.json").write_text(json.dumps(story, indent=2, default=str) + "\n")
    return story


def demo_run(data: Path, timeout: float | None = None) -> tuple[SecondBatch, dict]:
    """The loop as `make demo` (and its test) runs it, confined: another month's batch between the normal and
    the drifted traffic, and the retraining through the training pipeline under kfp.local. The batch, the story."""
    march = second_batch(data / "batches" / "2026-03.csv", seed=11)
    args = [str(data), "--batch", str(march.path), "--event-time", "2026-03-01T00:00:00Z"]
    story = run_confined(
        WORKLOADS_PYTHON, "mlkit_dev.monitoring_loop", *args, "--launcher", "local-pipeline", timeout=timeout
    )
    return march, story


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m mlkit_dev.monitoring_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a data directory with features/ and mlflow/mlflow.db (a champion)")
    parser.add_argument("--batch", type=Path, help="a feature batch to ingest between normal and drifted traffic")
    parser.add_argument("--event-time", default="", help="the batch's event time (ISO 8601)")
    parser.add_argument("--launcher", choices=["local", "local-pipeline"], default="local")
    args = parser.parse_args()
    print(
        json.dumps(main(args.data, batch=args.batch, event_time=args.event_time, launcher=args.launcher), default=str)
    )


if __name__ == "__main__":
    cli()

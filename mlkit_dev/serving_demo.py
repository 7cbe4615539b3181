"""The serving stage of `make demo`: the registered champion behind the real Seldon microservice on loopback.

Starts an MLflow tracking server over the demo's registry, starts the microservice (workloads.serving.server) with
MLKIT_MODEL_URI=models:/<name>@champion (the path a cluster deployment takes), sends predictions,
one malformed request and one feedback, scrapes the metrics, and prints what happened as JSON.
Runs in the serving environment inside a private network namespace (mlkit_dev/demo.py arranges both).

    python -m mlkit_dev.serving_demo TRACKING_DB REQUEST_LOG_DIR [COUNT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from mlkit_dev.fixture import example_rows
from mlkit_dev.local import LocalMlflow, LocalServer, only_loopback


def main(tracking_db: Path, request_log: Path, count: int = 6) -> dict:
    if not only_loopback():
        raise SystemExit("run inside a private network namespace (scripts/confined): the microservice binds 0.0.0.0")
    rows = example_rows(count, start=100, key=True)
    with (
        LocalMlflow(f"sqlite:///{tracking_db}") as tracking,
        LocalServer(
            "models:/churn-classifier@champion", str(request_log), threads=2, MLFLOW_TRACKING_URI=tracking.url
        ) as server,
    ):
        predict = f"{server.url}/api/v1.0/predictions"
        answers = []
        for row in rows:
            response = requests.post(predict, json={"jsonData": row}, timeout=30).json()
            answers.append(
                {
                    "customerID": row["customerID"],
                    "probability": response["data"]["tensor"]["values"][0],
                    "version": response["meta"]["tags"]["model_version"],
                }
            )
        bad = requests.post(predict, json={"jsonData": {**rows[0], "tenure": "twelve"}}, timeout=30)
        feedback = requests.post(
            f"{server.url}/api/v1.0/feedback",
            json={"request": {"jsonData": rows[0]}, "truth": {"data": {"ndarray": [[1]]}}, "reward": 1.0},
            timeout=30,
        )
        metrics = requests.get(f"http://127.0.0.1:{server.metrics}/prometheus", timeout=30).text
    return {
        "predictions": answers,
        "malformed": {"status": bad.status_code, "message": bad.json()["status"]["info"]},
        "feedback_status": feedback.status_code,
        "predictions_by_class": {
            f"{sample.labels['class']} (v{sample.labels['registered_version']})": sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == "mlkit_predictions_total"
        },
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(Path(args[0]), Path(args[1]), *(int(a) for a in args[2:]))))

"""`make demo`: the ML loop on this machine, on the bundled Telco data, with no cloud account.

Stages: the feature job into Hudi tables, training tracked and registered in MLflow, the
registered champion served by Seldon Core's microservice on loopback, then monitoring: drifted
traffic, the platform's drift alert, the retraining it triggers and the champion gate. Everything it writes goes under data/demo (or MLKIT_DATA_DIR), rebuilt on each run.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlkit_dev import REPO
from mlkit_dev.demo_data import TELCO, record_batches, second_batch
from mlkit_dev.local import run_confined
from workloads.common.featurestore import FeatureStore
from workloads.common.spark import spark_session
from workloads.common.specs import load_spec
from workloads.features.job import BatchReport, run_batch

SPECS = REPO / "workloads" / "features" / "specs"
console = Console(soft_wrap=True, width=120)


def counts_table(title: str, reports: list[BatchReport]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("table", "read", "accepted", "quarantined", "duplicates", "unchanged", "written", "instant"):
        table.add_column(column, justify="left" if column in ("table", "instant") else "right")
    for r in reports:
        table.add_row(
            r.table,
            *(str(v) for v in (r.read, r.accepted, r.quarantined, r.duplicates, r.unchanged, r.written)),
            r.instant or "-",
        )
    return table


def feature_store_stage(data: Path) -> None:
    console.rule("[bold]1. Feature store: PySpark feature job -> Hudi tables")
    root = data / "features"
    shutil.rmtree(root, ignore_errors=True)
    store = FeatureStore(str(root))
    specs = [load_spec(SPECS / "customer_features.yaml"), load_spec(SPECS / "churn_labels.yaml")]
    spark = spark_session("mlkit-demo", store.store)
    jan, feb = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)

    console.print(f"store: {root}\nJanuary batch: {TELCO}")
    january = run_batch(spark, store, specs, str(TELCO), event_time=jan)
    console.print(counts_table("January: the Telco extract", january))
    jan_instant = store.resolve("customer_features").instant

    batch = second_batch(data / "batches" / "2026-02.csv")
    console.print(
        f"February batch: {batch.path} ({len(batch.changed)} customers changed, {len(batch.new)} new, {len(batch.bad)} broken rows)"
    )
    february = run_batch(spark, store, specs, str(batch.path), event_time=feb)
    console.print(counts_table("February: next month's snapshot", february))
    record_batches(data, {"January": january, "February": february})

    customer = sorted(batch.changed)[0]
    before = store.latest("customer_features", as_of=jan_instant).set_index("customerID").loc[customer]
    after = store.latest("customer_features").set_index("customerID").loc[customer]
    console.print(
        f"time travel, customer {customer}: as of {jan_instant} tenure={before.tenure} MonthlyCharges={before.MonthlyCharges}; "
        f"now tenure={after.tenure} MonthlyCharges={after.MonthlyCharges}"
    )
    changed = store.read("customer_features", since=jan_instant)
    console.print(
        f"incremental read since {jan_instant}: {len(changed)} rows, {changed['customerID'].nunique()} keys (the changed and new customers only)"
    )

    quarantine = store.quarantine("customer_features")
    console.print(
        f"quarantine: {len(quarantine)} rows kept with their reasons under {store.quarantine_uri('customer_features')}"
    )
    for row in quarantine.itertuples():
        console.print(
            f"  - {row.reasons[0]}" + (f" (+{len(row.reasons) - 1} more)" if len(row.reasons) > 1 else ""),
            highlight=False,
            markup=False,
        )

    labels = store.latest("churn_labels")[["customerID", "event_time", "Churn"]]
    training = store.point_in_time_join(labels, ["customer_features"], entity_key="customerID", timestamp="event_time")
    features = training.frame["customer_features__features"]
    console.print(
        f"point-in-time training set: {len(training.frame)} rows x {len(features.iloc[0])} features, "
        f"churn rate {training.frame['Churn'].mean():.3f}, built from {training.instants}"
    )
    rerun = run_batch(spark, store, specs, str(batch.path), event_time=feb)
    console.print(f"re-running February's batch: written {[r.written for r in rerun]} (idempotent)")
    return store


def training_stage(data: Path, store: FeatureStore) -> None:
    from workloads.training.config import load_config
    from workloads.training.train import train

    console.rule("[bold]2. Training: PyTorch on a point-in-time training set, tracked in MLflow")
    mlflow_dir = data / "mlflow"
    shutil.rmtree(mlflow_dir, ignore_errors=True)
    os.environ["MLKIT_DATA_DIR"] = str(data)  # local tracking and artifacts under data/demo/mlflow
    report = train(
        store,
        load_config(REPO / "workloads" / "training" / "configs" / "churn.yaml"),
        tracking_uri=f"sqlite:///{mlflow_dir / 'mlflow.db'}",
    )
    table = Table(
        title=f"{report.model_name} v{report.model_version} (run {report.run_id}, {report.device}, best epoch {report.best_epoch})",
        title_justify="left",
    )
    for metric in report.test:
        table.add_column(f"test {metric}", justify="right")
    table.add_row(*(f"{v:.4f}" for v in report.test.values()))
    console.print(table)
    console.print(f"lineage: feature store {store.root}, instants {report.instants}, rows {report.rows}")
    console.print(f"registry: {report.promotion}")
    console.print(f"browse: .venv/workloads/bin/mlflow ui --backend-store-uri sqlite:///{mlflow_dir / 'mlflow.db'}")


def serving_stage(data: Path) -> None:
    import pandas as pd

    console.rule("[bold]3. Serving: the champion behind Seldon Core's microservice, on loopback")
    request_log = data / "serving" / "requests"
    shutil.rmtree(request_log, ignore_errors=True)
    try:
        result = run_confined(
            ".venv/serving/bin/python", "mlkit_dev.serving_demo", str(data / "mlflow" / "mlflow.db"), str(request_log)
        )
    except RuntimeError as e:
        raise SystemExit(f"the serving stage failed:\n{e}") from None
    churned = pd.read_csv(TELCO, dtype=str).set_index("customerID")["Churn"]
    table = Table(
        title=f"models:/churn-classifier@champion (v{result['predictions'][0]['version']}), POST /api/v1.0/predictions",
        title_justify="left",
    )
    for column in ("customer", "churn probability", "predicted", "actually churned"):
        table.add_column(column, justify="left" if column == "customer" else "right")
    for p in result["predictions"]:
        predicted = "yes" if p["probability"] >= 0.5 else "no"
        table.add_row(p["customerID"], f"{p['probability']:.3f}", predicted, churned[p["customerID"]].lower())
    console.print(table)
    malformed = result["malformed"]
    console.print(f"malformed request -> HTTP {malformed['status']}: {malformed['message']}", highlight=False)
    counts = ", ".join(f"class {k}: {v:g}" for k, v in result["predictions_by_class"].items())
    console.print(f"feedback -> HTTP {result['feedback_status']}; metrics: mlkit_predictions_total {counts}")
    logged = sum(1 for path in request_log.rglob("*.jsonl") for _ in path.open())
    console.print(f"request log: {logged} records (predictions and feedback) under {request_log}")


def monitoring_stage(data: Path) -> None:
    console.rule("[bold]4. Monitoring: drifted traffic -> drift job -> Prometheus alert -> retraining -> champion gate")
    from mlkit_dev.monitoring_loop import demo_run

    try:
        march, story = demo_run(data)
    except RuntimeError as e:
        raise SystemExit(f"the monitoring stage failed:\n{e}") from None
    console.print(
        "on loopback: the champion behind Seldon's microservice, a Pushgateway, Prometheus with the platform's alert "
        "rules (infra/components/alerts.py; the drift alert's `for` cut to seconds), Alertmanager, the retraining trigger"
    )
    batch = story["batch"]
    written = ", ".join(f"{r['table']} {r['written']}" for r in batch["reports"])
    console.print(
        f"between the two: March's batch ({len(march.changed)} customers changed) through the feature job: written "
        f"{written}; its counts reached Prometheus (quarantined {batch['quarantined_in_prometheus']})"
    )
    table = Table(title=f"drift job against v{story['champion']['version']}'s training reference", title_justify="left")
    for column in ("traffic", "requests", "max feature PSI", "score PSI", "ROC AUC (feedback)", "drifted", "alerts"):
        table.add_column(column, justify="left" if column in ("traffic", "drifted", "alerts") else "right")
    for name, phase in (("normal", story["normal"]), ("drifted", story["drifted"])):
        alerts = phase.get("alerts") or ([phase["alert"]["name"]] if "alert" in phase else [])
        auc = phase["roc_auc"]
        table.add_row(
            name,
            str(phase["rows_compared"]),
            f"{phase['max_psi']:.3f}",
            f"{phase['prediction_psi']:.3f}",
            "-" if auc is None else f"{auc:.3f}",
            ", ".join(phase["drifted_features"]) or "none",
            ", ".join(alerts) or "none",
        )
    console.print(table)
    alert, retrain = story["drifted"]["alert"], story["retrain"]
    console.print(f"alert: {alert['description']}", highlight=False, markup=False)
    console.print(
        f"trigger: started one run of the training pipeline (kfp.local; claim {retrain['claim']}), tagged "
        f"mlkit.trigger.alertname={retrain['trigger_tags']['mlkit.trigger.alertname']}, served_version="
        f"{retrain['trigger_tags']['mlkit.trigger.served_version']}"
    )
    console.print(
        f"retrained: v{retrain['version']}, test ROC AUC {retrain['test_roc_auc']:.4f}, "
        f"{retrain['alert_to_new_version_s']:.0f} s from the drifted window to the new version"
    )
    console.print(f"champion gate: {retrain['champion_gate']}; champion is now v{retrain['champion_now']}")
    served = story["served_after"]
    console.print(f"a fresh server of models:/churn-classifier@champion answers with v{served['version']}")
    console.print(f"the loop took {story['seconds']:.0f} s; report data under {data / 'monitoring'}")


def report_stage(data: Path) -> None:
    from mlkit_dev.report import write_report

    console.rule("[bold]5. Report: the loop on one HTML page")
    console.print(f"report: {write_report(data)} (open it in any browser; docs/report.md)")


def main() -> None:
    # MLflow's table setup and its note that uv environments carry no pip are noise here.
    # (MLflow resets its logger level on import, so the environment variable is what sticks.)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    if not TELCO.is_file():
        raise SystemExit(
            f"make demo: the Telco data set is not at {TELCO}. Check out the shared folder beside this repository "
            "(../shared, with data/telco-customer-churn.csv)."
        )
    data = Path(os.environ.get("MLKIT_DATA_DIR", REPO / "data")) / "demo"
    data.mkdir(parents=True, exist_ok=True)
    store = feature_store_stage(data)
    training_stage(data, store)
    serving_stage(data)
    monitoring_stage(data)
    report_stage(data)
    console.rule("[bold]done")


if __name__ == "__main__":
    main()

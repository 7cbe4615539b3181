"""The monitoring loop end to end with every part real (mlkit_dev/monitoring_loop.py): the champion behind the
Seldon microservice, normal then drifted traffic, the drift job pushing to a Pushgateway, Prometheus evaluating
the platform's own rule file, Alertmanager routing to the retraining trigger, and training a new version."""

from __future__ import annotations


def test_normal_traffic_is_compared_and_fires_nothing(closed_loop):
    champion, story = closed_loop
    normal = story["normal"]
    assert story["champion"]["version"] == champion.model_version
    assert normal["served"] == normal["sent"] == normal["rows_compared"]
    assert normal["max_psi"] < 0.2 and normal["drifted_features"] == []
    assert normal["alerts"] == []
    assert normal["roc_auc"] > 0.75  # the feedback labels reached the drift job
    assert normal["served_series"] > 0  # Prometheus scraped the microservice too


def test_the_batch_between_is_ingested_and_its_counts_reach_prometheus(closed_loop):
    _, story = closed_loop
    march = story["march"]
    reports = {r["table"]: r for r in story["batch"]["reports"]}
    customers = reports["customer_features"]
    assert customers["written"] == len(march.changed) + len(march.new)
    assert customers["quarantined"] > 0  # the batch's broken rows, kept with their reasons
    assert story["batch"]["quarantined_in_prometheus"]["customer_features"] == customers["quarantined"]


def test_drifted_traffic_fires_the_platform_drift_alert_naming_the_features(closed_loop):
    champion, story = closed_loop
    drifted = story["drifted"]
    assert drifted["rows_compared"] == drifted["sent"]
    assert {"MonthlyCharges", "Contract"} <= set(drifted["drifted_features"])
    assert "tenure" not in drifted["drifted_features"]
    alert = drifted["alert"]
    assert alert["name"] == "MlkitFeatureDrift"
    assert alert["labels"] == {
        "registered_model": "churn-classifier",
        "registered_version": champion.model_version,
        "mlkit_action": "retrain",
    }
    assert "MonthlyCharges (" in alert["description"] and "Contract (" in alert["description"]


def test_the_alert_starts_one_retraining_run_recorded_on_the_new_version(closed_loop):
    champion, story = closed_loop
    retrain = story["retrain"]
    assert retrain["claim"] == "launched" and retrain["trigger_started"] == 1
    assert int(retrain["version"]) == int(champion.model_version) + 1
    tags = retrain["trigger_tags"]
    assert tags["mlkit.trigger.alertname"] == "MlkitFeatureDrift"
    assert tags["mlkit.trigger.served_version"] == champion.model_version
    assert tags["mlkit.trigger.source_run"] == champion.run_id
    assert retrain["test_roc_auc"] > 0.75
    # The champion gate decided, the alias follows its decision, and a fresh server serves what the alias names.
    promoted = retrain["champion_gate"].startswith("promoted")
    assert retrain["champion_now"] == (retrain["version"] if promoted else champion.model_version)
    assert story["served_after"]["version"] == retrain["champion_now"]


def test_the_retraining_ran_the_pipeline_on_the_latest_data(closed_loop):
    champion, story = closed_loop
    instants = story["retrain"]["instants"]
    march = {r["table"]: r["instant"] for r in story["batch"]["reports"]}
    assert instants["customer_features"] == march["customer_features"]  # the batch's commit
    assert instants["customer_features"] != champion.instants["customer_features"]

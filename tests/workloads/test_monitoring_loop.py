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
    # The champion gate decided, and the alias follows its decision.
    promoted = retrain["champion_gate"].startswith("promoted")
    assert retrain["champion_now"] == (retrain["version"] if promoted else champion.model_version)

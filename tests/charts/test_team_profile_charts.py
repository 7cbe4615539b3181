"""The team profile end to end: each shipped stack's profiles under Pulumi mocks, both charts rendered from a
profile alone, and no store path, bucket or cloud label typed into a chart."""

from __future__ import annotations

import json
import re

import pytest

from mlkit_contract import CREDENTIALS_SECRET, PROFILE_CONFIGMAP, PROFILE_KEY, PROFILE_MOUNT, TeamProfile
from tests.charts.helm import PROFILE, REPO, render
from tests.charts.test_feature_job_chart import SPECS
from tests.infra.test_clouds import STACKS, config_of
from tests.infra.test_platform import platform_of

# What each target's workload identity asks of a pod, as its module binds a service account (infra/clouds/*).
IDENTITY_LABELS = {"azure": {"azure.workload.identity/use": "true"}}
STORE_SCHEMES = {"kind": "s3", "aws": "s3", "gcp": "gs", "azure": "abfss", "existing": "s3"}


@pytest.fixture(scope="module", params=STACKS)
def profiles(request) -> tuple[str, dict[str, TeamProfile]]:
    """A stack's published profiles, by team, read back from the ConfigMaps its program writes."""
    mocks = platform_of(config_of(request.param))
    configmaps = [
        c for c in mocks.of_type("kubernetes:core/v1:ConfigMap") if c.inputs["metadata"]["name"] == PROFILE_CONFIGMAP
    ]
    return request.param, {
        c.inputs["metadata"]["namespace"]: TeamProfile.model_validate_json(c.inputs["data"][PROFILE_KEY])
        for c in configmaps
    }


def test_the_five_shipped_stacks_are_the_ones_checked():
    assert sorted(STACKS) == ["aws", "azure", "gcp", "local", "onprem"]


def test_each_team_gets_one_profile_of_its_own(profiles):
    stack, published = profiles
    config = config_of(stack)
    assert sorted(published) == sorted(t.name for t in config.teams)
    for team, profile in published.items():
        assert profile.team == profile.namespace == team
        assert profile.root.endswith(f"/teams/{team}")
        assert profile.object_store.scheme == STORE_SCHEMES[config.target.type]
        assert profile.object_store.bucket == config.storage.bucket
        assert profile.service_accounts.model_dump() == {"spark": "spark", "models": "ml"}
        assert profile.mlflow.credentials_secret == CREDENTIALS_SECRET
        assert set(profile.pools) == {p.name for p in config.node_pools}


def test_both_charts_render_from_each_profile_alone_inside_the_team_root(profiles, tmp_path):
    stack, published = profiles
    target = config_of(stack).target.type
    for team, profile in published.items():
        values = {"profile": json.loads(profile.to_json())}
        feature = next(
            d for d in render("feature-job", {**values, "specs": SPECS}, tmp_path) if d["kind"] == "SparkApplication"
        )
        spec = feature["spec"]
        args = spec["arguments"]
        paths = [args[args.index("--store") + 1], args[args.index("--input") + 1]]
        serving = next(d for d in render("model-serving", values, tmp_path) if d["kind"] == "SeldonDeployment")
        component = serving["spec"]["predictors"][0]["componentSpecs"][0]
        env = {e["name"]: e.get("value") for e in component["spec"]["containers"][0]["env"]}
        paths.append(env["MLKIT_REQUEST_LOG"])
        assert paths[0] == profile.feature_store
        assert all(profile.contains(p) for p in paths), (stack, team, paths)
        assert env["MLFLOW_TRACKING_URI"] == profile.mlflow.tracking_uri
        assert spec["hadoopConfigMap"] == profile.hadoop_config_map
        want = IDENTITY_LABELS.get(target, {})
        assert profile.pod_labels == want, stack
        pod_labels = [spec["driver"]["labels"], spec["executor"]["labels"], component["metadata"]["labels"]]
        for labels in pod_labels:
            # Exactly the target's: the chart's own app.kubernetes.io/* and helm.sh labels, plus the identity's.
            assert {k: v for k, v in labels.items() if not k.startswith(("app.kubernetes.io/", "helm.sh/"))} == want
        assert spec["driver"]["serviceAccount"] == profile.service_accounts.spark
        assert component["spec"]["serviceAccountName"] == profile.service_accounts.models
        # Every pod mounts the platform's own ConfigMap and names the team and namespace it checks it against.
        container = component["spec"]["containers"][0]
        pods = [
            (spec["volumes"], spec["driver"]["volumeMounts"], spec["driver"]["env"]),
            (spec["volumes"], spec["executor"]["volumeMounts"], spec["executor"]["env"]),
            (component["spec"]["volumes"], container["volumeMounts"], container["env"]),
        ]
        for volumes, mounts, pod_env in pods:
            [volume] = [v for v in volumes if v.get("configMap", {}).get("name") == PROFILE_CONFIGMAP]
            [mount] = [m for m in mounts if m["name"] == volume["name"]]
            assert (mount["mountPath"], mount["readOnly"]) == (PROFILE_MOUNT.rpartition("/")[0], True)
            by_name = {e["name"]: e for e in pod_env}
            assert by_name["MLKIT_TEAM"]["value"] == profile.team
            assert by_name["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_a_profile_with_a_path_outside_its_root_is_refused():
    good = TeamProfile.model_validate(PROFILE)
    assert good.contains(f"{good.root}/features/x") and good.contains(good.root)
    for outside in (f"{good.root}-other/x", f"{good.root}/../fraud", "s3://another-bucket/teams/example/x"):
        assert not good.contains(outside), outside
    with pytest.raises(ValueError, match="requestLogs 's3://another/x' is not inside the team root"):
        TeamProfile.model_validate({**PROFILE, "requestLogs": "s3://another/x"})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        TeamProfile.model_validate({**PROFILE, "storePath": "s3://x"})


def test_infra_and_workloads_name_the_same_mlflow_credentials_secret():
    from workloads.mlflow import auth

    assert auth.CREDENTIALS_SECRET == CREDENTIALS_SECRET


# Store schemes, cloud-specific label and annotation keys, and every shipped stack's bucket.
SCHEMES = ("s3://", "gs://", "abfss://")
CLOUD_KEYS = ("azure.workload.identity", "iam.gke.io", "eks.amazonaws.com", "kubernetes.azure.com", "cloud.google.com")
# onprem's bucket is the kit's own name and Azure's container is "platform", ordinary words in every chart
# (labels, paths, comments): a store path naming either is still caught, by its scheme.
ORDINARY_WORDS = {"mlkit", "platform"}


def needles() -> list[str]:
    """Schemes, cloud keys, and each shipped stack's bucket (and Azure's storage account) names."""
    names = set()
    for stack in STACKS:
        config = config_of(stack)
        names |= {config.storage.bucket, getattr(config.target, "storage_account", None) or config.storage.bucket}
    return [*SCHEMES, *CLOUD_KEYS, *sorted(names - ORDINARY_WORDS)]


def typed_store_facts(text: str) -> set[str]:
    """The store schemes, cloud label keys and shipped bucket names ``text`` contains, each as a whole word."""

    def word(needle: str) -> str:  # a scheme runs into its path; a name or key must end where the word ends
        return rf"(?<![-\w.]){re.escape(needle)}" + ("" if needle.endswith("://") else r"(?![-\w])")

    return {n for n in needles() if re.search(word(n), text)}


def test_no_chart_types_a_store_path_a_bucket_or_a_cloud_label():
    """ci/ holds `make lint`'s inputs, which stand in for the cluster's profile ConfigMap: not chart defaults."""
    charts = REPO / "charts"
    files = [p for p in charts.rglob("*") if p.is_file() and "ci" not in p.relative_to(charts).parts]
    assert {"_helpers.tpl", "values.yaml", "values.schema.json", "seldondeployment.yaml"} <= {p.name for p in files}
    found = {
        f"{p.relative_to(REPO)}:{n}: {sorted(typed_store_facts(line))}"
        for p in files
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if typed_store_facts(line)
    }
    assert found == set()


def test_no_workload_module_types_a_store_path_a_bucket_or_a_cloud_label():
    """Workloads name schemes (the storage layer serves them) but never a bucket, a path on one or a cloud's label:
    those reach them through the team profile."""
    files = [
        p for p in (REPO / "workloads").rglob("*") if p.suffix in (".py", ".yaml", ".txt") or p.name == "Dockerfile"
    ]
    assert len(files) > 20
    store_path = re.compile(r"\b(?:s3a?|gs|abfss|az)://\w[\w.-]*")
    found = {
        f"{p.relative_to(REPO)}:{n}: {sorted(typed_store_facts(line) - set(SCHEMES)) or store_path.findall(line)}"
        for p in files
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if typed_store_facts(line) - set(SCHEMES) or store_path.search(line)
    }
    assert found == set()


def test_the_search_is_not_blind():
    """What the charts typed before the profile is found, bucket included."""
    assert {"mlkit-local", "acme-mlkit-prod-eu-west-1", "acme-mlkit-prod-europe-west4", "acmemlkitprod"} <= set(
        needles()
    )
    old = 'featureStore: s3://mlkit-local/features/churn\n    azure.workload.identity/use: "true"\n'
    assert typed_store_facts(old) == {"s3://", "azure.workload.identity", "mlkit-local"}
    assert typed_store_facts("abfss://platform@acmemlkitprod.dfs.core.windows.net/x") == {"abfss://", "acmemlkitprod"}
    assert typed_store_facts("app.kubernetes.io/part-of: mlkit") == set()

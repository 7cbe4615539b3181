"""The policy pack's validate functions, over what the kit's program creates for each shipped stack (under mocks)
and over the bad values a stack can set. The pack run by the real Pulumi CLI is in tests/live."""

from __future__ import annotations

import copy

import pytest
from pulumi_policy import PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs

from infra import policies as pack
from infra.config import POLICY_NAMES
from infra.program import build
from infra.stack import StackConfigError, parse_stack
from tests.infra.pulumi_mocks import Recorded, deploy, unsecret
from tests.infra.test_clouds import config_of
from tests.infra.test_schema import stack_values

OPTIONS = PolicyResourceOptions(False, [], None, [], None, [])  # what no test here looks at


def as_policy_resources(recorded: list[Recorded]) -> list[PolicyResource]:
    """The resources as the engine hands them to a pack: a property that took another resource's id depends on it.
    (Mock ids are `<name>-id`, and a bucket's key and configurations share its name: all of them are named.)"""
    found = [
        PolicyResource(r.type, unsecret(r.inputs), f"urn:{r.type}::{r.name}", r.name, OPTIONS, None, None, [], {})
        for r in recorded
    ]
    by_id: dict[str, list[PolicyResource]] = {}
    for resource in found:
        by_id.setdefault(f"{resource.name}-id", []).append(resource)
    for resource in found:
        for prop, value in resource.props.items():
            if isinstance(value, str) and value in by_id:
                resource.property_dependencies[prop] = by_id[value]
    return found


def violations(resources: list[PolicyResource], config: dict | None = None) -> dict[str, list[str]]:
    """Every policy of the pack over ``resources``: policy name -> its messages, as the CLI would report them."""
    config = config or {}
    found: dict[str, list[str]] = {}
    for policy in pack.policies():
        messages = found.setdefault(policy.name, [])
        report = lambda message, urn=None, messages=messages: messages.append(message)  # noqa: E731
        own = config.get(policy.name, {})
        if hasattr(policy, "validate") and isinstance(policy, pack.StackValidationPolicy):
            policy.validate(StackValidationArgs(resources, own), report)
        else:
            for r in resources:
                args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, OPTIONS, None, own)
                for validate in policy.validate if isinstance(policy.validate, list) else [policy.validate]:
                    validate(args, report)
    return {name: messages for name, messages in found.items() if messages}


def program(stack: str, **overrides) -> list[PolicyResource]:
    return as_policy_resources(deploy(config_of(stack, **overrides), build).resources)


def pack_config(stack: str, **overrides) -> dict:
    return pack.pack_config(config_of(stack, **overrides))


@pytest.mark.parametrize("stack", ["aws", "gcp", "azure", "onprem", "local", "sim"])
def test_every_shipped_stack_passes_the_whole_pack(stack):
    resources = program(stack)
    assert len(resources) > 50  # the whole program ran: the platform, not only the target
    assert violations(resources, pack_config(stack)) == {}


def test_the_policy_names_are_the_ones_the_schema_accepts():
    assert [p.name for p in pack.policies()] == list(POLICY_NAMES)


# --- object store ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "storage", "expected"),
    [
        ("aws", {"encryption": False}, "has no server-side encryption configuration: set mlkit:storage.encryption"),
        ("aws", {"blockPublicAccess": False}, "may become public: set mlkit:storage.blockPublicAccess: true"),
        ("gcp", {"blockPublicAccess": False}, "may become public: set mlkit:storage.blockPublicAccess: true"),
        ("azure", {"blockPublicAccess": False}, "allows public blobs: set mlkit:storage.blockPublicAccess: true"),
    ],
)
def test_a_bucket_made_public_or_unencrypted_by_its_stack_is_named_with_the_fix(stack, storage, expected):
    values = stack_values(stack)
    found = violations(program(stack, storage={**values["storage"], **storage}), pack_config(stack))
    assert list(found) == ["object-store-private-encrypted-tls"], found
    [message] = found["object-store-private-encrypted-tls"]
    assert expected in message


def test_an_s3_bucket_policy_that_allows_plain_http_is_refused():
    resources = program("aws")
    [policy] = [r for r in resources if r.resource_type == "aws:s3/bucketPolicy:BucketPolicy"]
    assert pack._tls_only(policy.props["policy"])  # what the kit writes
    policy.props["policy"] = '{"Version": "2012-10-17", "Statement": []}'
    found = violations(resources)
    assert "does not deny requests without TLS" in found["object-store-private-encrypted-tls"][0]


# --- GPU pools ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["aws", "gcp", "azure"])
def test_a_gpu_pool_kept_warm_needs_a_reason_in_the_stack(stack):
    values = stack_values(stack)
    pools = copy.deepcopy(values["nodePools"])
    gpu = next(p for p in pools if p.get("gpu"))
    gpu["minSize"] = 1
    found = violations(program(stack, nodePools=pools), pack_config(stack, nodePools=pools))
    [message] = found["gpu-pools-scale-to-zero"]
    assert f"GPU pool {gpu['name']} keeps 1 node(s) running when idle" in message
    assert f"mlkit:nodePools[{gpu['name']}].minSizeReason" in message
    gpu["minSizeReason"] = "interactive notebooks must not wait 5 minutes for a node"
    assert "gpu-pools-scale-to-zero" not in violations(
        program(stack, nodePools=pools), pack_config(stack, nodePools=pools)
    )


# --- workloads ------------------------------------------------------------------------------------


def workload(containers: list[dict], pod: dict | None = None, labels: dict | None = None) -> PolicyResource:
    props = {
        "metadata": {"name": "job", "namespace": "churn", "labels": {"app.kubernetes.io/part-of": "mlkit"} if labels is None else labels},
        "spec": {"template": {"spec": {"securityContext": pod or {}, "containers": containers}}},
    }  # fmt: skip
    return PolicyResource("kubernetes:apps/v1:Deployment", props, "urn:d", "d", OPTIONS, None, None, [], {})


GOOD = {
    "name": "app",
    "image": "registry.example/app:1.2.3",
    "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
}


def test_a_hardened_kit_workload_passes_and_each_missing_guard_is_named():
    assert violations([workload([GOOD])]) == {}
    bare = {"name": "app", "image": "registry.example/app:1.2.3"}
    [message] = violations([workload([bare])])["kit-workloads-hardened"]
    assert message == (
        "Deployment churn/job: container app needs runAsNonRoot: true, readOnlyRootFilesystem: true, "
        "allowPrivilegeEscalation: false, resources.requests cpu and memory, resources.limits.memory"
    )
    privileged = {**GOOD, "securityContext": {**GOOD["securityContext"], "privileged": True}}
    assert "allowPrivilegeEscalation: false" in violations([workload([privileged])])["kit-workloads-hardened"][0]


def test_non_root_may_come_from_the_pod_and_third_party_workloads_are_left_to_pod_security():
    context = {k: v for k, v in GOOD["securityContext"].items() if k != "runAsNonRoot"}
    assert violations([workload([{**GOOD, "securityContext": context}], pod={"runAsNonRoot": True})]) == {}
    assert "kit-workloads-hardened" not in violations([workload([{"name": "x", "image": "x:1"}], labels={})])


@pytest.mark.parametrize(
    ("image", "floating"),
    [
        ("registry.example/app:latest", True),
        ("registry.example:5000/app", True),
        ("app", True),
        ("registry.example:5000/app:1.2.3", False),
        ("registry.example/app@sha256:" + "a" * 64, False),
    ],
)
def test_floating_image_tags_are_refused(image, floating):
    found = violations([workload([{**GOOD, "image": image}])])
    assert ("no-floating-image-tags" in found) == floating, found
    if floating:
        assert found["no-floating-image-tags"] == [
            f"Deployment churn/job runs {image}: pin a version tag or digest (mlkit:images.tag for the kit's own)"
        ]


def test_a_chart_value_pinning_latest_is_refused():
    release = PolicyResource(
        pack.RELEASE, {"chart": "x", "values": {"sidecar": {"image": {"repository": "r/s", "tag": "latest"}}}},
        "urn:r", "r", OPTIONS, None, None, [], {},
    )  # fmt: skip
    assert "r/s:latest" in violations([release])["no-floating-image-tags"][0]


def test_the_kits_own_image_tag_set_to_latest_is_caught_in_the_program():
    found = violations(program("aws", images={**stack_values("aws")["images"], "tag": "latest"}), pack_config("aws"))
    assert set(found) == {"no-floating-image-tags"}
    assert any("mlkit-mlflow:latest" in m for m in found["no-floating-image-tags"])


def test_cloud_keys_are_refused_where_the_target_has_workload_identity():
    secret = PolicyResource(
        "kubernetes:core/v1:Secret", {"metadata": {"name": "keys", "namespace": "churn"}, "stringData": {"AWS_SECRET_ACCESS_KEY": "x", "other": "y"}},
        "urn:s", "s", OPTIONS, None, None, [], {},
    )  # fmt: skip
    [message] = violations([secret], {"no-static-cloud-keys": {"storeKeysAllowed": False}})["no-static-cloud-keys"]
    assert message.startswith("Secret churn/keys holds AWS_SECRET_ACCESS_KEY: on this target workloads authenticate")
    assert violations([secret], {"no-static-cloud-keys": {"storeKeysAllowed": True}}) == {}
    literal = {**GOOD, "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA..."}]}
    assert (
        "has AWS_ACCESS_KEY_ID written in its environment"
        in violations([workload([literal])])["no-static-cloud-keys"][0]
    )
    from_secret = {
        **GOOD,
        "env": [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "k", "key": "id"}}}],
    }
    assert violations([workload([from_secret])]) == {}


def test_the_store_keys_of_the_existing_target_are_allowed_only_there():
    assert pack_config("onprem")["no-static-cloud-keys"]["storeKeysAllowed"] is True
    assert pack_config("aws")["no-static-cloud-keys"]["storeKeysAllowed"] is False
    # onprem's keys reach the teams' Secrets: allowed there, refused by the same policy on a cloud target.
    resources = program("onprem")
    assert violations(resources, pack_config("onprem")) == {}
    held = violations(resources, {"no-static-cloud-keys": {"storeKeysAllowed": False}})["no-static-cloud-keys"]
    assert held and all("holds AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in m for m in held)


@pytest.mark.parametrize(
    ("version", "licence", "refused"), [("1.17.1", "", False), ("1.18.2", "", True), ("1.18.2", "BSL-1.1", False)]
)
def test_seldon_core_after_1_17_needs_the_licence_flag(version, licence, refused):
    release = PolicyResource(
        pack.RELEASE, {"chart": "seldon-core-operator", "version": version}, "urn:r", "r", OPTIONS, None, None, [], {}
    )
    found = violations([release], {"seldon-core-licence": {"acceptLicense": licence}})
    assert ("seldon-core-licence" in found) == refused
    if refused:
        assert "set mlkit:platform.seldonCore.acceptLicense: BSL-1.1" in found["seldon-core-licence"][0]


# --- levels ---------------------------------------------------------------------------------------


def test_levels_come_from_the_stack_and_default_to_mandatory():
    config = pack_config("aws", policy={"levels": {"no-floating-image-tags": "advisory"}})
    assert config["no-floating-image-tags"]["enforcementLevel"] == "advisory"
    assert {c["enforcementLevel"] for name, c in config.items() if name != "no-floating-image-tags"} == {"mandatory"}


def test_an_unknown_policy_in_the_stack_is_named():
    values = {**stack_values("aws"), "policy": {"levels": {"no-latest": "advisory"}}}
    with pytest.raises(StackConfigError) as caught:
        parse_stack(values, "aws", decrypted=True)
    [problem] = caught.value.problems
    assert "mlkit:policy.levels" in str(problem) and "unknown policy no-latest" in str(problem)

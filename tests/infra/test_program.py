"""The Pulumi program reads its stack through Pulumi's config, exactly as `pulumi up` hands it over."""

import json
import runpy

import pulumi
import pytest
from pulumi.runtime.config import set_all_config

from infra import program
from infra.clouds import plugin_of
from infra.stack import REPO_ROOT
from tests.infra.pulumi_mocks import SECRET_SIG, Recorder, unsecret
from tests.infra.test_schema import stack_values


def decrypted(value):
    """What the engine hands the program for a stack file's values: secrets already decrypted."""
    if isinstance(value, dict):
        return (
            f"plaintext-of-{value['secure'][-8:]}"
            if set(value) == {"secure"}
            else {k: decrypted(v) for k, v in value.items()}
        )
    return [decrypted(v) for v in value] if isinstance(value, list) else value


def use_stack(name: str, provider_config: dict[str, str] | None = None, **overrides) -> Recorder:
    """Set Pulumi's runtime config as the engine does: strings, with objects JSON-encoded."""
    values = decrypted({**stack_values(name), **overrides})
    config = {f"mlkit:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    set_all_config({**config, **(provider_config or {})})
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="mlkit", stack=name, preview=False)
    return mocks


def built_outputs(stack: str, provider_config: dict[str, str] | None = None, mocks: list | None = None) -> dict:
    """Run the program's build for a stack under mocks, as main() does, and return its outputs, resolved."""
    recorder = use_stack(stack, provider_config)
    if mocks is not None:
        mocks.append(recorder)
    resolved: dict = {}

    @pulumi.runtime.test
    def run_program():
        raw = program.raw_config()
        config = program.load_config(raw)
        settings = program.provider_settings(raw, plugin_of(config.target))
        return pulumi.Output.from_input(program.build(config, settings)).apply(resolved.update)

    run_program()
    return resolved


@pytest.fixture(autouse=True)
def _reset_config():
    yield
    set_all_config({})


STORE_URIS = {
    "local": "s3://mlkit-local/",
    "aws": "s3://acme-mlkit-prod-eu-west-1/",
    "gcp": "gs://acme-mlkit-prod-europe-west4/",
    "azure": "abfss://platform@acmemlkitprod.dfs.core.windows.net/",
    "onprem": "s3://mlkit/",
}


@pytest.mark.parametrize("stack", ["local", "aws", "gcp", "azure", "onprem"])
def test_program_builds_each_stack_through_pulumi_config(stack):
    outputs = built_outputs(stack)
    assert outputs["target"] == stack_values(stack)["target"]["type"]
    assert outputs["objectStore"] == STORE_URIS[stack]
    assert outputs["components"]["seldon_core"] == "1.17.1"


def test_gpu_pools_reach_the_outputs_with_their_scaling_range():
    outputs = built_outputs("aws")
    gpu = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    assert outputs["nodePools"]["gpu-a10g"] == {
        "min": 0,
        "max": 4,
        "gpu": "a10g",
        "nodeSelector": {"mlkit.io/pool": "gpu-a10g"},
        "tolerations": [gpu],
    }
    assert outputs["nodePools"]["system"] == {
        "min": 2,
        "max": 6,
        "gpu": None,
        "nodeSelector": {"mlkit.io/pool": "system"},
        "tolerations": [],
    }
    assert outputs["gpu"] == {"hasGpuNodes": True, "devicePluginManaged": False}


@pytest.mark.parametrize(
    ("stack", "provider", "given", "expected"),
    [
        (
            "aws",
            "pulumi:providers:aws",
            {"aws:profile": "acme-prod", "aws:allowedAccountIds": '["111122223333"]'},
            # Providers take their non-string settings JSON-encoded: a list passed as a list arrives as this.
            {"profile": "acme-prod", "allowedAccountIds": '["111122223333"]'},
        ),
        (
            "azure",
            "pulumi:providers:azure-native",
            {"azure-native:subscriptionId": "00000000-0000-0000-0000-00000000beef", "azure-native:useOidc": "true"},
            {"subscriptionId": "00000000-0000-0000-0000-00000000beef", "useOidc": "true"},
        ),
        (
            "gcp",
            "pulumi:providers:gcp",
            {"gcp:impersonateServiceAccount": "deployer@p.iam"},
            {"impersonateServiceAccount": "deployer@p.iam"},
        ),
    ],
)
def test_the_stacks_provider_settings_reach_the_explicit_provider(stack, provider, given, expected):
    """An explicit provider reads no stack config: without this, resources land in whatever account is active."""
    recorded: list[Recorder] = []
    built_outputs(stack, given, recorded)
    inputs = recorded[0].one(provider).inputs
    assert {k: inputs.get(k) for k in expected} == expected


def test_a_bad_stack_fails_before_any_resource_with_the_key_path():
    use_stack("aws", nodePools=[{"name": "system", "machineType": "m6i.xlarge", "minSize": 3, "maxSize": 1}])
    with pytest.raises(pulumi.RunError) as caught:
        program.load_config(program.raw_config())
    message = str(caught.value)
    assert "stacks/Pulumi.aws.yaml (stack aws)" in message
    assert "mlkit:nodePools[0]: minSize (3) must not be greater than maxSize (1)" in message


@pulumi.runtime.test
def test_the_entry_point_runs_as_pulumi_runs_it():
    """`main: infra/` in Pulumi.yaml: Pulumi runs infra/__main__.py."""
    from pulumi.runtime.settings import get_root_resource

    use_stack("local")
    runpy.run_path(str(REPO_ROOT / "infra"), run_name="__main__")  # resources are registered as Pulumi runs it
    outputs = get_root_resource().outputs
    assert outputs["target"] == "kind"
    assert outputs["teams"] == ["churn"]


def test_pulumi_yaml_points_at_the_program_and_the_stacks():
    import yaml

    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "mlkit"
    assert project["main"] == "infra/"
    assert project["stackConfigDir"] == "stacks"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv/infra"}}


def test_provider_credentials_are_handed_over_as_secrets():
    """gcp:credentials is no secret to its SDK; the kit keeps it encrypted in the state all the same."""
    recorded: list[Recorder] = []
    given = {"gcp:credentials": '{"type": "service_account"}', "gcp:billingProject": "acme"}
    built_outputs("gcp", given, recorded)
    inputs = recorded[0].one("pulumi:providers:gcp").inputs
    assert inputs["billingProject"] == "acme"
    assert isinstance(inputs["credentials"], dict) and SECRET_SIG in inputs["credentials"]  # a secret, not text
    assert unsecret(inputs["credentials"]) == '{"type": "service_account"}'

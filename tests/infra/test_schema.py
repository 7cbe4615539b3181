"""What the schema decides: safe defaults, per-cloud facts, target switching, Pulumi's config format."""

import copy
import json

import pytest
import yaml

from infra import versions
from infra.stack import REPO_ROOT, StackConfigError, load_pulumi_config, load_stack_file, parse_stack


def stack_values(name: str) -> dict:
    """The `mlkit:` values of a shipped stack file, keys without the namespace."""
    document = yaml.safe_load((REPO_ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in document["config"].items() if k.startswith("mlkit:")}


def problems(values: dict, decrypted: bool = False) -> list[str]:
    with pytest.raises(StackConfigError) as caught:
        parse_stack(values, "test", decrypted=decrypted)
    return [str(p) for p in caught.value.problems]


def test_safe_defaults():
    config = parse_stack(
        {"target": {"type": "kind"}, "storage": {"bucket": "b-1"}, "images": {"registry": "r.example/mlkit"}},
        "test",
        decrypted=False,
    )
    assert config.storage.encryption and config.storage.block_public_access and config.storage.versioning
    assert not config.storage.force_destroy
    assert config.platform.seldon_core.version == versions.SELDON_CORE == "1.17.1"
    assert config.kubernetes.version == versions.KUBERNETES


def test_the_kits_mlflow_image_needs_a_registry_named_in_config():
    values = {"target": {"type": "kind"}, "storage": {"bucket": "b-1"}}
    assert problems(values) == [
        "mlkit:images.registry: is required while platform.mlflow is enabled: the tracking server runs the kit's "
        "MLflow image (workloads/mlflow/Dockerfile); build and push it with `make images REGISTRY=<registry>`"
    ]
    config = parse_stack({**values, "platform": {"mlflow": {"enabled": False}}}, "test", decrypted=False)
    assert config.images.registry is None


def test_gpu_pools_start_at_zero_and_cpu_pools_at_one():
    aws = load_stack_file("aws")
    pools = {p.name: p for p in aws.node_pools}
    assert pools["gpu-a10g"].min_size == 0 and pools["gpu-a10g"].gpu.type == "a10g"
    values = stack_values("aws")
    values["nodePools"].append({"name": "extra", "machineType": "m6i.large", "maxSize": 3})
    config = parse_stack(values, "test", decrypted=False)
    assert config.node_pools[-1].min_size == 1


@pytest.mark.parametrize(
    ("target", "machine_type", "gpu"),
    [
        ("aws", "p5.48xlarge", "h100"),
        ("gcp", "a2-ultragpu-1g", "a100-80gb"),
        ("azure", "Standard_NC24ads_A100_v4", "a100"),
    ],
)
def test_gpu_type_must_match_the_machine_type_on_each_cloud(target, machine_type, gpu):
    values = stack_values(target)
    values["nodePools"][-1] = {**values["nodePools"][-1], "machineType": machine_type, "gpu": {"type": gpu}}
    assert parse_stack(values, "test", decrypted=False).node_pools[-1].gpu.type == gpu
    values["nodePools"][-1]["gpu"] = {"type": "t4" if gpu != "t4" else "l4"}
    assert any("does not carry" in p or "is not offered" in p for p in problems(values))


def test_kind_has_no_gpu_nodes():
    values = stack_values("local")
    values["nodePools"].append({"name": "gpu", "maxSize": 1, "gpu": {"type": "t4"}})
    assert "mlkit:nodePools[1].gpu: this target has no GPU nodes; remove gpu from this pool" in problems(values)


def test_changing_target_is_a_config_change_only():
    """The same node pools, storage and teams move from AWS to another target by swapping the target block."""
    values = stack_values("aws")
    values["target"] = stack_values("gcp")["target"]
    values["nodePools"] = stack_values("gcp")["nodePools"]
    values["teams"] = [{**t, "groups": [f"{g}@acme.example" for g in t["groups"]]} for t in values["teams"]]
    config = parse_stack(values, "test", decrypted=False)
    assert config.target.type == "gcp" and config.target.project == "acme-ml-platform"
    assert [t.name for t in config.teams] == ["churn", "fraud"]


def test_a_target_block_of_the_old_shape_says_how_to_migrate():
    values = stack_values("aws")
    block = values.pop("target")
    values.update(target="aws", aws={k: v for k, v in block.items() if k != "type"})
    assert problems(values) == [
        "mlkit:target: is now the target's whole block, not its name: move the keys of `mlkit:aws` under "
        "`mlkit:target` beside `type: aws`, e.g. `mlkit:target: {type: aws, ...}`, and delete `mlkit:aws`"
    ]
    del values["target"]
    assert problems(values)[0].startswith("mlkit:aws: is a target block in the old shape")


def test_pulumi_runtime_config_gives_the_same_result_as_the_stack_file():
    """Pulumi hands the program strings, with objects and lists JSON-encoded."""
    for name in ("local", "aws", "gcp", "azure"):
        encoded = {f"mlkit:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in stack_values(name).items()}
        encoded["aws:region"] = "eu-west-1"  # other namespaces are not ours
        assert load_pulumi_config(encoded, name) == load_stack_file(name)


def test_secrets_arrive_decrypted_under_pulumi_but_must_be_ciphertext_in_files():
    values = stack_values("onprem")
    decrypted = copy.deepcopy(values)
    decrypted["target"]["objectStore"]["secretAccessKey"] = "s3cr3t"
    config = parse_stack(decrypted, "test", decrypted=True)
    assert config.target.object_store.secret_access_key == "s3cr3t"
    assert any("secrets may not be written in plain text" in p for p in problems(decrypted))
    assert load_stack_file("onprem").target.object_store.secret_access_key.secure.startswith("v1:")


def test_seldon_newer_than_apache_release_needs_the_licence_flag():
    values = stack_values("local")
    values["platform"] = {"seldonCore": {"version": "1.18.2"}}
    assert any("Business Source License 1.1" in p for p in problems(values))
    values["platform"] = {"seldonCore": {"version": "1.18.2", "acceptLicense": "BSL-1.1"}}
    assert parse_stack(values, "test", decrypted=False).platform.seldon_core.version == "1.18.2"
    values["platform"] = {"seldonCore": {"version": "1.18.2", "enabled": False}}
    assert not parse_stack(values, "test", decrypted=False).platform.seldon_core.enabled


def test_overlapping_gcp_ranges_are_rejected():
    values = stack_values("gcp")
    values["target"]["podsCidr"] = "10.0.0.0/14"
    assert any("network ranges overlap" in p for p in problems(values))


def test_json_schema_names_every_top_level_key_and_every_target():
    from infra.stack import stack_model

    schema = stack_model().model_json_schema(by_alias=True)
    assert {"target", "nodePools", "storage", "platform", "teams", "charts", "images"} <= set(schema["properties"])
    assert schema["required"] == ["target", "storage"]
    assert set(schema["properties"]["target"]["discriminator"]["mapping"]) == {
        "aws",
        "gcp",
        "azure",
        "kind",
        "existing",
    }


def test_provider_secrets_cover_what_the_provider_sdks_mark_secret():
    """Each credential a provider SDK wraps in Output.secret must be refused in plain text in a stack file."""
    import importlib.util
    import re
    from pathlib import Path

    from infra.stack import OTHER_NAMESPACES, PROVIDER_SECRETS

    not_credentials = {"azure-native:clientid"}  # an application id; its SDK marks it secret all the same
    marked = set()
    for namespace in OTHER_NAMESPACES - {"pulumi"}:
        spec = importlib.util.find_spec(f"pulumi_{namespace.replace('-', '_')}")
        if spec is None:
            continue  # a provider this environment does not install
        provider = Path(spec.origin).parent / "provider.py"
        for name in re.findall(r'__props__.__dict__\["(\w+)"\] = .*pulumi\.Output\.secret\(', provider.read_text()):
            marked.add(f"{namespace}:{name.replace('_', '')}")
    assert {"aws:secretkey", "gcp:accesstoken", "azure-native:clientsecret"} <= marked  # the parse found them
    assert marked - not_credentials <= PROVIDER_SECRETS

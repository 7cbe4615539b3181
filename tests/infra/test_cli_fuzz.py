"""Random and malformed stack files never make a stack trace escape `mlkit validate`."""

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.infra.helpers import run_cli
from tests.infra.test_schema import stack_values

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=30)
keys = st.sampled_from(
    ["target", "nodePools", "storage", "name", "minSize", "gpu", "type", "bucket", "teams", "aws"]
) | st.text(max_size=12)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25
)


def validate_text(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Pulumi.fuzz.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        result = run_cli("validate", str(path))
    assert result.exception is None, f"{result.exception!r} escaped for input:\n{text!r}\n{result.output}"
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output


@SETTINGS
@given(documents)
def test_random_documents(document):
    validate_text(
        yaml.safe_dump(
            {"config": {"mlkit:" + k if isinstance(k, str) else k: v for k, v in document.items()}}
            if isinstance(document, dict)
            else document
        )
    )


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_bytes_and_text(raw):
    validate_text(raw)


@SETTINGS
@given(st.sampled_from(["local", "aws", "gcp", "azure", "onprem"]), st.data())
def test_mutated_valid_stacks(stack, data):
    """Take a valid stack, then replace, delete or add one value somewhere inside it."""
    values = stack_values(stack)
    node = values
    while True:
        keys_here = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys_here:
            break
        key = data.draw(st.sampled_from(keys_here))
        if not isinstance(node[key], dict | list) or data.draw(st.booleans()):
            break
        node = node[key]
    if keys_here:
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            node[key] = data.draw(documents)
        elif action == "delete":
            del node[key]
        elif isinstance(node, dict):
            node[data.draw(keys)] = data.draw(scalars)
    validate_text(yaml.safe_dump({"config": {f"mlkit:{k}": v for k, v in values.items()}}))

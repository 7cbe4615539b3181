"""Random and malformed stack files never make a stack trace escape `mlkit validate`."""

import json
import tempfile
import time
from pathlib import Path

import pytest
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


# Hostile files, each a one-line error within seconds (each once crashed, hung or flooded `mlkit validate`).
def _aliases(count: int) -> str:
    return "config:\n  mlkit:target: &a {x: 1}\n  mlkit:teams: [" + ", ".join(["*a"] * count) + "]\n"


def _billion_laughs() -> str:
    levels = "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
    return "config:\n  l0: &l0 [lol]\n" + levels + "  mlkit:target: *l9\n"


HOSTILE = {
    # PyYAML's pure-Python composer recursed once per level: RecursionError near 500.
    "flow-nested-500": (lambda: "config:\n  mlkit:target: " + "[" * 500 + "]" * 500, "nested deeper than 64 levels"),
    "block-nested-500": (
        lambda: "config:\n  mlkit:target:\n" + "".join(f"{'  ' * (i + 2)}k{i}:\n" for i in range(500)),
        "nested deeper than 64 levels",
    ),
    # int() refuses more than 4,300 digits (ValueError); a hex int converts, then fails when printed.
    "5000-digit-int": (lambda: "config:\n  mlkit:target: " + "7" * 5000, "an integer of 5,000 characters at line 2"),
    "5000-digit-hex": (lambda: "config:\n  mlkit:target: 0x" + "f" * 5000, "an integer of 5,002 characters"),
    "37mb-file": (
        lambda: "config:\n  mlkit:target: aws\n" + "  # padding\n" * 3_100_000,
        "the file is 37,200,028 bytes; a stack file may be at most 1,048,576 bytes",
    ),
    "200k-aliases": (lambda: _aliases(200_000), "holds more than 100,000 values once its aliases are expanded"),
    "billion-laughs": (_billion_laughs, "holds more than 100,000 values once its aliases are expanded"),
    "recursive-alias": (lambda: "config:\n  mlkit:target: &a [*a]", "alias *a refers to a node that contains it"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_is_a_one_line_error(tmp_path, name):
    text, message = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text())
    started = time.monotonic()
    result = run_cli("validate", str(path))
    elapsed = time.monotonic() - started
    assert result.exception is None, f"{result.exception!r} escaped"
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output[:2000]
    assert message in result.output, f"{message!r} not in:\n{result.output[:2000]}"
    assert result.output.count("\n") == 2, f"one problem line wanted:\n{result.output[:2000]}"
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_a_flood_of_problems_is_cut_at_fifty_with_a_count(tmp_path):
    path = tmp_path / "Pulumi.flood.yaml"
    path.write_text("config:\n  mlkit:target: {type: kind}\n  mlkit:teams: [" + ", ".join(["{x: 1}"] * 5000) + "]\n")
    result = run_cli("validate", str(path))
    assert result.exit_code == 1 and result.exception is None
    lines = result.output.splitlines()
    assert lines[0].endswith(": 10001 problem(s)")  # each team: name missing, x unknown; and storage missing
    assert len(lines) == 1 + 50 + 1 and lines[-1] == "  - +9951 more"

    data = json.loads(run_cli("validate", "--json", str(path)).output)[str(path)]
    assert data["count"] == 10001 and len(data["problems"]) == 51 and data["problems"][-1] == "+9951 more"


def test_the_c_loader_is_used_where_pyyaml_has_it():
    from infra.stack import _StrictLoader

    if not yaml.__with_libyaml__:
        return  # a PyYAML built without libyaml: the pure-Python loader, same limits
    assert issubclass(_StrictLoader, yaml.CSafeLoader)


def test_markup_in_a_file_name_is_printed_as_written(tmp_path):
    (tmp_path / "a[").mkdir()
    path = tmp_path / "a[" / "x].yaml"
    path.write_text("config:\n  mlkit:target: [bold]\n")
    result = run_cli("validate", str(path))
    assert result.exception is None, f"{result.exception!r} escaped"
    assert result.exit_code == 1 and f"invalid {path}: " in result.output


def test_an_unreadable_or_overlong_path_is_a_problem_not_a_traceback(tmp_path):
    result = run_cli("validate", str(tmp_path / ("x" * 300 + ".yaml")))
    assert result.exception is None and result.exit_code == 1, result.output
    assert "File name too long" in result.output or "no such stack file" in result.output

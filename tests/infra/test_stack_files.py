"""The five shipped stacks validate; every broken stack fails with the messages it declares."""

from pathlib import Path

import pytest

from infra.stack import StackConfigError, load_stack_file, stack_names
from tests.infra.helpers import assert_cli, run_cli

BROKEN = sorted((Path(__file__).parents[1] / "stacks" / "broken").glob("*.yaml"))
SHIPPED = {"local": "kind", "aws": "aws", "gcp": "gcp", "azure": "azure", "onprem": "existing", "sim": "existing"}


def expected_messages(path: Path) -> list[str]:
    return [line.removeprefix("# expect: ").rstrip("\n") for line in path.open() if line.startswith("# expect: ")]


def test_the_shipped_stacks_are_these():
    assert set(stack_names()) == set(SHIPPED)


@pytest.mark.parametrize(("stack", "target"), SHIPPED.items())
def test_shipped_stack_validates(stack, target):
    assert load_stack_file(stack).target.type == target


def test_validate_passes_on_every_shipped_stack():
    assert_cli(run_cli("validate"), 0, *(f"ok      {s} (target {t})" for s, t in SHIPPED.items()))


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_stack_is_rejected_with_its_messages(path):
    expected = expected_messages(path)
    assert expected, f"{path.name} declares no '# expect:' lines"
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(str(path))
    problems = [str(p) for p in caught.value.problems]
    for message in expected:
        assert any(message in p for p in problems), f"{message!r} not among:\n" + "\n".join(problems)
    assert len(problems) == len(expected), "problems the file does not declare:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_cli_names_the_file_and_each_problem(path):
    result = run_cli("validate", str(path))
    assert_cli(result, 1, f"invalid tests/stacks/broken/{path.name}", *expected_messages(path))
    assert "Traceback" not in result.output


def test_cli_reports_good_and_bad_stacks_together_and_fails():
    result = run_cli("validate", "aws", "tests/stacks/broken/min-above-max.yaml")
    assert_cli(result, 1, "ok      aws (target aws)", "minSize (5) must not be greater than maxSize (2)")


def test_unknown_stack_name_lists_the_known_ones():
    assert_cli(
        run_cli("validate", "prod"),
        1,
        "stacks/Pulumi.prod.yaml",
        "no such stack file (stacks here: aws, azure, gcp, local, onprem, sim)",
    )


def test_json_output_is_machine_readable():
    import json

    result = run_cli("validate", "--json", "local", "tests/stacks/broken/seldon-bsl.yaml")
    data = json.loads(result.output)
    assert data["local"] == {"ok": True, "target": "kind", "problems": []}
    assert data["tests/stacks/broken/seldon-bsl.yaml"]["ok"] is False
    assert "Business Source License 1.1" in data["tests/stacks/broken/seldon-bsl.yaml"]["problems"][0]


def test_key_names_are_printed_as_written_not_as_emoji(tmp_path):
    """Rich turns `:cd:` into a disc unless told not to; `mlkit:cd` is an unknown key, and must read as one."""
    path = tmp_path / "Pulumi.emoji.yaml"
    path.write_text("config:\n  mlkit:target: {type: kind}\n  mlkit:cd: 1\n  mlkit:smile: 2\n")
    result = run_cli("validate", str(path))
    assert_cli(result, 1, "mlkit:cd: unknown key", "mlkit:smile: unknown key")
    assert "\N{OPTICAL DISC}" not in result.output

"""Feature specs: the shipped ones load; a broken one fails naming the file and the key."""

from pathlib import Path

import pytest

from workloads.common.specs import SpecError, load_spec, parse_spec

SPECS = Path(__file__).resolve().parents[2] / "workloads" / "features" / "specs"
BASE = {"name": "t", "entity": {"key": "id"}, "columns": [{"name": "x", "type": "double", "transform": "standard"}]}


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_specs_load(path):
    assert load_spec(path).name == path.stem


def problems(document) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(document, "spec.yaml")
    return caught.value.problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"colums": []}, "colums: unknown key"),
        ({"entity": {}}, "entity.key: is required"),
        ({"name": "Bad Name"}, "name: String should match pattern"),
        (
            {"columns": [{"name": "x", "type": "float"}]},
            "columns[0].type: Input should be 'string', 'int', 'double' or 'boolean' (got 'float')",
        ),
        (
            {"columns": [{"name": "x", "type": "string", "transform": "standard"}]},
            "columns[0]: transform standard needs a numeric type (int or double), not string",
        ),
        (
            {"columns": [{"name": "x", "type": "double", "transform": "onehot"}]},
            "columns[0]: transform onehot needs type string or int, not double",
        ),
        (
            {"columns": [{"name": "x", "type": "int", "min": 5, "max": 1}]},
            "columns[0]: min (5.0) must not be greater than max (1.0)",
        ),
        (
            {"columns": [{"name": "x", "type": "int"}, {"name": "x", "type": "int"}]},
            "columns ['x'] appear more than once",
        ),
        ({"columns": [{"name": "id", "type": "string"}]}, "clash with the entity key"),
        (
            {"columns": [{"name": "x", "type": "double", "missing": {"fill": 0}}]},
            "columns[0].missing.reason: is required",
        ),
        ({"source": {"format": "parquet", "multiline": True}}, "source: multiline applies to csv sources only"),
        (
            {"source": {"options": {"header": "true", "multiLine": "true"}}},
            "source: set `multiline: true` on the source instead of options.multiLine",
        ),
    ],
)
def test_a_broken_spec_names_the_key(change, expected):
    found = problems({**BASE, **change})
    assert any(expected in p for p in found), found


def test_an_unreadable_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)


def test_the_blank_total_charges_rule_is_documented_in_the_spec():
    spec = load_spec(SPECS / "customer_features.yaml")
    total = next(c for c in spec.columns if c.name == "TotalCharges")
    assert total.missing.fill == 0.0 and "tenure 0" in total.missing.reason


def test_multiline_is_a_source_option_that_reaches_spark():
    """Quoted CSV fields holding line breaks: off by default (each file is then read by one task)."""
    spec = parse_spec({**BASE, "source": {"format": "csv", "multiline": True}}, "spec.yaml")
    assert spec.source.spark_options == {"header": "true", "multiLine": "true"}
    assert parse_spec(BASE, "spec.yaml").source.spark_options == {"header": "true"}

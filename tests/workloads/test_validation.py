"""The spec's rules, as the feature job and serving both apply them."""

import math

import numpy as np
import pandas as pd
import pytest

from workloads.common.specs import parse_spec
from workloads.common.validation import validate_frame

SPEC = parse_spec(
    {
        "name": "t",
        "entity": {"key": "id"},
        "columns": [
            {"name": "plan", "type": "string", "allowed": ["basic", "pro"], "transform": "onehot"},
            {"name": "age", "type": "int", "min": 18, "max": 120, "transform": "standard"},
            {
                "name": "spend",
                "type": "double",
                "min": 0,
                "missing": {"fill": 0.0, "reason": "no bill yet"},
                "transform": "minmax",
            },
            {"name": "active", "type": "boolean", "true_values": ["Yes"], "false_values": ["No"]},
            {"name": "note", "type": "string", "required": False},
        ],
    },
    "test",
)


def check(**row) -> list[str]:
    _typed, reasons = validate_frame(
        SPEC, pd.DataFrame([{"id": "c1", "plan": "pro", "age": "30", "spend": "9.5", "active": "Yes", **row}])
    )
    return reasons.iloc[0]


def test_a_good_row_is_typed():
    typed, reasons = validate_frame(
        SPEC, pd.DataFrame([{"id": " c1 ", "plan": "pro", "age": "30", "spend": "9.5", "active": "No"}])
    )
    assert reasons.iloc[0] == []
    row = typed.iloc[0]
    assert (row["id"], row["plan"], row["age"], row["spend"], row["active"]) == ("c1", "pro", 30, 9.5, False)
    assert pd.isna(row["note"])  # optional and absent


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("id", "  ", "id: required value is missing"),
        ("plan", "gold", "plan: 'gold' is not one of ['basic', 'pro']"),
        ("age", "thirty", "age: 'thirty' is not an integer"),
        ("age", "30.5", "age: '30.5' is not an integer"),
        ("age", "12", "age: 12 is below the minimum 18"),
        ("age", "200", "age: 200 is above the maximum 120"),
        ("age", None, "age: required value is missing"),
        ("spend", "lots", "spend: 'lots' is not a number"),
        ("spend", "inf", "spend: 'inf' is not a number"),
        ("spend", "-1", "spend: -1 is below the minimum 0"),
        ("active", "maybe", "active: 'maybe' is not a boolean (Yes/No)"),
    ],
)
def test_each_rule_names_the_field_and_the_value(field, value, reason):
    assert check(**{field: value}) == [reason]


def test_every_problem_of_a_row_is_reported():
    assert check(plan="gold", age="x", active="?") == [
        "plan: 'gold' is not one of ['basic', 'pro']",
        "age: 'x' is not an integer",
        "active: '?' is not a boolean (Yes/No)",
    ]


def test_a_blank_with_a_fill_rule_takes_the_fill():
    typed, reasons = validate_frame(
        SPEC, pd.DataFrame([{"id": "c1", "plan": "pro", "age": "30", "spend": " ", "active": "Yes"}])
    )
    assert reasons.iloc[0] == [] and typed.iloc[0]["spend"] == 0.0


def test_json_values_validate_like_their_text():
    """Serving hands over parsed JSON (numbers, booleans); the same rules apply."""
    typed, reasons = validate_frame(
        SPEC, pd.DataFrame([{"id": "c1", "plan": "pro", "age": 30.0, "spend": 12, "active": "Yes"}])
    )
    assert reasons.iloc[0] == [] and typed.iloc[0]["age"] == 30 and math.isclose(typed.iloc[0]["spend"], 12.0)
    assert check(age=True) == ["age: 'true' is not an integer"]


def test_an_absent_column_counts_as_missing():
    _typed, reasons = validate_frame(SPEC, pd.DataFrame([{"id": "c1", "plan": "pro", "spend": "1", "active": "Yes"}]))
    assert reasons.iloc[0] == ["age: required value is missing"]


def test_rows_are_judged_independently():
    frame = pd.DataFrame(
        [
            {"id": "a", "plan": "pro", "age": "30", "spend": "1", "active": "Yes"},
            {"id": "b", "plan": "x", "age": "30", "spend": "1", "active": "Yes"},
        ]
        * 50
    )
    _typed, reasons = validate_frame(SPEC, frame)
    assert [bool(r) for r in reasons] == [False, True] * 50


def test_nan_and_none_are_blank_and_numpy_scalars_are_plain_values():
    assert check(age=float("nan")) == ["age: required value is missing"]
    assert check(spend=None) == []  # the fill rule
    assert check(active=np.bool_(True), age=np.int64(40)) == []
    assert check(age=np.float64(40.5)) == ["age: '40.5' is not an integer"]


def test_a_batch_is_judged_as_its_rows_are_one_at_a_time():
    """Serving validates one row per request, the feature job whole partitions: the outcome must not differ."""
    values = {
        "plan": ["pro", "gold", None, " basic "],
        "age": ["30", 44.0, "x", None, "18", 120.5, True],
        "spend": ["", "-3", "7.25", "1e3", "nan"],
        "active": ["Yes", "no", "maybe", False],
    }
    rows = [
        {"id": f"c{i}", **{k: v[(i * (j + 1)) % len(v)] for j, (k, v) in enumerate(values.items())}} for i in range(40)
    ]
    batch_typed, batch_reasons = validate_frame(SPEC, pd.DataFrame(rows))
    assert 0 < sum(map(bool, batch_reasons)) < len(rows)  # both outcomes are exercised
    for i, row in enumerate(rows):
        typed, reasons = validate_frame(SPEC, pd.DataFrame([row]))
        assert reasons.iloc[0] == batch_reasons.iloc[i], row
        pd.testing.assert_frame_equal(typed.reset_index(drop=True), batch_typed.iloc[[i]].reset_index(drop=True))

"""The fitted transformation: fit, apply, round-trip through JSON, and refuse unknown categories."""

import numpy as np
import pandas as pd
import pytest

from tests.workloads.test_validation import SPEC
from workloads.common.transform import FittedTransform, UnknownCategory
from workloads.common.validation import validate_frame

STATS = {
    "age": {"mean": 40.0, "std": 10.0, "min": 18, "max": 90},
    "spend": {"mean": 5.0, "std": 2.0, "min": 0.0, "max": 20.0},
}


def typed(*rows):
    frame, reasons = validate_frame(SPEC, pd.DataFrame(list(rows)))
    assert all(r == [] for r in reasons)
    return frame


def test_feature_names_follow_the_spec_order():
    transform = FittedTransform.fit(SPEC, STATS)
    # 'note' is text with no encoding: stored in the table, left out of the vector
    assert transform.feature_names == ["plan=basic", "plan=pro", "age", "spend", "active"]


def test_apply_scales_encodes_and_passes_through():
    transform = FittedTransform.fit(SPEC, {**STATS})
    matrix = transform.apply(
        typed({"id": "a", "plan": "pro", "age": "50", "spend": "10", "active": "Yes", "note": "x"})
    )
    # onehot 'pro', standard (50-40)/10, minmax (10-0)/20, boolean as 1.0
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(matrix[0], [0, 1, 1.0, 0.5, 1.0])


def test_round_trip_through_json_gives_identical_vectors():
    transform = FittedTransform.fit(SPEC, STATS)
    again = FittedTransform.from_json(transform.to_json())
    frame = typed({"id": "a", "plan": "basic", "age": "18", "spend": "0", "active": "No"})
    assert again == transform
    np.testing.assert_array_equal(again.apply(frame), transform.apply(frame))


def test_unknown_category_is_refused_with_the_column():
    transform = FittedTransform.fit(SPEC, STATS)
    frame = pd.DataFrame([{"plan": "enterprise", "age": 30, "spend": 1.0, "active": True, "note": None}])
    with pytest.raises(
        UnknownCategory, match="plan: 'enterprise' is not a known category; expected one of \\['basic', 'pro'\\]"
    ):
        transform.apply(frame)
    _, problems = transform.apply_with_reasons(frame)
    assert [p.column for p in problems[0]] == ["plan"]


def test_categories_are_fitted_when_the_spec_lists_none():
    from workloads.common.specs import parse_spec

    spec = parse_spec(
        {"name": "t", "entity": {"key": "id"}, "columns": [{"name": "city", "type": "string", "transform": "onehot"}]},
        "t",
    )
    transform = FittedTransform.fit(spec, {"city": {"categories": ["Oslo", "Bergen"]}})
    assert transform.feature_names == ["city=Bergen", "city=Oslo"]


def test_zero_variance_does_not_divide_by_zero():
    transform = FittedTransform.fit(
        SPEC,
        {
            "age": {"mean": 30.0, "std": 0.0, "min": 30, "max": 30},
            "spend": {"mean": 0, "std": None, "min": 0, "max": 0},
        },
    )
    matrix = transform.apply(typed({"id": "a", "plan": "pro", "age": "30", "spend": "0", "active": "Yes"}))
    assert np.isfinite(matrix).all()


def test_unsupported_format_is_refused():
    with pytest.raises(ValueError, match="transformation format 99 is not supported"):
        FittedTransform.from_json('{"format": 99, "table": "t", "columns": []}')

"""Validate raw records against a feature spec.

The one implementation of the spec's rules: the feature job runs it inside Spark (mapInPandas),
and serving runs it on request bodies, so both accept and reject exactly the same values.
Every rejected row gets its reasons, each naming the column and the value.

Columns are handled as numpy object arrays rather than pandas Series: a serving request is one
row, where pandas' per-operation overhead (about 1.5 ms a column) dwarfed the work itself.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workloads.common.specs import ColumnSpec, FeatureSpec


def validate_frame(spec: FeatureSpec, raw: pd.DataFrame, *, require_key: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Typed values and per-row reasons (an empty list: the row is accepted).

    ``raw`` holds strings or plain Python values; a column it lacks counts as blank.
    Typed columns: int -> Int64, double -> float64, boolean -> boolean, string -> object (None if blank).
    ``require_key=False`` lets the entity key be absent (a prediction request need not carry one).
    """
    reasons = _Reasons(len(raw))
    typed: dict[str, object] = {}

    key = _text(raw, spec.entity.key)
    if require_key:
        reasons.add(_blank(key), f"{spec.entity.key}: required value is missing")
    typed[spec.entity.key] = key

    if spec.event_time.column:
        column = spec.event_time.column
        text = _text(raw, column)
        parsed = pd.DatetimeIndex(pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601"))
        blank = _blank(text)
        reasons.add(blank, f"{column}: required value is missing")
        reasons.add(~blank & parsed.isna(), f"{column}: {{!r}} is not an ISO 8601 time", text)
        typed["event_time"] = parsed.array

    for column in spec.columns:
        typed[column.name] = _validate_column(column, _text(raw, column.name), reasons)

    return pd.DataFrame(typed, index=raw.index), pd.Series(reasons.rows, index=raw.index, dtype=object)


def _validate_column(column: ColumnSpec, text: np.ndarray, reasons: _Reasons):
    name = column.name
    blank = _blank(text)
    if column.missing is not None:
        text = np.where(blank, str(column.missing.fill), text)
        blank = np.zeros(len(text), dtype=bool)
    elif column.required:
        reasons.add(blank, f"{name}: required value is missing")
    present = ~blank

    if column.type == "string":
        values = text
        ok = present
    elif column.type == "boolean":
        # The spec's words, plus true/false: what JSON booleans (and typed table values) become as text.
        truthy_words = {v.lower() for v in column.true_values} | {"true"}
        falsy_words = {v.lower() for v in column.false_values} | {"false"}
        lowered = [t.lower() if t is not None else None for t in text]
        truthy = np.array([t in truthy_words for t in lowered], dtype=bool)
        falsy = np.array([t in falsy_words for t in lowered], dtype=bool)
        expected = "/".join(column.true_values + column.false_values)
        reasons.add(present & ~truthy & ~falsy, f"{name}: {{!r}} is not a boolean ({expected})", text)
        values = pd.arrays.BooleanArray(truthy, ~(truthy | falsy))
        ok = truthy | falsy
    else:
        parsed = pd.to_numeric(text, errors="coerce")
        numbers = np.asarray(parsed, dtype=np.float64)
        bad = present & ~np.isfinite(numbers)
        if column.type == "int":
            finite = np.isfinite(numbers)
            bad |= finite & (numbers != np.round(numbers))
            ok = present & ~bad
            exact = parsed.astype(np.int64) if parsed.dtype.kind in "iu" else np.round(np.nan_to_num(numbers))
            values = pd.arrays.IntegerArray(np.where(ok, exact, 0).astype(np.int64), ~ok)
            reasons.add(bad, f"{name}: {{!r}} is not an integer", text)
        else:
            ok = present & ~bad
            values = np.where(ok, numbers, np.nan)
            reasons.add(bad, f"{name}: {{!r}} is not a number", text)
        if column.min is not None:
            reasons.add(ok & (numbers < column.min), f"{name}: {{}} is below the minimum {column.min:g}", text)
        if column.max is not None:
            reasons.add(ok & (numbers > column.max), f"{name}: {{}} is above the maximum {column.max:g}", text)

    if column.allowed is not None:
        allowed = {str(v) for v in column.allowed}
        outside = np.array([t not in allowed for t in text], dtype=bool) & present
        if column.type != "string":
            outside &= ok  # a value of the wrong type already has its reason
        reasons.add(outside, f"{name}: {{!r}} is not one of {list(column.allowed)}", text)
    return values


class _Reasons:
    """Per row, the reasons it is rejected, in the order the checks ran."""

    def __init__(self, n: int):
        self.rows: list[list[str]] = [[] for _ in range(n)]

    def add(self, mask: np.ndarray, message: str, values: np.ndarray | None = None) -> None:
        for i in np.flatnonzero(mask):
            self.rows[i].append(message.format(values[i]) if values is not None else message)


def _text(raw: pd.DataFrame, column: str) -> np.ndarray:
    """The column as stripped strings (object array), with blanks as None; a missing column is all blank."""
    if column not in raw.columns:
        return np.full(len(raw), None, dtype=object)
    out = np.empty(len(raw), dtype=object)
    out[:] = [_to_text(v) for v in raw[column].to_numpy(dtype=object)]
    return out


def _to_text(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float):  # numpy's float64 too
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value)) if abs(value) < 2**53 else repr(value)
    return str(value).strip() or None


def _blank(text: np.ndarray) -> np.ndarray:
    return np.array([t is None for t in text], dtype=bool)

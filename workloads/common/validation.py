"""Validate raw records against a feature spec, vectorised with pandas.

The one implementation of the spec's rules: the feature job runs it inside Spark (mapInPandas),
and serving runs it on request bodies, so both accept and reject exactly the same values.
Every rejected row gets its reasons, each naming the column and the value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workloads.common.specs import ColumnSpec, FeatureSpec


def validate_frame(spec: FeatureSpec, raw: pd.DataFrame, *, require_key: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Typed values and per-row reasons (an empty list: the row is accepted).

    ``raw`` holds strings or plain Python values; a column it lacks counts as blank.
    Typed columns: int -> Int64, double -> float64, boolean -> boolean, string -> object.
    ``require_key=False`` lets the entity key be absent (a prediction request need not carry one).
    """
    n = len(raw)
    typed = pd.DataFrame(index=raw.index)
    messages: list[pd.Series] = []

    key_text = _text(raw, spec.entity.key)
    if require_key:
        messages.append(_where(key_text.isna(), f"{spec.entity.key}: required value is missing", n, raw.index))
    typed[spec.entity.key] = key_text.astype(object)

    if spec.event_time.column:
        column = spec.event_time.column
        text = _text(raw, column)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        messages.append(_where(text.isna(), f"{column}: required value is missing", n, raw.index))
        messages.append(_values(text.notna() & parsed.isna(), text, f"{column}: {{!r}} is not an ISO 8601 time"))
        typed["event_time"] = parsed

    for column in spec.columns:
        values, column_messages = _validate_column(column, _text(raw, column.name), raw.index)
        typed[column.name] = values
        messages.extend(column_messages)

    return typed, _collect(messages, raw.index)


def _validate_column(column: ColumnSpec, text: pd.Series, index: pd.Index) -> tuple[pd.Series, list[pd.Series]]:
    name = column.name
    blank = text.isna()
    messages = []
    if column.missing is not None:
        text = text.where(~blank, str(column.missing.fill))
    elif column.required:
        messages.append(_where(blank, f"{name}: required value is missing", len(text), index))
    present = text.notna()

    if column.type == "string":
        values = text.astype(object)
    elif column.type == "boolean":
        # The spec's words, plus true/false: what JSON booleans (and typed table values) become as text.
        lowered = text.str.lower()
        truthy = lowered.isin([v.lower() for v in column.true_values] + ["true"])
        falsy = lowered.isin([v.lower() for v in column.false_values] + ["false"])
        values = pd.Series(pd.NA, index=index, dtype="boolean").mask(truthy, True).mask(falsy, False)
        expected = "/".join(column.true_values + column.false_values)
        messages.append(_values(present & ~truthy & ~falsy, text, f"{name}: {{!r}} is not a boolean ({expected})"))
    else:
        numbers = pd.to_numeric(text, errors="coerce")
        bad = present & numbers.isna()
        if column.type == "int":
            fractional = numbers.notna() & (numbers % 1 != 0)
            bad = bad | fractional
            values = numbers.where(~bad).round().astype("Int64")
        else:
            bad = bad | (numbers.notna() & ~np.isfinite(numbers))
            values = numbers.where(~bad).astype("float64")
        messages.append(
            _values(bad, text, f"{name}: {{!r}} is not {'an integer' if column.type == 'int' else 'a number'}")
        )
        ok = present & ~bad
        if column.min is not None:
            messages.append(
                _values(ok & (numbers < column.min), text, f"{name}: {{}} is below the minimum {column.min:g}")
            )
        if column.max is not None:
            messages.append(
                _values(ok & (numbers > column.max), text, f"{name}: {{}} is above the maximum {column.max:g}")
            )

    if column.allowed is not None:
        allowed = {str(v) for v in column.allowed}
        outside = present & ~text.isin(allowed)
        if column.type in ("int", "double"):
            outside = outside & values.notna()
        messages.append(_values(outside, text, f"{name}: {{!r}} is not one of {list(column.allowed)}"))
    return values, messages


def _text(raw: pd.DataFrame, column: str) -> pd.Series:
    """The column as stripped strings, with blanks as NA; a missing column is all blank."""
    if column not in raw.columns:
        return pd.Series(pd.NA, index=raw.index, dtype="string")
    series = raw[column]
    text = series.map(_to_text, na_action="ignore").astype("string").str.strip()
    return text.mask(text == "")


def _to_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 2**53 else repr(value)
    return str(value)


def _where(mask: pd.Series, message: str, n: int, index: pd.Index) -> pd.Series:
    return pd.Series(np.where(mask.to_numpy(dtype=bool, na_value=False), message, None), index=index, dtype=object)


def _values(mask: pd.Series, text: pd.Series, template: str) -> pd.Series:
    """A message per masked row, with that row's value put into the template."""
    mask = mask.fillna(False).astype(bool)
    out = pd.Series(None, index=text.index, dtype=object)
    if mask.any():
        out[mask] = [template.format(v) for v in text[mask]]
    return out


def _collect(messages: list[pd.Series], index: pd.Index) -> pd.Series:
    reasons: list[list[str]] = [[] for _ in range(len(index))]
    if messages:
        table = pd.concat(messages, axis=1)
        positions = np.flatnonzero(table.notna().any(axis=1).to_numpy())
        for position, row in zip(positions, table.iloc[positions].itertuples(index=False), strict=True):
            reasons[position] = [m for m in row if isinstance(m, str)]  # concat turns None into NaN
    return pd.Series(reasons, index=index, dtype=object)

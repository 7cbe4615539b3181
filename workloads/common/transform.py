"""The fitted feature transformation: categories, means and scales, fitted once and stored with the table.

The feature job fits it, writes it into every Hudi commit's metadata, and applies it; training
reads the transformed vectors; serving loads the same parameters for the model's table instant
and applies them through this same code. One implementation, so the three cannot drift apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from workloads.common.specs import FeatureSpec

FORMAT_VERSION = 1


class UnknownCategory(ValueError):
    """A value the fitted transformation has no category for."""

    def __init__(self, column: str, value: object, categories: list):
        self.column = column
        self.value = value
        super().__init__(f"{column}: {value!r} is not a known category; expected one of {categories}")


@dataclass(frozen=True)
class ColumnTransform:
    name: str
    kind: str  # onehot, ordinal, standard, minmax, none
    categories: tuple | None = None
    center: float = 0.0
    scale: float = 1.0

    @property
    def output_names(self) -> list[str]:
        if self.kind == "onehot":
            return [f"{self.name}={c}" for c in self.categories]
        return [self.name]


@dataclass(frozen=True)
class FittedTransform:
    table: str
    columns: tuple[ColumnTransform, ...]

    @property
    def feature_names(self) -> list[str]:
        return [name for c in self.columns for name in c.output_names]

    @classmethod
    def fit(cls, spec: FeatureSpec, stats: dict[str, dict]) -> FittedTransform:
        """Build from per-column statistics: mean/std/min/max for numbers, categories when the spec lists none."""
        columns = []
        for column in spec.columns:
            if column.type == "string" and column.transform == "none":
                continue  # stored in the table, but text has no place in the vector
            s = stats.get(column.name, {})
            if column.transform in ("onehot", "ordinal"):
                categories = tuple(column.allowed) if column.allowed is not None else tuple(sorted(s["categories"]))
                columns.append(ColumnTransform(column.name, column.transform, categories=categories))
            elif column.transform == "standard":
                columns.append(ColumnTransform(column.name, "standard", center=s["mean"], scale=_nonzero(s["std"])))
            elif column.transform == "minmax":
                columns.append(
                    ColumnTransform(column.name, "minmax", center=s["min"], scale=_nonzero(s["max"] - s["min"]))
                )
            else:
                columns.append(ColumnTransform(column.name, "none"))
        return cls(spec.name, tuple(columns))

    def apply(self, typed: pd.DataFrame) -> np.ndarray:
        """Feature matrix (float32, one row per record). Raises UnknownCategory for an unseen category."""
        matrix, reasons = self.apply_with_reasons(typed)
        for row in reasons:
            if row:
                raise row[0]
        return matrix

    def apply_with_reasons(self, typed: pd.DataFrame) -> tuple[np.ndarray, list[list[UnknownCategory]]]:
        """Feature matrix, and per row the unknown categories that made it unusable (rows left at zero)."""
        n = len(typed)
        blocks = []
        problems: list[list[UnknownCategory]] = [[] for _ in range(n)]
        for column in self.columns:
            values = typed[column.name]
            missing = values.isna().to_numpy()
            if column.kind in ("onehot", "ordinal"):
                lookup = {str(c): i for i, c in enumerate(column.categories)}
                codes = np.array([-1 if m else lookup.get(str(v), -2) for v, m in zip(values, missing, strict=True)])
                for i in np.flatnonzero(codes == -2):
                    problems[i].append(UnknownCategory(column.name, values.iloc[i], list(column.categories)))
                if column.kind == "onehot":
                    block = np.zeros((n, len(column.categories)), dtype=np.float32)
                    known = codes >= 0
                    block[np.flatnonzero(known), codes[known]] = 1.0
                else:
                    block = np.where(codes >= 0, codes, 0).astype(np.float32)[:, None]
            else:
                # Missing optional numbers become the centre (mean-imputed for standard scaling).
                numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
                numbers = np.where(np.isnan(numbers), column.center, numbers)
                block = ((numbers - column.center) / column.scale).astype(np.float32)[:, None]
            blocks.append(block)
        matrix = np.hstack(blocks) if blocks else np.zeros((n, 0), dtype=np.float32)
        return matrix, problems

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT_VERSION, "table": self.table, "columns": [asdict(c) for c in self.columns]})

    @classmethod
    def from_json(cls, text: str) -> FittedTransform:
        data = json.loads(text)
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"transformation format {data.get('format')!r} is not supported (expected {FORMAT_VERSION})"
            )
        columns = tuple(
            ColumnTransform(
                c["name"],
                c["kind"],
                tuple(c["categories"]) if c["categories"] is not None else None,
                c["center"],
                c["scale"],
            )
            for c in data["columns"]
        )
        return cls(data["table"], columns)


def _nonzero(value: float | None) -> float:
    return 1.0 if value is None or not math.isfinite(value) or value == 0 else float(value)

"""Feature specs: one YAML file per feature table, so a team adds a table by writing a spec, not Spark code.

A spec names the entity key, where the event time comes from, the source format, and each
column's type, validation rules and transformation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from workloads.common.models import Strict, problems

Transform = Literal["onehot", "ordinal", "standard", "minmax", "none"]
ColumnType = Literal["string", "int", "double", "boolean"]


class Fill(Strict):
    """What a blank value means for this column, and why (the reason is part of the spec's record)."""

    fill: str | int | float | bool
    reason: str = Field(min_length=1)


class ColumnSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: ColumnType
    required: bool = True
    allowed: list[str | int] | None = Field(
        None, description="the only values accepted; for onehot/ordinal, the categories in order"
    )
    min: float | None = None
    max: float | None = None
    true_values: list[str] = Field(default_factory=lambda: ["true", "yes", "1"])
    false_values: list[str] = Field(default_factory=lambda: ["false", "no", "0"])
    missing: Fill | None = Field(None, description="fill blank values instead of rejecting the row")
    transform: Transform = Field(
        "none", description="none: numbers and booleans as they are; strings stay out of the vector"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        numeric = self.type in ("int", "double")
        if self.transform in ("standard", "minmax") and not numeric:
            raise ValueError(f"transform {self.transform} needs a numeric type (int or double), not {self.type}")
        if self.transform in ("onehot", "ordinal") and self.type not in ("string", "int"):
            raise ValueError(f"transform {self.transform} needs type string or int, not {self.type}")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError("min/max apply to int and double columns only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be greater than max ({self.max})")
        return self


class EntitySpec(Strict):
    key: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class EventTimeSpec(Strict):
    column: str | None = Field(None, description="source column with the event time; unset: the batch's event time")


class SourceSpec(Strict):
    format: Literal["csv", "parquet"] = "csv"
    options: dict[str, str] = Field(default_factory=lambda: {"header": "true"}, description="Spark's CSV options")
    multiline: bool = Field(
        False,
        description="quoted CSV fields may hold line breaks (Spark's multiLine); each file is then read by one task",
    )

    @model_validator(mode="after")
    def _one_way_to_say_multiline(self) -> SourceSpec:
        if self.multiline and self.format != "csv":
            raise ValueError("multiline applies to csv sources only")
        # Spark's option names are case-insensitive; the typed key is the one way, so the job sees it.
        if clash := [k for k in self.options if k.lower() == "multiline"]:
            raise ValueError(f"set `multiline: true` on the source instead of options.{clash[0]}")
        return self

    @property
    def spark_options(self) -> dict[str, str]:
        """The options to hand Spark's reader."""
        return {**self.options, "multiLine": "true"} if self.multiline else dict(self.options)


class FeatureSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="the feature table's name")
    description: str = ""
    entity: EntitySpec
    event_time: EventTimeSpec = EventTimeSpec()
    source: SourceSpec = SourceSpec()
    columns: list[ColumnSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_columns(self) -> FeatureSpec:
        names = [c.name for c in self.columns]
        reserved = {self.entity.key, "event_time", "ingested_at", "row_hash", "features"}
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"columns {dupes} appear more than once")
        if clash := sorted(set(names) & reserved):
            raise ValueError(f"columns {clash} clash with the entity key or the table's own columns {sorted(reserved)}")
        return self

    @property
    def source_columns(self) -> list[str]:
        """Columns the source must have."""
        event = [self.event_time.column] if self.event_time.column else []
        return [self.entity.key, *event, *(c.name for c in self.columns)]

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


class SpecError(Exception):
    """A feature spec is invalid; the message names the file and each key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid feature spec\n" + "\n".join(f"  {p}" for p in problems))


def load_spec(path: str | Path) -> FeatureSpec:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SpecError(str(path), [f"cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise SpecError(str(path), [f"not valid YAML: {e}"]) from None
    return parse_spec(document, str(path))


def parse_spec(document: object, source: str) -> FeatureSpec:
    try:
        return FeatureSpec.model_validate(document)
    except ValidationError as e:
        raise SpecError(source, problems(e, root="(spec)")) from None

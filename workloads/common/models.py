"""The workloads' one strict base model and one way of saying what is wrong with a document.

Specs, training configs and the team profile a workload reads are all documents a person wrote or a
platform published; each problem is reported as ``<key>: <what is wrong>`` so the fix is obvious.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """Unknown keys rejected (a typo is an error, not a silently ignored setting); immutable once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def problems(error: ValidationError, *, root: str = "(document)") -> list[str]:
    """One line per problem, each naming its key (``columns[2].type``) and, for a bad scalar, the value."""
    return [_describe(err, root) for err in error.errors()]


def _describe(err: dict, root: str) -> str:
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[") or root
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if err["type"] == "missing":
        return f"{key}: is required"
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    got = f" (got {value!r})" if not isinstance(value, dict | list) and err["type"] != "value_error" else ""
    return f"{key}: {message}{got}"

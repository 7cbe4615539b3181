"""The readiness report of one `mlkit verify` run: one row per check, as a rich table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum

from rich.markup import escape
from rich.table import Table


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # The check needs something this cluster cannot give (a running container on a kwok node): never a pass.
    NOT_VERIFIABLE = "not verifiable on this cluster"
    # Nothing to check here (no GPU pool, MLflow switched off, a remote cluster for the host checks).
    NOT_APPLICABLE = "not applicable"


STYLES = {
    Status.PASSED: "green",
    Status.FAILED: "red",
    Status.NOT_VERIFIABLE: "yellow",
    Status.NOT_APPLICABLE: "dim",
}


@dataclass(frozen=True)
class CheckResult:
    check: str  # area.name[parameter], e.g. gpu.untolerated-pod-refused[gpu-t4]
    proves: str  # what a pass shows, from the check's docstring
    status: Status
    detail: str  # what was seen; for a failure, what went wrong
    seconds: float

    @property
    def area(self) -> str:
        return self.check.split(".", 1)[0]


def exit_code(results: list[CheckResult]) -> int:
    """0 when no check failed (and at least one ran), else 1. Not verifiable is not a pass, nor a failure."""
    if not results or any(r.status is Status.FAILED for r in results):
        return 1
    return 0


def summary(results: list[CheckResult]) -> dict[str, int]:
    return {status.value: sum(r.status is status for r in results) for status in Status}


def table(results: list[CheckResult], title: str) -> Table:
    report = Table(title=title, show_lines=False)
    for column in ("check", "status", "detail"):
        report.add_column(column, overflow="fold")
    for result in results:
        style = STYLES[result.status]
        report.add_row(escape(result.check), f"[{style}]{result.status.value}[/]", escape(result.detail))
    return report


def summary_line(results: list[CheckResult]) -> str:
    counts = summary(results)
    parts = [f"{counts[s.value]} {s.value}" for s in Status if counts[s.value]]
    not_verifiable = [r.check for r in results if r.status is Status.NOT_VERIFIABLE]
    line = ", ".join(parts) or "no checks ran"
    if not_verifiable:
        line += f"\nnot verifiable on this cluster: {', '.join(not_verifiable)}"
    return line


def to_json(results: list[CheckResult], stack: str) -> str:
    return json.dumps(
        {
            "stack": stack,
            "ok": exit_code(results) == 0,
            "summary": summary(results),
            "checks": [{**asdict(r), "status": r.status.value} for r in results],
        },
        indent=2,
    )

"""How long stack validation takes: in-process per stack, and the CLI's cold start (what CI and users wait for)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from infra.stack import load_stack_file, stack_names

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 3)


def run() -> dict:
    per_stack = {name: _median_ms(lambda n=name: load_stack_file(n), 200) for name in stack_names()}
    cli = _median_ms(
        lambda: subprocess.run(
            [sys.executable, "-m", "infra.cli", "validate"], cwd=REPO, check=True, capture_output=True
        ),
        5,
    )
    return {"validate_ms_per_stack_median": per_stack, "cli_validate_all_stacks_cold_ms_median": cli}

"""`make bench`: run every benchmark in this folder and write its numbers to benchmarks/results/<name>.json.

Each bench_<name>.py has a `run() -> dict` returning the measured numbers. Timings are medians over
repeats on a shared machine: compare runs on the same machine, never assert on them in tests.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}


def main(names: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    paths = sorted(HERE.glob("bench_*.py"))
    if names:
        paths = [p for p in paths if p.stem.removeprefix("bench_") in names]
    for path in paths:
        name = path.stem.removeprefix("bench_")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        started = time.perf_counter()
        numbers = module.run()
        record = {
            "benchmark": name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(),
            "results": numbers,
        }
        record["seconds"] = round(time.perf_counter() - started, 1)
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: {json.dumps(numbers)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

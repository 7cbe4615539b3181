"""Scripts the checks run inside probe pods (``python3 -c <source>``); each prints one JSON line.

They use only what the probe images carry: the standard library, plus torch (the GPU image) or the kit's
workload library (the training image). ``gpu_probe`` also runs directly on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path


def source(name: str) -> str:
    return (Path(__file__).parent / f"{name}.py").read_text()

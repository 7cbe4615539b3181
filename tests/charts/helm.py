"""Run the real helm on the kit's charts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HELM = shutil.which("helm", path=str(REPO / ".cache" / "bin")) or shutil.which("helm")
# A team profile as the platform publishes it (the made-up team `make lint` lints with), for renders without a cluster.
PROFILE = yaml.safe_load((REPO / "charts" / "feature-job" / "ci" / "lint-values.yaml").read_text())["profile"]


def helm(*args: str, values: dict | None = None, tmp_path: Path | None = None) -> subprocess.CompletedProcess:
    assert HELM, "helm is not installed: run `make setup`"
    command = [HELM, *args]
    if values is not None:
        assert tmp_path is not None
        file = tmp_path / "values.yaml"
        file.write_text(yaml.safe_dump(values))
        command += ["--values", str(file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def render(chart: str, values: dict, tmp_path: Path) -> list[dict]:
    result = helm("template", "release", str(REPO / "charts" / chart), values=values, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]

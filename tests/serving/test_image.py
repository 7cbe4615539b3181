"""The serving image's contents: what its Dockerfile copies is enough to import and start the model."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from infra.versions import KIT_IMAGE_USER

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "workloads" / "serving" / "Dockerfile").read_text()


def test_the_copied_code_imports_on_its_own(tmp_path):
    """Rebuild the image's /opt/mlkit from its COPY lines, then import the model from there alone."""
    copies = re.findall(r"^COPY ((?:workloads|mlkit_contract)\S*) (/opt/mlkit/\S+)$", DOCKERFILE, flags=re.M)
    assert copies, "the Dockerfile copies no code"
    for source, target in copies:
        destination = tmp_path / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (REPO / source).is_dir() else shutil.copy
        copy(REPO / source, destination)
    model_class = re.search(r"MODEL_NAME=(\S+)", DOCKERFILE).group(1)
    module, _, name = model_class.rpartition(".")
    probe = (
        f"import importlib, workloads; m = importlib.import_module({module!r}); getattr(m, {name!r}); "
        "import workloads.serving.requestlog, workloads.serving.artifacts, workloads.serving.server; "
        "print(workloads.__file__)"
    )
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "PYTHONPATH": str(tmp_path / "opt" / "mlkit")
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=environment, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(tmp_path)), out.stdout  # imported from the copy, not the checkout


def test_the_image_runs_the_supervised_wrapper_as_pid_1_without_root():
    # The supervisor, not seldon-core-microservice itself: it forwards SIGTERM to the whole tree (server.py).
    assert re.search(r'^CMD exec python -m workloads.serving.server "\$MODEL_NAME"', DOCKERFILE, flags=re.M)
    assert re.search(rf"^USER {KIT_IMAGE_USER}:{KIT_IMAGE_USER}$", DOCKERFILE, flags=re.M)

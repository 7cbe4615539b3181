"""Build the kit's own images and push them (or load them into kind), tagged as the platform references them.

`make images REGISTRY=...` runs this. Each version an image is built with comes from its one source and
reaches the Dockerfile as a build argument: the tag (the kit release) and the MLflow server from
infra/versions.py, Spark and PyTorch from requirements/workloads.lock, the environment the tests run.
The Dockerfiles' ARG defaults repeat them only so that a plain `docker build` works;
tests/workloads/test_images.py fails when a default drifts from its source.

    python scripts/images.py --registry REGISTRY [--kind-cluster NAME] [--dry-run]
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # infra.versions from this checkout, whichever Python runs the script

from infra import versions  # noqa: E402


def locked(environment: str, package: str) -> str:
    """The version requirements/<environment>.lock pins ``package`` to."""
    lock = REPO / "requirements" / f"{environment}.lock"
    for line in lock.read_text().splitlines():
        found = re.match(rf"^{re.escape(package)}(\[[^\]]*\])?==(\S+)", line.strip(), flags=re.IGNORECASE)
        if found:
            return found.group(2)
    raise SystemExit(f"images: {lock.relative_to(REPO)} pins no {package}; run `make lock`")


@dataclass(frozen=True)
class Image:
    """One kit image: its repository name under the registry, how it is built, and the versions it is built with."""

    name: str
    dockerfile: Path
    context: Path
    build_args: dict[str, str] = field(default_factory=dict)

    def ref(self, registry: str) -> str:
        # The same reference infra builds for the platform (infra.config.Images.image).
        return f"{registry}/{self.name}:{versions.KIT_IMAGE_TAG}"

    def build(self, registry: str) -> list[str]:
        command = ["docker", "build", "-t", self.ref(registry), "-f", str(self.dockerfile.relative_to(REPO))]
        for key, value in self.build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        return [*command, str(self.context.relative_to(REPO)) if self.context != REPO else "."]


def images() -> list[Image]:
    """Every workloads/<name>/Dockerfile, in build order."""
    workloads = REPO / "workloads"
    return [
        Image(
            "mlkit-features",
            workloads / "features" / "Dockerfile",
            REPO,
            {"SPARK_VERSION": locked("workloads", "pyspark")},
        ),
        Image(
            "mlkit-training",
            workloads / "training" / "Dockerfile",
            REPO,
            {"TORCH_VERSION": locked("workloads", "torch")},
        ),
        Image("mlkit-serving", workloads / "serving" / "Dockerfile", REPO),
        Image(
            versions.MLFLOW_IMAGE,
            workloads / "mlflow" / "Dockerfile",
            workloads / "mlflow",
            {"MLFLOW_VERSION": versions.MLFLOW},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True, help="the registry in the stack's mlkit:images")
    parser.add_argument("--kind-cluster", help="load the images into this kind cluster instead of pushing them")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args()
    if not args.dry_run and shutil.which("docker") is None:
        raise SystemExit("make images: Docker is not installed (https://docs.docker.com/engine/install/)")
    for image in images():
        ref = image.ref(args.registry)
        ship = ["kind", "load", "docker-image", ref, "--name", args.kind_cluster] if args.kind_cluster else None
        for command in (image.build(args.registry), ship or ["docker", "push", ref]):
            print(shlex.join(command), flush=True)
            if not args.dry_run and subprocess.run(command, cwd=REPO, check=False).returncode != 0:
                raise SystemExit(f"make images: `{shlex.join(command)}` failed; its output is above")


if __name__ == "__main__":
    main()

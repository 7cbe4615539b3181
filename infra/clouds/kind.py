"""kind target: a local Kubernetes-in-Docker cluster and an in-cluster S3-compatible store."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from infra.config import DnsLabel, NodePool, TargetConfig


class KindConfig(TargetConfig):
    """The ``kind:`` block of a stack. Node pools become kind worker nodes (minSize of each)."""

    # The control-plane node runs system pods, and workers are containers, not machines.
    provisions_nodes: ClassVar[bool] = False
    required_tools: ClassVar[tuple[str, ...]] = ("docker", "kind")

    cluster_name: DnsLabel = "mlkit"
    node_image: str = Field("kindest/node:v1.34.0", description="pins the Kubernetes version of the nodes")

    def node_pool_problems(self, pool: NodePool) -> list[tuple[str, str]]:
        problems = super().node_pool_problems(pool)
        if pool.machine_type:
            problems.append(("machineType", "kind nodes are containers on this machine; remove machineType"))
        return problems

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        # kind needs no cloud account, but it needs a running Docker engine, not only the client.
        docker = shutil.which("docker", path=env.get("PATH", ""))
        if not docker:
            return None  # the docker tool check already names this
        try:
            info = subprocess.run(
                [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired):
            info = None
        if info is None or info.returncode != 0 or not info.stdout.strip():
            return "the Docker engine is not running (`docker info` fails): start Docker Desktop or `sudo systemctl start docker`"
        return None

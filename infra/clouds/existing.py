"""existing target: any cluster reachable by kubeconfig, and any S3-compatible (or cloud) object store."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

import yaml
from pydantic import Field, HttpUrl

from infra.config import ConfigModel, Secret, TargetConfig


class ExistingObjectStore(ConfigModel):
    """Where the platform bucket lives. Credentials are pulumi secrets, never plain text."""

    scheme: Literal["s3", "gs", "abfss"] = "s3"
    endpoint: HttpUrl | None = Field(None, description="S3-compatible endpoint; unset uses the cloud default")
    region: str = "us-east-1"
    path_style: bool = Field(True, description="path-style S3 addressing, which most on-prem stores need")
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None


class ExistingConfig(TargetConfig):
    """The ``existing:`` block of a stack. Node pools describe the cluster's nodes; nothing is provisioned."""

    # On-prem GPU nodes carry whatever GPU their owners bought; the type is a label value.
    gpu_machine_types: ClassVar[dict[str, str]] = {
        t: r"" for t in ("t4", "l4", "l40s", "a10", "a10g", "a30", "a40", "v100", "a100", "a100-80gb", "h100", "h200")
    }
    provisions_nodes: ClassVar[bool] = False

    kubeconfig: str | None = Field(None, description="path to a kubeconfig; unset uses KUBECONFIG or ~/.kube/config")
    context: str = Field(min_length=1)
    object_store: ExistingObjectStore

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if self.kubeconfig:
            paths = [Path(self.kubeconfig).expanduser()]
        elif env.get("KUBECONFIG"):
            paths = [Path(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
        else:
            paths = [home / ".kube" / "config"]
        contexts = set()
        for path in paths:
            try:
                document = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            contexts |= {c.get("name") for c in document.get("contexts") or [] if isinstance(c, dict)}
        if self.context not in contexts:
            where = ", ".join(str(p) for p in paths)
            return (
                f"kubeconfig context {self.context!r} not found in {where}; get a kubeconfig from the cluster's admins"
            )
        return None

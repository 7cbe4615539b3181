"""GCP target: VPC, GKE with Workload Identity, node pools, GCS."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from infra.config import Cidr, TargetConfig, cidr_overlaps

# Cloud-neutral GPU type -> GKE accelerator type.
ACCELERATORS = {
    "t4": "nvidia-tesla-t4",
    "v100": "nvidia-tesla-v100",
    "l4": "nvidia-l4",
    "a100": "nvidia-tesla-a100",
    "a100-80gb": "nvidia-a100-80gb",
    "h100": "nvidia-h100-80gb",
    "h200": "nvidia-h200-141gb",
}


class GcpConfig(TargetConfig):
    """The ``gcp:`` block of a stack."""

    # Accelerators attach to N1 machines; the newer ones come only with their own series.
    gpu_machine_types: ClassVar[dict[str, str]] = {
        "t4": r"n1-",
        "v100": r"n1-",
        "l4": r"g2-standard-",
        "a100": r"a2-(highgpu|megagpu)-",
        "a100-80gb": r"a2-ultragpu-",
        "h100": r"a3-(highgpu|megagpu|edgegpu)-",
        "h200": r"a3-ultragpu-",
    }
    pool_name_rule: ClassVar[tuple[str, str]] = (
        r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?",
        "lowercase letters, digits and '-', at most 40 characters",
    )
    required_tools: ClassVar[tuple[str, ...]] = ("gcloud",)

    project: str = Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    region: str = Field(pattern=r"^[a-z]+-[a-z]+\d$")
    zones: list[str] = Field(min_length=1)
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] | None = Field(
        "REGULAR", description="unset pins kubernetes.version with no automatic upgrades"
    )
    private_nodes: bool = True
    subnet_cidr: Cidr = "10.0.0.0/20"
    pods_cidr: Cidr = "10.4.0.0/14"
    services_cidr: Cidr = "10.8.0.0/20"
    master_cidr: Cidr = "172.16.0.32/28"

    @model_validator(mode="after")
    def _consistent_network(self) -> GcpConfig:
        strays = [z for z in self.zones if not re.fullmatch(re.escape(self.region) + r"-[a-z]", z)]
        if strays:
            raise ValueError(f"zones {strays} are not zones of region {self.region!r} (e.g. {self.region}-a)")
        overlaps = cidr_overlaps(self.subnet_cidr, self.pods_cidr, self.services_cidr, self.master_cidr)
        if overlaps:
            raise ValueError(f"network ranges overlap: {overlaps}")
        return self

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if env.get("GOOGLE_APPLICATION_CREDENTIALS") or env.get("GOOGLE_CREDENTIALS"):
            return None
        if (home / ".config" / "gcloud" / "application_default_credentials.json").is_file():
            return None
        return "no Google credentials: run `gcloud auth application-default login`"

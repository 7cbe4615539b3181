"""Azure target: resource group, VNet, AKS with workload identity, ADLS Gen2."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from infra.config import Cidr, TargetConfig


class AzureConfig(TargetConfig):
    """The ``azure:`` block of a stack. The stack's storage bucket is a container in ``storageAccount``."""

    # VM size families by the GPU they carry.
    gpu_machine_types: ClassVar[dict[str, str]] = {
        "t4": r"Standard_NC\d+as_T4_v3$",
        "v100": r"Standard_NC\d+s_v3$",
        "a10": r"Standard_NV\d+ads_A10_v5$",
        "a100": r"Standard_(NC\d+ads_A100_v4|ND96asr_v4)$",
        "a100-80gb": r"Standard_ND96amsr_A100_v4$",
        "h100": r"Standard_(NC\d+ads_H100_v5|ND96isr_H100_v5)$",
    }
    # AKS: Linux agent pool names are 1-12 lowercase letters and digits.
    pool_name_rule: ClassVar[tuple[str, str]] = (
        r"[a-z][a-z0-9]{0,11}",
        "1-12 lowercase letters and digits, starting with a letter (an AKS rule)",
    )
    required_tools: ClassVar[tuple[str, ...]] = ("az",)

    location: str = Field(pattern=r"^[a-z]+[a-z0-9]*$")
    resource_group: str | None = Field(None, description="defaults to mlkit-<stack>")
    storage_account: str = Field(pattern=r"^[a-z0-9]{3,24}$")
    vnet_cidr: Cidr = "10.20.0.0/16"
    private_cluster: bool = False

    def bucket_name_problem(self, name: str) -> str | None:
        if not re.fullmatch(r"[a-z0-9](-?[a-z0-9])+", name) or len(name) > 63:
            return f"{name!r} is not a valid blob container name: 3-63 lowercase letters, digits and single '-'"
        return None

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if env.get("ARM_CLIENT_ID") or env.get("AZURE_CLIENT_ID"):
            return None
        if (home / ".azure" / "azureProfile.json").is_file():
            return None
        return "no Azure credentials: run `az login` (and `az account set --subscription ...`)"

"""AWS target: VPC, EKS with managed node groups, S3 and IRSA."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from infra.config import Cidr, TargetConfig


class AwsConfig(TargetConfig):
    """The ``aws:`` block of a stack."""

    # Instance families by the GPU they carry.
    gpu_machine_types: ClassVar[dict[str, str]] = {
        "t4": r"g4dn\.",
        "a10g": r"g5\.",
        "l4": r"g6\.",
        "l40s": r"g6e\.",
        "v100": r"p3(dn)?\.",
        "a100": r"p4d\.",
        "a100-80gb": r"p4de\.",
        "h100": r"p5\.",
        "h200": r"p5e[n]?\.",
    }
    required_tools: ClassVar[tuple[str, ...]] = ("aws",)

    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    availability_zones: list[str] = Field(min_length=2, description="at least two, for the private subnets")
    vpc_cidr: Cidr = "10.0.0.0/16"
    private_endpoint: bool = Field(False, description="API server reachable only from inside the VPC")
    public_access_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"], description="who may reach a public API endpoint"
    )
    gpu_ami_type: Literal["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"] = "AL2023_x86_64_NVIDIA"
    autoscaler: Literal["cluster-autoscaler", "karpenter"] = "cluster-autoscaler"

    @model_validator(mode="after")
    def _zones_in_region(self) -> AwsConfig:
        strays = [z for z in self.availability_zones if not re.fullmatch(re.escape(self.region) + r"[a-z]", z)]
        if strays:
            raise ValueError(
                f"availabilityZones {strays} are not zones of region {self.region!r} (e.g. {self.region}a)"
            )
        return self

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if {"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"} & set(env):
            return None
        if (home / ".aws" / "credentials").is_file() or (home / ".aws" / "config").is_file():
            return None
        return "no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE"

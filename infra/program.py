"""The Pulumi program: read the stack's config through Pulumi, validate it, build the platform.

Issue by issue this grows: the cloud layer (infra/clouds) provisions below the ClusterTarget
contract, the platform layer builds on the contract. Today it validates and exports the plan.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from infra.stack import StackConfig, StackConfigError, load_pulumi_config


def load_config() -> StackConfig:
    """The stack's validated config; a bad stack fails here, before any resource is touched."""
    config = {**get_config_env(), **CONFIG.get()}
    try:
        return load_pulumi_config(config, pulumi.get_stack())
    except StackConfigError as e:
        # RunError prints its message without a Python stack trace.
        raise pulumi.RunError(str(e)) from None


def build(config: StackConfig) -> dict[str, object]:
    """Create the stack's resources and return its outputs."""
    return {
        "target": config.target,
        "kubernetesVersion": config.kubernetes.version,
        "bucket": config.storage.bucket,
        "nodePools": {
            p.name: {"min": p.min_size, "max": p.max_size, "gpu": p.gpu.type if p.gpu else None}
            for p in config.node_pools
        },
        "teams": [t.name for t in config.teams],
        "components": {name: c.version for name, c in config.platform if c.enabled},
    }


def main() -> None:
    for name, value in build(load_config()).items():
        pulumi.export(name, value)

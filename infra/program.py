"""The Pulumi program: read the stack's config through Pulumi, validate it, build the platform.

The target's module (infra/clouds/<target>.py) provisions everything below the ClusterTarget
contract; the platform layer is built on the contract alone.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from infra.components.platform import build_platform, charts_needed
from infra.sources import Sources
from infra.stack import StackConfig, StackConfigError, load_pulumi_config


def load_config() -> StackConfig:
    """The stack's validated config; a bad stack fails here, before any resource is touched."""
    config = {**get_config_env(), **CONFIG.get()}
    try:
        return load_pulumi_config(config, pulumi.get_stack())
    except StackConfigError as e:
        # RunError prints its message without a Python stack trace.
        raise pulumi.RunError(str(e)) from None


def preflight(config: StackConfig) -> None:
    """Fail before any resource exists when the cluster or an offline chart source lacks something."""
    kfp = config.platform.kubeflow_pipelines
    problems = Sources(config.charts).problems(charts_needed(config), kfp.version if kfp.enabled else None)
    problems += config.cluster.preflight_problems()
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise pulumi.RunError(f"stack {pulumi.get_stack()} cannot be deployed:\n{lines}")


def build(config: StackConfig) -> dict[str, object]:
    """Create the stack's resources and return its outputs."""
    name = f"mlkit-{pulumi.get_stack()}"
    target = config.cluster.provision(name, config)
    platform = build_platform(name, config, target)
    target.complete()
    return {
        **platform,
        "target": config.target,
        "kubernetesVersion": config.kubernetes.version,
        "bucket": config.storage.bucket,
        "objectStore": target.object_store.uri(),
        "storageClass": target.storage_class,
        "gpu": {"hasGpuNodes": target.gpu.has_gpu_nodes, "devicePluginManaged": target.gpu.device_plugin_managed},
        "nodePools": {
            p.name: {"min": p.min_size, "max": p.max_size, "gpu": p.gpu.type if p.gpu else None}
            for p in config.node_pools
        },
        "teams": [t.name for t in config.teams],
        "components": {name: c.version for name, c in config.platform if c.enabled},
    }


def main() -> None:
    config = load_config()
    preflight(config)
    for name, value in build(config).items():
        pulumi.export(name, value)

"""The Pulumi program: read the stack's config through Pulumi, validate it, build the platform.

The target's module (infra/clouds/<target>.py) provisions everything below the ClusterTarget
contract; the platform layer is built on the contract alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from infra.clouds import TargetPlugin, plugin_of
from infra.components.platform import build_platform, charts_needed
from infra.sources import Sources
from infra.stack import PROVIDER_SECRETS, StackConfig, StackConfigError, cluster_name, load_pulumi_config
from infra.target import ClusterArgs


def raw_config() -> dict[str, str]:
    return {**get_config_env(), **CONFIG.get()}


def load_config(config: Mapping[str, str]) -> StackConfig:
    """The stack's validated config; a bad stack fails here, before any resource is touched."""
    try:
        return load_pulumi_config(dict(config), pulumi.get_stack())
    except StackConfigError as e:
        # RunError prints its message without a Python stack trace.
        raise pulumi.RunError(str(e)) from None


def provider_settings(config: Mapping[str, str], plugin: TargetPlugin) -> dict[str, Any]:
    """The target provider's stack settings (``aws:profile``, ...) as keyword arguments of its explicit Provider.

    An explicit provider ignores the stack's provider config; without these, resources would land in
    whatever account the environment happens to select.
    """
    settings: dict[str, Any] = {}
    for key in plugin.provider_keys:
        raw = config.get(f"{plugin.provider_namespace}:{key}")
        if raw is None:
            continue
        try:
            # Lists and booleans arrive JSON-encoded; an object stays text (gcp:credentials is a key file's JSON).
            value = json.loads(raw) if raw[:1] == "[" or raw in ("true", "false") else raw
        except json.JSONDecodeError:
            value = raw
        if f"{plugin.provider_namespace}:{key}".lower() in PROVIDER_SECRETS:
            value = pulumi.Output.secret(value)  # a credential stays encrypted in the state, whatever its SDK marks
        settings[re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()] = value
    return settings


def cluster_args(config: StackConfig, settings: Mapping[str, Any] | None = None) -> ClusterArgs:
    """What the target's component takes from the stack."""
    return ClusterArgs(
        config=config.target,
        node_pools=tuple(config.node_pools),
        storage=config.storage,
        kubernetes_version=config.kubernetes.version,
        charts=config.charts,
        provider_settings=dict(settings or {}),
    )


def preflight(config: StackConfig) -> None:
    """Fail before any resource exists when the cluster or an offline chart source lacks something."""
    kfp = config.platform.kubeflow_pipelines
    problems = Sources(config.charts).problems(charts_needed(config), kfp.version if kfp.enabled else None)
    problems += plugin_of(config.target).preflight_problems(config.target)
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise pulumi.RunError(f"stack {pulumi.get_stack()} cannot be deployed:\n{lines}")


def build(config: StackConfig, settings: Mapping[str, Any] | None = None) -> dict[str, object]:
    """Create the stack's resources and return its outputs."""
    name = cluster_name(pulumi.get_stack())
    target = plugin_of(config.target).provision(name, cluster_args(config, settings), None)
    platform = build_platform(name, config, target)
    target.complete()
    return {
        **platform,
        "target": config.target.type,
        "kubernetesVersion": config.kubernetes.version,
        "bucket": config.storage.bucket,
        "objectStore": target.object_store.uri(),
        "storageClass": target.storage_class,
        "gpu": {"hasGpuNodes": target.gpu.has_gpu_nodes, "devicePluginManaged": target.gpu.device_plugin_managed},
        "nodePools": {
            p.name: {
                "min": p.min_size,
                "max": p.max_size,
                "gpu": p.gpu.type if p.gpu else None,
                "nodeSelector": placement.node_selector,
                "tolerations": placement.tolerations,
            }
            for p in config.node_pools
            for placement in [target.placements()[p.name]]
        },
        "teams": [t.name for t in config.teams],
        "components": {name: c.version for name, c in config.platform if c.enabled},
    }


def main() -> None:
    raw = raw_config()
    config = load_config(raw)
    preflight(config)
    for name, value in build(config, provider_settings(raw, plugin_of(config.target))).items():
        pulumi.export(name, value)

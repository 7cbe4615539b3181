"""The target plug-ins: one per `mlkit:target.type`, each registered by its own module.

A plug-in names its config block (pure data, validated by the stack schema), the component that
provisions it, and what `mlkit doctor` and `pulumi up` need to know about it. A new target is one
module that calls :func:`register`; nothing else in the kit changes.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pulumi

from infra.config import TargetConfig
from infra.target import ClusterArgs, ClusterTarget


def _no_problem(config: Any, env: Mapping[str, str], home: Path) -> str | None:
    return None


def _no_problems(config: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class TargetPlugin:
    config: type[TargetConfig]  # its block; ``type: Literal["<name>"]`` names the target
    provision: Callable[[str, ClusterArgs[Any], pulumi.ResourceOptions | None], ClusterTarget]
    # Tools `pulumi up` needs on this target beyond pulumi/kubectl/helm, e.g. ("aws",).
    required_tools: tuple[str, ...] = ()
    # Charts this target installs itself (name -> pinned version), besides the platform's.
    charts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # The cloud provider's config namespace (`aws`) and the keys of it the explicit provider takes.
    provider_namespace: str | None = None
    provider_keys: tuple[str, ...] = ()
    # Why `pulumi up` would find no credentials for this target, or None. Looks, never calls a cloud.
    credential_problem: Callable[[Any, Mapping[str, str], Path], str | None] = _no_problem
    # Why `pulumi up` would fail half way on this target, checked before anything is created.
    preflight_problems: Callable[[Any], list[str]] = _no_problems

    @property
    def type(self) -> str:
        (name,) = typing.get_args(self.config.model_fields["type"].annotation)
        return name


TARGETS: dict[str, TargetPlugin] = {}


def register(plugin: TargetPlugin) -> TargetPlugin:
    """Make a target selectable by ``mlkit:target.type``."""
    if plugin.type in TARGETS and TARGETS[plugin.type] is not plugin:
        raise ValueError(f"target type {plugin.type!r} is already registered")
    TARGETS[plugin.type] = plugin
    return plugin


def plugin_of(config: TargetConfig) -> TargetPlugin:
    return TARGETS[config.type]

"""The Seldon Core v1 operator. 1.17.1 is the last Apache-2.0 release; newer ones need the BSL-1.1 flag in config."""

from __future__ import annotations

from infra.components.base import PlatformComponent
from infra.config import SeldonCore as SeldonCoreConfig
from infra.target import ClusterTarget

NAMESPACE = "seldon-system"


class SeldonCore(PlatformComponent):
    def __init__(self, name: str, target: ClusterTarget, config: SeldonCoreConfig, opts=None):
        super().__init__("SeldonCore", name, target, opts)
        # The config schema refuses a BSL-licensed version unless acceptLicense says BSL-1.1.
        namespace = self.namespace(NAMESPACE)
        self.operator = self.release(
            "seldon-core",
            "seldon-core-operator",
            config.version,
            namespace.metadata.name,
            {
                "usageMetrics": {"enabled": False},
                "istio": {"enabled": False},
                "ambassador": {"enabled": False},
                "crd": {"create": True},
                "executor": {"enabled": True},
            },
            namespace,
        )
        self.register_outputs({})

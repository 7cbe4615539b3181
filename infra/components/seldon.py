"""The Seldon Core v1 operator. 1.17.1 is the last Apache-2.0 release; newer ones need the BSL-1.1 flag in config."""

from __future__ import annotations

from infra.components.base import ALWAYS_PULL, RESTRICTED_VALUES, PlatformComponent
from infra.config import SeldonCore as SeldonCoreConfig
from infra.target import WEBHOOK_PORTS, ClusterTarget

NAMESPACE = "seldon-system"


class SeldonCore(PlatformComponent):
    def __init__(self, name: str, target: ClusterTarget, config: SeldonCoreConfig, opts=None, sources=None):
        super().__init__("SeldonCore", name, target, opts, sources)
        # The config schema refuses a BSL-licensed version unless acceptLicense says BSL-1.1.
        namespace = self.namespace(NAMESPACE, "restricted")
        self.operator = self.release(
            "seldon-core",
            "seldon-core-operator",
            config.version,
            namespace.metadata.name,
            {
                "usageMetrics": {"enabled": False},
                "image": ALWAYS_PULL,
                "istio": {"enabled": False},
                "ambassador": {"enabled": False},
                "crd": {"create": True},
                # The chart's validating webhook (failurePolicy: Fail) is served by the operator pod;
                # where no pod runs, the operator is left to create it, so SeldonDeployments are admitted.
                "managerCreateResources": not target.pods_run,
                "webhook": {"port": WEBHOOK_PORTS["seldon-core-operator"]},  # the port targets' firewalls open
                # The chart sets only runAsUser; what Pod Security `restricted` asks besides. (The chart pastes
                # this value into the manager's container as it is, so it holds the securityContext key.)
                "manager": {"containerSecurityContext": {"securityContext": RESTRICTED_VALUES}},
            },
            namespace,
        )
        self.register_outputs({})

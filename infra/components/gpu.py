"""The NVIDIA device plugin, where the target does not run one itself, on GPU nodes only."""

from __future__ import annotations

from infra.components.base import ALWAYS_PULL, OPERATOR_RESOURCES, PlatformComponent
from infra.config import GpuPlugin
from infra.target import GPU_NODE_LABEL, ClusterTarget


class GpuDevicePlugin(PlatformComponent):
    def __init__(self, name: str, target: ClusterTarget, config: GpuPlugin, opts=None, sources=None):
        super().__init__("GpuDevicePlugin", name, target, opts, sources)
        self.plugin = None
        if config.enabled and target.gpu.has_gpu_nodes and not target.gpu.device_plugin_managed:
            namespace = self.namespace(
                # The plugin mounts the kubelet's device-plugin socket directory (hostPath).
                "nvidia-device-plugin",
                "privileged",
            )
            self.plugin = self.release_of(namespace, config.version)
        self.register_outputs({})

    def release_of(self, namespace, version: str):
        gpu_nodes = {"nodeSelectorTerms": [{"matchExpressions": [{"key": GPU_NODE_LABEL, "operator": "Exists"}]}]}
        return self.release(
            "nvidia-device-plugin",
            "nvidia-device-plugin",
            version,
            namespace.metadata.name,
            {
                "tolerations": self.target.gpu.tolerations,
                "image": ALWAYS_PULL,
                "resources": OPERATOR_RESOURCES,
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": gpu_nodes}},
            },
            namespace,
        )

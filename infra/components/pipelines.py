"""Kubeflow Pipelines, standalone, from its upstream kustomize manifests pinned to a release tag.

On cloud targets the pipeline root is the platform bucket, reached through workload identity;
elsewhere it stays KFP's own in-cluster store (SeaweedFS since KFP 2.15; no MinIO).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra.components.base import PART_OF, PlatformComponent, bound_service_account
from infra.config import KubeflowPipelines as KubeflowPipelinesConfig
from infra.target import ClusterTarget

NAMESPACE = "kubeflow"
RUNNER = "pipeline-runner"  # the service account KFP runs pipeline steps as; KFP's manifests create it
ROOT_PREFIX = "pipelines"


class KubeflowPipelines(PlatformComponent):
    def __init__(
        self,
        name: str,
        target: ClusterTarget,
        config: KubeflowPipelinesConfig,
        use_platform_bucket: bool,
        opts=None,
        sources=None,
    ):
        super().__init__("KubeflowPipelines", name, target, opts, sources)
        # CRDs and cluster roles first; the namespaced install needs them.
        self.cluster_scoped = k8s.kustomize.v2.Directory(
            f"{name}-cluster-scoped",
            directory=self.sources.kfp("cluster-scoped-resources", config.version),
            opts=self.k8s_opts,
        )
        self.install = k8s.kustomize.v2.Directory(
            f"{name}-install",
            directory=self.sources.kfp("env/platform-agnostic", config.version),
            opts=self.opts(self.cluster_scoped),
        )
        self.pipeline_root = None
        if use_platform_bucket:
            runner, _ = bound_service_account(
                self, "runner", RUNNER, NAMESPACE, ROOT_PREFIX, self.install, created_elsewhere=True
            )
            self.pipeline_root = target.object_store.uri(ROOT_PREFIX)
            # KFP's launcher reads the default pipeline root from this ConfigMap; patch ours in.
            k8s.core.v1.ConfigMapPatch(
                f"{name}-pipeline-root",
                metadata={"name": "kfp-launcher", "namespace": NAMESPACE, "labels": PART_OF},
                data={"defaultPipelineRoot": self.pipeline_root},
                opts=self.opts(self.install, runner),
            )
        self.register_outputs({})

"""The platform over a ClusterTarget: every component, each switchable in config, and how to reach them.

Order matters on a live cluster: monitoring first (its CRDs are what the Spark operator's PodMonitor
needs), team namespaces before the Spark operator that watches them.
"""

from __future__ import annotations

import json

import pulumi

from infra import versions
from infra.clouds import plugin_of
from infra.components import mlflow, monitoring, pipelines
from infra.components.gpu import GpuDevicePlugin
from infra.components.mlflow import Mlflow
from infra.components.monitoring import Monitoring
from infra.components.pipelines import KubeflowPipelines
from infra.components.seldon import SeldonCore
from infra.components.spark import SparkOperator
from infra.components.teams import TeamAccess, TeamWorkspace
from infra.sources import Sources
from infra.target import ClusterTarget


def charts_needed(config) -> dict[str, str]:
    """Every chart (name -> version) this stack installs: the enabled components' and the target's own."""
    platform = config.platform
    charts = {
        "nvidia-device-plugin": platform.gpu_plugin.version
        if platform.gpu_plugin.enabled and any(p.gpu for p in config.node_pools)
        else None,
        "spark-operator": platform.spark_operator.version if platform.spark_operator.enabled else None,
        "seldon-core-operator": platform.seldon_core.version if platform.seldon_core.enabled else None,
        "kube-prometheus-stack": platform.monitoring.version if platform.monitoring.enabled else None,
    }
    return {**{k: v for k, v in charts.items() if v}, **plugin_of(config.target).charts}


def build_platform(name: str, config, target: ClusterTarget) -> dict[str, object]:
    """Create the enabled components and the team workspaces; return the stack outputs that reach them."""
    platform = config.platform
    sources = Sources(config.charts)
    mlflow_uri = mlflow.URL if platform.mlflow.enabled else None
    pushgateway = monitoring.PUSHGATEWAY_URL if platform.monitoring.enabled else None
    workspaces = {
        team.name: TeamWorkspace(
            f"{name}-team-{team.name}", target, team, mlflow_uri=mlflow_uri, pushgateway=pushgateway
        )
        for team in config.teams
    }
    if config.teams:
        TeamAccess(f"{name}-team-access", target)
    GpuDevicePlugin(f"{name}-gpu", target, platform.gpu_plugin, sources=sources)
    access: dict[str, str] = {}
    monitoring_stack = None
    if platform.monitoring.enabled:
        monitoring_stack = Monitoring(f"{name}-monitoring", target, platform.monitoring, sources=sources).stack
        access["grafana"] = (
            f"kubectl -n {monitoring.NAMESPACE} port-forward svc/kube-prometheus-stack-grafana 3000:80  # http://localhost:3000"
        )
        access["prometheus"] = (
            f"kubectl -n {monitoring.NAMESPACE} port-forward svc/kube-prometheus-stack-prometheus 9090:9090  # http://localhost:9090"
        )
    if platform.spark_operator.enabled:
        SparkOperator(
            f"{name}-spark",
            target,
            platform.spark_operator,
            job_namespaces=[w.namespace_resource for _, w in sorted(workspaces.items())],
            monitoring=monitoring_stack,
            sources=sources,
        )
    if platform.kubeflow_pipelines.enabled:
        # Cloud targets keep pipeline artifacts in the platform bucket; kind keeps KFP's own store.
        KubeflowPipelines(
            f"{name}-pipelines",
            target,
            platform.kubeflow_pipelines,
            use_platform_bucket=target.object_store.endpoint is None,
            sources=sources,
        )
        access["kubeflowPipelines"] = (
            f"kubectl -n {pipelines.NAMESPACE} port-forward svc/ml-pipeline-ui 8080:80  # http://localhost:8080"
        )
    if platform.seldon_core.enabled:
        SeldonCore(f"{name}-seldon", target, platform.seldon_core, sources=sources)
    if platform.mlflow.enabled:
        Mlflow(
            f"{name}-mlflow",
            target,
            platform.mlflow,
            image=config.images.image(versions.MLFLOW_IMAGE),
            teams={team: w.namespace_resource for team, w in sorted(workspaces.items())},
        )
        access["mlflow"] = f"kubectl -n {mlflow.NAMESPACE} port-forward svc/mlflow 5000:5000  # http://localhost:5000"
    return {
        "access": access,
        "featureStores": {team: pulumi.Output.from_input(w.feature_store) for team, w in workspaces.items()},
        # Each team's profile (mlkit_contract.TeamProfile), as in its ConfigMap mlkit-team-profile.
        "teamProfiles": {team: w.profile.apply(json.loads) for team, w in workspaces.items()},
    }

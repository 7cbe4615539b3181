"""The platform over a ClusterTarget: every component, each switchable in config, and how to reach them."""

from __future__ import annotations

import pulumi

from infra.components import mlflow, monitoring, pipelines
from infra.components.gpu import GpuDevicePlugin
from infra.components.mlflow import Mlflow
from infra.components.monitoring import Monitoring
from infra.components.pipelines import KubeflowPipelines
from infra.components.seldon import SeldonCore
from infra.components.spark import SparkOperator
from infra.components.teams import TeamAccess, TeamWorkspace
from infra.target import ClusterTarget


def build_platform(name: str, config, target: ClusterTarget) -> dict[str, object]:
    """Create the enabled components and the team workspaces; return the stack outputs that reach them."""
    platform = config.platform
    workspaces = {team.name: TeamWorkspace(f"{name}-team-{team.name}", target, team) for team in config.teams}
    if config.teams:
        TeamAccess(f"{name}-team-access", target)
    GpuDevicePlugin(f"{name}-gpu", target, platform.gpu_plugin)
    access: dict[str, str] = {}
    if platform.spark_operator.enabled:
        SparkOperator(f"{name}-spark", target, platform.spark_operator, job_namespaces=sorted(workspaces))
    if platform.kubeflow_pipelines.enabled:
        # Cloud targets keep pipeline artifacts in the platform bucket; kind keeps KFP's own store.
        KubeflowPipelines(
            f"{name}-pipelines",
            target,
            platform.kubeflow_pipelines,
            use_platform_bucket=target.object_store.endpoint is None,
        )
        access["kubeflowPipelines"] = (
            f"kubectl -n {pipelines.NAMESPACE} port-forward svc/ml-pipeline-ui 8080:80  # http://localhost:8080"
        )
    if platform.seldon_core.enabled:
        SeldonCore(f"{name}-seldon", target, platform.seldon_core)
    if platform.mlflow.enabled:
        Mlflow(f"{name}-mlflow", target, platform.mlflow)
        access["mlflow"] = f"kubectl -n {mlflow.NAMESPACE} port-forward svc/mlflow 5000:5000  # http://localhost:5000"
    if platform.monitoring.enabled:
        Monitoring(f"{name}-monitoring", target, platform.monitoring)
        access["grafana"] = (
            f"kubectl -n {monitoring.NAMESPACE} port-forward svc/kube-prometheus-stack-grafana 3000:80  # http://localhost:3000"
        )
        access["prometheus"] = (
            f"kubectl -n {monitoring.NAMESPACE} port-forward svc/kube-prometheus-stack-prometheus 9090:9090  # http://localhost:9090"
        )
    return {
        "access": access,
        "featureStores": {team: pulumi.Output.from_input(w.feature_store) for team, w in workspaces.items()},
    }

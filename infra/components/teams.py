"""Self-service team workspaces: a team is a few lines of stack config; this makes everything it needs.

Per team: a namespace, a ResourceQuota (GPUs included), a LimitRange, edit rights for the team's
members and groups in that namespace only, default-deny network policies with the openings the
platform needs, and service accounts bound by the target to the team's storage prefix alone.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.components import mlflow, monitoring, pipelines
from infra.components.base import (
    PART_OF,
    TEAM_LABEL,
    PlatformComponent,
    bound_service_account,
    namespaces_named,
    store_keys_secret,
)
from infra.components.spark import HADOOP_CONFIGMAP, hadoop_configmap
from infra.config import Team
from infra.target import ClusterTarget
from mlkit_contract import CREDENTIALS_SECRET, PROFILE_CONFIGMAP, PROFILE_KEY, TeamProfile

# Namespaces team pods may call: the tracking server, pipelines, and the kind target's object store.
PLATFORM_NAMESPACES = [mlflow.NAMESPACE, pipelines.NAMESPACE, "mlkit-system"]
# What a team's own workloads run as: Spark jobs (which also start executor pods), and everything else.
SERVICE_ACCOUNTS = ("spark", "ml")
SPARK_ACCOUNT, MODELS_ACCOUNT = SERVICE_ACCOUNTS


def team_prefix(team: str) -> str:
    return f"teams/{team}"


class TeamAccess(pulumi.ComponentResource):
    """Cluster-wide, once: lets the built-in `edit` role manage the platform's custom resources too."""

    def __init__(self, name: str, target: ClusterTarget, opts=None):
        super().__init__("mlkit:platform:TeamAccess", name, None, opts)
        k8s.rbac.v1.ClusterRole(
            f"{name}-edit-ml-resources",
            metadata={
                "name": "mlkit-edit-ml-resources",
                "labels": {**PART_OF, "rbac.authorization.k8s.io/aggregate-to-edit": "true"},
            },
            rules=[
                {
                    "api_groups": ["sparkoperator.k8s.io"],
                    "resources": ["sparkapplications", "scheduledsparkapplications"],
                    "verbs": ["*"],
                },
                {"api_groups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"], "verbs": ["*"]},
                {
                    "api_groups": ["monitoring.coreos.com"],
                    # alertmanagerconfigs: a team routes its own alerts (charts/drift-monitor).
                    "resources": ["servicemonitors", "podmonitors", "prometheusrules", "alertmanagerconfigs"],
                    "verbs": ["*"],
                },
            ],
            opts=pulumi.ResourceOptions(parent=self, provider=target.provider),
        )
        self.register_outputs({})


class TeamWorkspace(PlatformComponent):
    """``mlflow_uri``, ``pushgateway``: the tracking server's and the Pushgateway's in-cluster URLs, None where
    MLflow or monitoring is off; both go into the profile."""

    def __init__(
        self,
        name: str,
        target: ClusterTarget,
        team: Team,
        mlflow_uri: str | None = None,
        pushgateway: str | None = None,
        opts=None,
    ):
        super().__init__("TeamWorkspace", name, target, opts)
        self.pushgateway = pushgateway
        ns = team.name
        self.namespace_resource = self.namespace(ns, "restricted", {TEAM_LABEL: ns})
        after_ns = self.namespace_resource
        quota = team.quotas
        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata={"name": "team-quota", "namespace": ns, "labels": PART_OF},
            spec={
                "hard": {
                    "requests.cpu": quota.cpu,
                    "requests.memory": quota.memory,
                    "limits.memory": quota.memory,
                    "requests.nvidia.com/gpu": str(quota.gpu),
                    "requests.storage": quota.storage,
                    "persistentvolumeclaims": "20",
                }
            },
            opts=self.opts(after_ns),
        )
        # Quotas on requests need every container to state them: these are the defaults.
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata={"name": "team-defaults", "namespace": ns, "labels": PART_OF},
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default_request": {"cpu": "100m", "memory": "256Mi"},
                        "default": {"cpu": "1", "memory": "2Gi"},
                    }
                ]
            },
            opts=self.opts(after_ns),
        )
        subjects: list[k8s.rbac.v1.SubjectArgsDict] = [
            {"kind": kind, "name": name, "api_group": "rbac.authorization.k8s.io"}
            for kind, names in (("Group", team.groups), ("User", team.members))
            for name in names
        ]
        if subjects:
            k8s.rbac.v1.RoleBinding(
                f"{name}-edit",
                metadata={"name": "team-edit", "namespace": ns, "labels": PART_OF},
                role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                subjects=subjects,
                opts=self.opts(after_ns),
            )
        self._network_policies(ns, after_ns)

        self.bindings = {}
        for account in SERVICE_ACCOUNTS:
            _, self.bindings[account] = bound_service_account(self, account, account, ns, team_prefix(ns), after_ns)
        # The Spark driver starts and watches its executors.
        k8s.rbac.v1.Role(
            f"{name}-spark-driver",
            metadata={"name": "spark-driver", "namespace": ns, "labels": PART_OF},
            rules=[
                {
                    "api_groups": [""],
                    "resources": ["pods", "services", "configmaps", "persistentvolumeclaims"],
                    "verbs": ["create", "get", "list", "watch", "update", "patch", "delete", "deletecollection"],
                }
            ],
            opts=self.opts(after_ns),
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-spark-driver",
            metadata={"name": "spark-driver", "namespace": ns, "labels": PART_OF},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": "spark-driver"},
            subjects=[{"kind": "ServiceAccount", "name": "spark", "namespace": ns}],
            opts=self.opts(after_ns),
        )
        self.feature_store = target.object_store.uri(f"{team_prefix(ns)}/features")
        hadoop_configmap(self, ns, after_ns)
        self.profile = self._profile(ns, mlflow_uri)
        k8s.core.v1.ConfigMap(
            f"{name}-profile",
            metadata={"name": PROFILE_CONFIGMAP, "namespace": ns, "labels": PART_OF},
            data={PROFILE_KEY: self.profile},
            opts=self.opts(after_ns),
        )
        self.register_outputs({"featureStore": self.feature_store, "profile": self.profile})

    def _profile(self, ns: str, mlflow_uri: str | None) -> pulumi.Output[str]:
        """The team profile's JSON, validated by the contract's model (mlkit_contract.TeamProfile)."""
        target, store = self.target, self.target.object_store
        spark, models = self.bindings[SPARK_ACCOUNT], self.bindings[MODELS_ACCOUNT]
        if spark.pod_labels != models.pod_labels:
            raise ValueError(
                f"target {target.name}: the team's service accounts need different pod labels "
                f"({spark.pod_labels} and {models.pod_labels}); the team profile carries one set"
            )

        def keys(account: str) -> str | None:
            return store_keys_secret(account) if self.bindings[account].credentials else None

        def build(resolved: dict) -> str:
            root = resolved["root"]
            profile = {
                "team": ns,
                "namespace": ns,
                "root": root,
                "featureStore": f"{root}/features",
                "models": f"{root}/models",
                "requestLogs": f"{root}/request-logs",
                "objectStore": {
                    "scheme": store.scheme,
                    "bucket": resolved["bucket"],
                    "endpoint": resolved["endpoint"],
                    "region": store.region,
                    "account": resolved["account"],
                    "pathStyle": store.path_style,
                },
                "serviceAccounts": {"spark": SPARK_ACCOUNT, "models": MODELS_ACCOUNT},
                "podLabels": dict(spark.pod_labels),
                "storeKeysSecret": {"spark": keys(SPARK_ACCOUNT), "models": keys(MODELS_ACCOUNT)},
                "hadoopConf": {k: str(v) for k, v in resolved["hadoop"].items()},
                "hadoopConfigMap": HADOOP_CONFIGMAP,
                "gpu": {
                    "resourceName": target.gpu.resource_name,
                    "nodeSelector": dict(target.gpu.node_selector),
                    "tolerations": list(target.gpu.tolerations),
                },
                "pools": {
                    pool: {"nodeSelector": p.node_selector, "tolerations": p.tolerations}
                    for pool, p in sorted(target.placements().items())
                },
                "mlflow": {"trackingUri": mlflow_uri, "credentialsSecret": CREDENTIALS_SECRET},
                "pushgateway": self.pushgateway,
                "imagePullPolicy": target.image_pull_policy,
            }
            return TeamProfile.model_validate(profile).to_json()

        return pulumi.Output.all(
            root=store.uri(team_prefix(ns)),
            bucket=store.bucket,
            endpoint=store.endpoint,
            account=store.account,
            hadoop=pulumi.Output.all(**target.hadoop_conf()),
        ).apply(build)

    def _network_policies(self, ns: str, after_ns) -> None:
        def policy(key: str, spec: k8s.networking.v1.NetworkPolicySpecArgsDict) -> None:
            k8s.networking.v1.NetworkPolicy(
                f"{self.name}-{key}",
                metadata={"name": key, "namespace": ns, "labels": PART_OF},
                spec=spec,
                opts=self.opts(after_ns),
            )

        policy("default-deny", {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]})
        policy(
            "same-namespace",
            {
                "pod_selector": {},
                "policy_types": ["Ingress", "Egress"],
                "ingress": [{"from_": [{"pod_selector": {}}]}],
                "egress": [{"to": [{"pod_selector": {}}]}],
            },
        )
        policy(
            "dns",
            {
                "pod_selector": {},
                "policy_types": ["Egress"],
                "egress": [
                    {
                        "to": [namespaces_named("kube-system")],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        )
        platform: list[k8s.networking.v1.NetworkPolicyEgressRuleArgsDict] = [
            {"to": [namespaces_named(*PLATFORM_NAMESPACES)]}
        ]
        if self.pushgateway:
            # The batch jobs push their metrics; the rest of the monitoring namespace stays closed.
            pushgateway: k8s.networking.v1.NetworkPolicyPeerArgsDict = {
                **namespaces_named(monitoring.NAMESPACE),
                "pod_selector": {"match_labels": monitoring.PUSHGATEWAY_POD},
            }
            platform.append({"to": [pushgateway], "ports": [{"protocol": "TCP", "port": monitoring.PUSHGATEWAY_PORT}]})
        policy("platform-services", {"pod_selector": {}, "policy_types": ["Egress"], "egress": platform})
        # The Kubernetes API (Spark drivers start executors) and the cloud object store are outside the pod network.
        policy(
            "https-out",
            {
                "pod_selector": {},
                "policy_types": ["Egress"],
                "egress": [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}],
            },
        )
        if self.target.egress:
            # What the target's workload identity needs (GKE: the metadata server handing out tokens).
            policy(
                "target-identity", {"pod_selector": {}, "policy_types": ["Egress"], "egress": list(self.target.egress)}
            )
        policy(
            "from-platform",
            {
                "pod_selector": {},
                "policy_types": ["Ingress"],
                "ingress": [{"from_": [namespaces_named(monitoring.NAMESPACE, "seldon-system", "spark-operator")]}],
            },
        )

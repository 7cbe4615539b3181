"""The team profile: every fact about a team's place on the platform that a chart or workload needs.

One per team, written by infra (``TeamWorkspace``) into the ConfigMap ``mlkit-team-profile``
(key ``profile.json``) of the team's namespace and exported as the stack output ``teamProfiles``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

PROFILE_CONFIGMAP = "mlkit-team-profile"
PROFILE_KEY = "profile.json"
# Where the charts mount that ConfigMap in every workload pod, and where workloads look for it.
PROFILE_MOUNT = f"/etc/mlkit/profile/{PROFILE_KEY}"
# The team's MLflow user (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD), a Secret in its namespace.
CREDENTIALS_SECRET = "mlflow-credentials"

Toleration = dict[str, str]


class ProfileModel(BaseModel):
    """camelCase keys, unknown keys rejected, immutable: a profile is read, never patched."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True, populate_by_name=True)


class ObjectStore(ProfileModel):
    """The platform bucket as clients address it."""

    scheme: Literal["s3", "gs", "abfss"]
    bucket: str
    endpoint: str | None = None  # None: the cloud's own endpoint
    region: str | None = None
    account: str | None = None  # the Azure storage account holding the container
    path_style: bool = False


class ServiceAccounts(ProfileModel):
    """What the team's workloads run as; each is bound by the target to the team's root alone."""

    spark: str  # Spark drivers and executors
    models: str  # training, serving, everything else


class StoreKeysSecrets(ProfileModel):
    """Per service account, the Secret of object-store keys pods load with ``envFrom``; None: the target's identity needs none."""

    spark: str | None
    models: str | None


class Placement(ProfileModel):
    """How a pod lands on one node pool."""

    node_selector: dict[str, str]
    tolerations: list[Toleration]


class Gpu(ProfileModel):
    """How a GPU pod reaches GPU nodes."""

    resource_name: str
    node_selector: dict[str, str]
    tolerations: list[Toleration]


class Mlflow(ProfileModel):
    tracking_uri: str | None  # None: MLflow is off on this platform
    credentials_secret: str = CREDENTIALS_SECRET


class TeamProfile(ProfileModel):
    """One team's profile. Every store path in it lies inside ``root``, the prefix the team's identity is granted."""

    schema_version: Literal[1] = 1
    team: str
    namespace: str
    root: str  # e.g. s3://<bucket>/teams/<team>
    feature_store: str
    models: str
    request_logs: str
    object_store: ObjectStore
    service_accounts: ServiceAccounts
    pod_labels: dict[str, str]  # on every pod running as a team service account (the target's workload identity)
    store_keys_secret: StoreKeysSecrets
    hadoop_conf: dict[str, str]  # Spark's fs.* settings for this target
    hadoop_config_map: str  # the ConfigMap in the namespace holding them as core-site.xml
    gpu: Gpu
    pools: dict[str, Placement]
    mlflow: Mlflow
    # The platform's Prometheus Pushgateway (in-cluster URL), where batch jobs push their metrics; None: monitoring is off.
    pushgateway: str | None = None
    # How kubelets pull the kit's images: Always, so each start checks the pod's right to the image (the tags are
    # immutable pins); IfNotPresent where the target side-loads images into its nodes (kind), with no registry.
    image_pull_policy: Literal["Always", "IfNotPresent"] = "Always"

    @model_validator(mode="after")
    def _paths_inside_root(self) -> TeamProfile:
        for field in ("feature_store", "models", "request_logs"):
            if not self.contains(getattr(self, field)):
                raise ValueError(
                    f"{to_camel(field)} {getattr(self, field)!r} is not inside the team root {self.root!r}"
                )
        return self

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` is the team root or lies under it (no ``.``/``..`` segments that could climb out)."""
        root = self.root.rstrip("/")
        if uri != root and not uri.startswith(root + "/"):
            return False
        return not any(part in (".", "..") for part in uri[len(root) :].split("/"))

    def to_json(self) -> str:
        """The JSON published in the ConfigMap and the stack output (camelCase keys, stable order)."""
        return self.model_dump_json(by_alias=True, indent=2)

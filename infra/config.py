"""Building blocks of the stack-config schema, shared by every target.

Keys are camelCase in stack files (Pulumi's convention) and snake_case in Python.
Defaults are the safe choice: encryption on, public access off, GPU pools scale to zero.
Each target's own block lives beside its provisioning code in ``infra/clouds/<target>.py``
and subclasses :class:`TargetConfig`; ``infra/stack.py`` assembles the whole schema.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra import versions


class ConfigModel(BaseModel):
    """Base of every config block: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True)


# --- reusable field types -------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-safe name: use lowercase letters, digits and '-', "
            "start with a letter, end with a letter or digit, at most 63 characters"
        )
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity: expected e.g. '500m', '4', '16Gi'")
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR block: expected e.g. '10.0.0.0/16'") from None
    return value


def _kubernetes_version(value: str) -> str:
    match = re.fullmatch(r"1\.(\d+)", value)
    if not match or int(match.group(1)) < 30:
        raise ValueError(
            f"{value!r} is not a supported Kubernetes minor version: expected '1.30' or later, e.g. '1.34'"
        )
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Quantity = Annotated[str, AfterValidator(_quantity)]
Cidr = Annotated[str, AfterValidator(_cidr)]
KubernetesVersion = Annotated[str, AfterValidator(_kubernetes_version)]


class SecretRef(ConfigModel):
    """A value encrypted by ``pulumi config set --secret``; the stack file holds only ciphertext."""

    secure: str


def _secret(value: Any, info: ValidationInfo) -> SecretRef | str:
    # Under `pulumi up` secrets arrive decrypted; in a stack file they must be ciphertext.
    if isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str):
        return SecretRef(secure=value["secure"])
    if isinstance(value, str):
        if (info.context or {}).get("source") == "pulumi":
            return value
        raise ValueError(
            "secrets may not be written in plain text: store it with "
            "`pulumi config set --secret --path '<key>' <value>`"
        )
    raise ValueError("expected a pulumi secret: {secure: <ciphertext>} written by `pulumi config set --secret`")


Secret = Annotated[SecretRef | str, PlainValidator(_secret, json_schema_input_type=SecretRef)]


# --- node pools ------------------------------------------------------------------------


class Taint(ConfigModel):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class GpuSpec(ConfigModel):
    """GPUs per node. ``type`` is cloud-neutral (t4, l4, a10g, a100, h100, ...); each target maps it."""

    type: str
    count: int = Field(default=1, ge=1, le=16)


class NodePool(ConfigModel):
    """One autoscaling group of identical nodes.

    minSize defaults to 0 for GPU pools (they cost money idle) and 1 for CPU pools.
    Changing machineType or gpu replaces the pool's nodes.
    """

    name: DnsLabel
    machine_type: str | None = None
    min_size: int = Field(ge=0)
    max_size: int = Field(ge=1, le=1000)
    spot: bool = False
    gpu: GpuSpec | None = None
    disk_size_gb: int = Field(default=100, ge=20, le=4096)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    min_size_reason: str | None = Field(
        default=None,
        min_length=1,
        description="why a GPU pool keeps minSize nodes running when idle (the policy pack asks for minSize 0 otherwise)",
    )

    @model_validator(mode="before")
    @classmethod
    def _gpu_pools_start_at_zero(cls, data: Any) -> Any:
        if isinstance(data, dict) and "minSize" not in data:
            data = {**data, "minSize": 0 if data.get("gpu") else 1}
        return data

    @model_validator(mode="after")
    def _min_not_above_max(self) -> NodePool:
        if self.min_size > self.max_size:
            raise ValueError(f"minSize ({self.min_size}) must not be greater than maxSize ({self.max_size})")
        return self

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not _LABEL_NAME.match(key):
                raise ValueError(f"label key {key!r} is not a valid Kubernetes label name")
            if not _LABEL_VALUE.match(value):
                raise ValueError(f"label {key!r} has value {value!r}, which is not a valid Kubernetes label value")
        return labels


# --- object storage --------------------------------------------------------------------


class ObjectStorage(ConfigModel):
    """The platform bucket: feature tables, model artifacts, request logs, pipeline roots."""

    bucket: str
    versioning: bool = True
    encryption: bool = True
    block_public_access: bool = True
    noncurrent_version_days: int = Field(
        default=30, ge=1, description="delete overwritten object versions after N days"
    )
    retention_days: int | None = Field(default=None, ge=1, description="delete objects after N days; unset keeps them")
    force_destroy: bool = Field(default=False, description="let `pulumi destroy` delete a non-empty bucket")


# --- platform components ---------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


class Component(ConfigModel):
    enabled: bool = True
    version: str


class GpuPlugin(Component):
    version: str = versions.NVIDIA_DEVICE_PLUGIN


class SparkOperator(Component):
    version: str = versions.SPARK_OPERATOR


class KubeflowPipelines(Component):
    version: str = versions.KUBEFLOW_PIPELINES


class SeldonCore(Component):
    """Seldon Core v1. Versions after 1.17.1 are under the Business Source License 1.1."""

    version: str = versions.SELDON_CORE
    accept_license: Literal["BSL-1.1"] | None = Field(
        default=None, description="set to 'BSL-1.1' to run a Seldon Core release newer than 1.17.1"
    )

    @model_validator(mode="after")
    def _licence_gate(self) -> SeldonCore:
        newer_than_apache = _version_tuple(self.version) > _version_tuple(versions.SELDON_CORE_LAST_APACHE)
        if self.enabled and newer_than_apache and self.accept_license != "BSL-1.1":
            raise ValueError(
                f"Seldon Core {self.version} is licensed under the Business Source License 1.1 "
                f"(only {versions.SELDON_CORE_LAST_APACHE} and older are Apache-2.0); "
                "set acceptLicense: BSL-1.1 to use it, or keep the default version"
            )
        return self


class Mlflow(Component):
    version: str = versions.MLFLOW
    database_url: Secret | None = Field(
        default=None, description="a managed PostgreSQL URL; unset runs PostgreSQL in the cluster"
    )


# --- monitoring: alert thresholds -------------------------------------------------------

# Prometheus's duration syntax, as the PrometheusRule CRD checks it (`for`, range windows).
_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
_DURATION_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def _duration(value: str) -> str:
    if not value or not _DURATION.match(value):
        raise ValueError(
            f"{value!r} is not a Prometheus duration: expected units in the order y, w, d, h, m, s, ms, "
            "e.g. '30s', '5m', '1h30m' or '0'"
        )
    return value


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus duration ('1h30m' -> 5400)."""
    return sum(int(n) * _DURATION_UNITS[unit] for n, unit in re.findall(r"(\d+)(ms|[ywdhms])", value))


def _positive_duration(value: str) -> str:
    if duration_seconds(_duration(value)) <= 0:
        raise ValueError(f"{value!r} is an empty window: expected a duration above zero, e.g. '5m'")
    return value


Duration = Annotated[str, AfterValidator(_duration)]
Window = Annotated[str, AfterValidator(_positive_duration)]


def _for(default: str) -> Any:
    """The ``for`` key of an alert (a Python keyword, hence the alias)."""
    return Field(
        default=default,
        alias="for",
        description="how long the condition must hold before the alert fires (a Prometheus duration)",
        json_schema_extra={"pattern": _DURATION.pattern},
    )


# The serving latency histogram's largest finite bucket (workloads/serving/metrics.py, LATENCY): a
# quantile that falls above it reads as this bound, so a p99 threshold at or above it could never fire.
LATENCY_TOP_BUCKET_SECONDS = 10.0


class AlertRule(ConfigModel):
    """One alert of the platform's PrometheusRule; ``for``: how long its condition must hold before it fires."""

    for_: Duration = _for("10m")


class PushedAlert(AlertRule):
    """An alert on a series the drift job pushes: a missed scrape of the Pushgateway must not resolve it, or the
    retraining trigger would see it fire again as a new episode and start a second run."""

    keep_firing_for: Duration = Field(
        default="10m",
        description="how long it stays firing once its condition stops holding (a Prometheus duration; 0s: off)",
    )


class FeatureDriftAlert(PushedAlert):
    """The largest feature PSI of a model version (mlkit_drift_max_psi) above ``psi``."""

    psi: float = Field(default=0.2, gt=0, le=5, description="0.1: a moderate shift, 0.25 and up: a large one")
    for_: Duration = _for("30m")
    retrain: bool = Field(default=True, description="label the alert mlkit_action=retrain (the retraining trigger)")


class PredictionDriftAlert(PushedAlert):
    """The PSI of the model's score distribution against its test set's (mlkit_drift_prediction_psi) above ``psi``."""

    psi: float = Field(default=0.2, gt=0, le=5)
    for_: Duration = _for("30m")
    retrain: bool = Field(default=False, description="label the alert mlkit_action=retrain")


class RocAucAlert(PushedAlert):
    """ROC AUC over the window's feedback labels (mlkit_model_roc_auc) below ``floor``."""

    floor: float = Field(default=0.7, ge=0.5, lt=1, description="0.5 is a coin toss")
    for_: Duration = _for("30m")
    retrain: bool = Field(default=True, description="label the alert mlkit_action=retrain")


class DriftJobStaleAlert(AlertRule):
    """The drift job's last run for a model version (mlkit_drift_last_run_timestamp_seconds) older than ``maxAge``."""

    max_age: Window = Field(default="3h", description="a few times the drift job's schedule")


class DriftNoDataAlert(AlertRule):
    """The drift job found no usable served rows (mlkit_drift_no_data == 1): drift is unknown, not zero."""

    for_: Duration = _for("2h")


class LatencyAlert(AlertRule):
    """p99 of the model server's time per request (mlkit_predict_inner_seconds) above ``seconds``."""

    seconds: float = Field(default=0.5, gt=0)

    @field_validator("seconds")
    @classmethod
    def _below_top_bucket(cls, value: float) -> float:
        if value >= LATENCY_TOP_BUCKET_SECONDS:
            raise ValueError(
                f"{value:g} s is not below the latency histogram's largest bucket ({LATENCY_TOP_BUCKET_SECONDS:g} s): "
                "a p99 above it reads as that bound, so the alert could never fire"
            )
        return value


class ServerErrorsAlert(AlertRule):
    """The share of a SeldonDeployment's requests answered 5xx (Seldon's executor) above ``ratio``."""

    ratio: float = Field(default=0.05, gt=0, le=1)
    for_: Duration = _for("5m")


class RequestLogDropsAlert(AlertRule):
    """More than ``count`` request-log records dropped (mlkit_request_log_dropped_total) within ``window``."""

    count: int = Field(default=0, ge=0)
    window: Window = "15m"
    for_: Duration = _for("0s")


class QuarantineAlert(AlertRule):
    """The feature job's last batch quarantined more than ``ratio`` of the rows it read (mlkit_feature_job_rows)."""

    ratio: float = Field(default=0.05, gt=0, le=1)
    for_: Duration = _for("5m")


class Alerts(ConfigModel):
    """Thresholds and ``for`` durations of the platform's alert rules (infra/components/alerts.py)."""

    feature_drift: FeatureDriftAlert = FeatureDriftAlert()
    prediction_drift: PredictionDriftAlert = PredictionDriftAlert()
    roc_auc: RocAucAlert = RocAucAlert()
    drift_job_stale: DriftJobStaleAlert = DriftJobStaleAlert()
    drift_no_data: DriftNoDataAlert = DriftNoDataAlert()
    latency_p99: LatencyAlert = LatencyAlert()
    server_errors: ServerErrorsAlert = ServerErrorsAlert()
    request_log_drops: RequestLogDropsAlert = RequestLogDropsAlert()
    quarantine: QuarantineAlert = QuarantineAlert()
    rate_window: Window = Field(
        default="5m", description="the range of rate() in the serving alerts: at least a few scrape intervals"
    )


class Monitoring(Component):
    version: str = versions.KUBE_PROMETHEUS_STACK
    alerts: Alerts = Alerts()


class Platform(ConfigModel):
    gpu_plugin: GpuPlugin = GpuPlugin()
    spark_operator: SparkOperator = SparkOperator()
    kubeflow_pipelines: KubeflowPipelines = KubeflowPipelines()
    seldon_core: SeldonCore = SeldonCore()
    mlflow: Mlflow = Mlflow()
    monitoring: Monitoring = Monitoring()


# --- where charts and images come from ---------------------------------------------------


def _project_path(value: str) -> Path:
    # Relative paths are relative to the project root (where Pulumi.yaml is), wherever a command runs.
    from infra.stack import REPO_ROOT

    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


ProjectPath = Annotated[str, AfterValidator(lambda v: str(_project_path(v)))]


class ChartSource(ConfigModel):
    """Where the third-party charts and the Kubeflow Pipelines manifests come from.

    Unset: each project's public repository (and GitHub for KFP). For clusters without internet
    egress, point at a directory of charts (``<directory>/<chart>/Chart.yaml``) or an OCI registry
    holding them at the pinned versions, and at a local copy of KFP's ``manifests/kustomize``;
    ``mirrors`` maps the remote kustomize bases that copy references to local directories.
    """

    directory: ProjectPath | None = Field(default=None, description="a directory holding one directory per chart")
    oci_registry: str | None = Field(
        default=None, pattern=r"^oci://[^\s/]+(/[^\s]*)?$", description="e.g. oci://registry.internal/charts"
    )
    kfp_manifests: ProjectPath | None = Field(
        default=None, description="a local copy of kubeflow/pipelines manifests/kustomize at the pinned tag"
    )
    mirrors: dict[str, ProjectPath] = Field(
        default_factory=dict, description="remote kustomize base URL prefix -> local directory"
    )

    @model_validator(mode="after")
    def _one_chart_source(self) -> ChartSource:
        if self.directory and self.oci_registry:
            raise ValueError("set directory or ociRegistry, not both: each chart must have one source")
        return self


class Images(ConfigModel):
    """The registry holding the images the kit builds (`make images REGISTRY=...` pushes them)."""

    registry: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$",
        description="e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlkit; required where a kit image runs",
    )
    tag: str = Field(default=versions.KIT_IMAGE_TAG, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

    def image(self, name: str) -> str:
        """The reference of one kit image, e.g. registry/mlkit-mlflow:3.17.0-1."""
        assert self.registry, "validation requires a registry where a kit image runs"
        return f"{self.registry}/{name}:{self.tag}"


# --- policy pack -----------------------------------------------------------------------

# The policies of infra/policies.py (`make policy`), by name.
POLICY_NAMES = (
    "object-store-private-encrypted-tls",
    "gpu-pools-scale-to-zero",
    "no-static-cloud-keys",
    "kit-workloads-hardened",
    "no-floating-image-tags",
    "seldon-core-licence",
)


class Policy(ConfigModel):
    """How `make policy` treats each policy of the kit's pack: mandatory (fails the preview) unless named here."""

    levels: dict[str, Literal["mandatory", "advisory", "disabled"]] = Field(default_factory=dict)

    @field_validator("levels")
    @classmethod
    def _known_policies(cls, levels: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(levels) - set(POLICY_NAMES))
        if unknown:
            raise ValueError(f"unknown policy {', '.join(unknown)}: the pack has {', '.join(POLICY_NAMES)}")
        return levels


# --- teams -----------------------------------------------------------------------------


class Quotas(ConfigModel):
    """Namespace ResourceQuota: requests, GPUs and persistent storage for one team."""

    cpu: Quantity = "8"
    memory: Quantity = "32Gi"
    gpu: int = Field(default=0, ge=0, description="requests.nvidia.com/gpu")
    storage: Quantity = "200Gi"


class Team(ConfigModel):
    """A self-service workspace: namespace, quotas, RBAC, identity and a storage prefix."""

    name: DnsLabel
    members: list[str] = Field(default_factory=list, description="users given edit rights in the namespace")
    groups: list[str] = Field(default_factory=list, description="identity-provider groups given edit rights")
    quotas: Quotas = Quotas()


# --- cluster -----------------------------------------------------------------------------


class Kubernetes(ConfigModel):
    version: KubernetesVersion = versions.KUBERNETES


# --- the target contract on the config side ------------------------------------------------


class TargetConfig(ConfigModel):
    """Base of each target's block, ``mlkit:target: {type: <target>, ...}``: pure data and its checks.

    Each target (infra/clouds/<target>.py) subclasses it with ``type: Literal["<target>"]`` and its own
    keys, fills in the class-level facts below, and registers a plug-in (infra/clouds/registry.py)
    that provisions it. The shared checks use the facts, so no other module asks which target it is.
    """

    type: str
    # Cloud-neutral GPU type -> regex its machine types match. Empty: no GPU nodes.
    gpu_machine_types: ClassVar[dict[str, str]] = {}
    # Regex and description for node-pool names, which clouds restrict further than DNS.
    pool_name_rule: ClassVar[tuple[str, str]] = (_DNS_LABEL.pattern, "a DNS-safe name")
    # Whether this target provisions nodes (and so needs machine types and a system pool).
    provisions_nodes: ClassVar[bool] = True
    # Regex and description the cluster's name (`mlkit-<stack>`) must match on this target.
    cluster_name_rule: ClassVar[tuple[str, str]] = (r".+", "any name")
    # Whether workloads reach the object store with keys (no workload identity here): the policy pack
    # refuses cloud keys in Secrets everywhere else.
    store_keys: ClassVar[bool] = False

    def bucket_name_problem(self, name: str) -> str | None:
        """Why ``name`` is not a valid bucket name here, or None. S3/GCS rules by default."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name) or ".." in name:
            return (
                f"{name!r} is not a valid bucket name: 3-63 lowercase letters, digits, '-' or '.', "
                "starting and ending with a letter or digit"
            )
        return None

    def gpu_counts(self, machine_type: str) -> tuple[int, ...] | None:
        """The GPU counts ``machine_type`` can carry, or None where any count goes (or it is unknown)."""
        return None

    def kubernetes_problems(self, version: str) -> list[str]:
        """Why this target cannot run Kubernetes ``version`` (the stack's ``kubernetes.version``)."""
        return []

    def team_problems(self, team: Team) -> list[tuple[str, str]]:
        """Problems with one team on this target (e.g. identities no cloud maps), as (field, message) pairs."""
        return []

    def block_problems(self, teams: list[Team]) -> list[tuple[str, str]]:
        """Problems of this block that depend on the stack's teams, as (field in the block, message) pairs."""
        return []

    def node_pool_problems(self, pool: NodePool) -> list[tuple[str, str]]:
        """Problems with one pool on this target, as (field, message) pairs."""
        problems: list[tuple[str, str]] = []
        pattern, description = self.pool_name_rule
        if not re.fullmatch(pattern, pool.name):
            problems.append(
                ("name", f"{pool.name!r} is not a valid node pool name on this target: expected {description}")
            )
        if self.provisions_nodes and not pool.machine_type:
            problems.append(("machineType", "is required on this target"))
        if pool.gpu:
            problems.extend(self._gpu_problems(pool))
        return problems

    def _gpu_problems(self, pool: NodePool) -> list[tuple[str, str]]:
        gpu = pool.gpu
        assert gpu is not None
        if not self.gpu_machine_types:
            return [("gpu", "this target has no GPU nodes; remove gpu from this pool")]
        if gpu.type not in self.gpu_machine_types:
            offered = ", ".join(sorted(self.gpu_machine_types))
            return [("gpu.type", f"GPU type {gpu.type!r} is not offered on this target; expected one of: {offered}")]
        if pool.machine_type and not re.match(self.gpu_machine_types[gpu.type], pool.machine_type):
            return [
                (
                    "machineType",
                    f"{pool.machine_type!r} does not carry {gpu.type} GPUs; "
                    f"expected a machine type matching {self.gpu_machine_types[gpu.type]!r}",
                )
            ]
        counts = self.gpu_counts(pool.machine_type) if pool.machine_type else None
        if counts and gpu.count not in counts:
            if len(counts) == 1:
                fix = f"{pool.machine_type} carries {counts[0]}; set count: {counts[0]}"
            else:
                fix = f"{pool.machine_type} takes one of {', '.join(map(str, counts))}"
            return [("gpu.count", f"is {gpu.count}, but {fix}")]
        return []


def cidr_overlaps(*cidrs: str) -> list[tuple[str, str]]:
    """Pairs of CIDR blocks that overlap."""
    networks = [ipaddress.ip_network(c) for c in cidrs]
    return [(str(a), str(b)) for i, a in enumerate(networks) for b in networks[i + 1 :] if a.overlaps(b)]

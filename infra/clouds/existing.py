"""existing target: any cluster reachable by kubeconfig, and any S3-compatible (or cloud) object store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

import pulumi
import yaml
from pydantic import Field, HttpUrl, model_validator

from infra.clouds.common import scheme_conf
from infra.clouds.registry import TargetPlugin, register
from infra.config import ConfigModel, ProjectPath, Secret, TargetConfig, Team
from infra.target import Access, ClusterArgs, ClusterTarget, IdentityBinding, ObjectStore, gpu_scheduling, prefix_of


class StoreKeys(ConfigModel):
    """An S3 key pair, both pulumi secrets."""

    access_key_id: Secret
    secret_access_key: Secret


class ExistingObjectStore(ConfigModel):
    """Where the platform bucket lives. Credentials are pulumi secrets, never plain text.

    The kit cannot mint keys on a store it does not run: the platform's own keys (MLflow's) are
    ``accessKeyId``/``secretAccessKey``; each team's, scoped on the store to ``teams/<team>/``, are
    under ``teamKeys``. A team without its own keys would get the platform's, and with them every
    other team's data: refused unless ``shareKeysWithTeams`` says so.
    """

    scheme: Literal["s3", "gs", "abfss"] = "s3"
    endpoint: HttpUrl | None = Field(default=None, description="S3-compatible endpoint; unset uses the cloud default")
    region: str = "us-east-1"
    path_style: bool = Field(default=True, description="path-style S3 addressing, which most on-prem stores need")
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    team_keys: dict[str, StoreKeys] = Field(
        default_factory=dict, description="team name -> that team's own key pair, scoped on the store to its prefix"
    )
    share_keys_with_teams: bool = Field(
        default=False, description="let teams without teamKeys use the platform's keys (and so reach each other's data)"
    )

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> ExistingObjectStore:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set accessKeyId and secretAccessKey together, or neither")
        if self.scheme != "s3" and (self.access_key_id or self.team_keys):
            raise ValueError(
                f"keys are S3 keys; a {self.scheme}:// store is reached through the cluster's own identity"
            )
        return self

    def keys_of(self, namespace: str) -> tuple[Secret, Secret] | None:
        """The key pair a binding in ``namespace`` gets: the team's own, else the platform's, else none."""
        if namespace in self.team_keys:
            keys = self.team_keys[namespace]
            return keys.access_key_id, keys.secret_access_key
        if self.access_key_id and self.secret_access_key:
            return self.access_key_id, self.secret_access_key
        return None


class ExistingConfig(TargetConfig):
    """``mlkit:target`` with ``type: existing``. Node pools describe the cluster's nodes; nothing is provisioned."""

    type: Literal["existing"]  # pyright: ignore[reportIncompatibleVariableOverride] - each block narrows its tag

    # On-prem GPU nodes carry whatever GPU their owners bought; the type is a label value.
    gpu_machine_types: ClassVar[dict[str, str]] = {
        t: r"" for t in ("t4", "l4", "l40s", "a10", "a10g", "a30", "a40", "v100", "a100", "a100-80gb", "h100", "h200")
    }
    provisions_nodes: ClassVar[bool] = False
    store_keys: ClassVar[bool] = True  # the configured objectStore keys (secrets), in each team namespace

    kubeconfig: ProjectPath | None = Field(
        default=None,
        description="path to a kubeconfig (relative: to the project root); unset uses KUBECONFIG or ~/.kube/config",
    )
    context: str = Field(min_length=1)
    object_store: ExistingObjectStore
    storage_class: str = Field(default="standard", description="the cluster's storage class for platform volumes")
    gpu_device_plugin_managed: bool = Field(
        default=False, description="true where the NVIDIA GPU operator or device plugin already runs"
    )
    simulated: bool = Field(
        default=False,
        description="true for a cluster whose nodes kwok simulates (`make cluster`): no pod runs, "
        "so the platform's admission webhooks are left out",
    )

    def team_problems(self, team: Team) -> list[tuple[str, str]]:
        store = self.object_store
        if store.access_key_id and team.name not in store.team_keys and not store.share_keys_with_teams:
            return [
                (
                    "name",
                    f"team {team.name!r} has no keys of its own on the object store, so it would get the platform's "
                    "and reach every team's data: set mlkit:target.objectStore.teamKeys."
                    f"{team.name} (a key pair scoped to teams/{team.name}/ on the store), "
                    "or shareKeysWithTeams: true to accept that",
                )
            ]
        return []

    def block_problems(self, teams: list[Team]) -> list[tuple[str, str]]:
        names = {t.name for t in teams}
        return [
            (
                f"objectStore.teamKeys.{name}",
                f"names no team of this stack; expected one of: {', '.join(sorted(names))}",
            )
            for name in self.object_store.team_keys
            if name not in names
        ]


def credential_problem(config: ExistingConfig, env: Mapping[str, str], home: Path) -> str | None:
    if config.kubeconfig:
        paths = [Path(config.kubeconfig).expanduser()]
    elif env.get("KUBECONFIG"):
        paths = [Path(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
    else:
        paths = [home / ".kube" / "config"]
    contexts = set()
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        contexts |= {c.get("name") for c in document.get("contexts") or [] if isinstance(c, dict)}
    if config.context not in contexts:
        where = ", ".join(str(p) for p in paths)
        fix = "start it with `make cluster`" if config.simulated else "get a kubeconfig from the cluster's admins"
        return f"kubeconfig context {config.context!r} not found in {where}; {fix}"
    return None


def preflight_problems(config: ExistingConfig) -> list[str]:
    return cluster_problems(config.kubeconfig, config.context)


class ExistingCluster(pulumi.ComponentResource, ClusterTarget):
    """A cluster someone else runs, reached by kubeconfig context; the object store named in config."""

    def __init__(self, name: str, args: ClusterArgs[ExistingConfig], opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:ExistingCluster", name, None, opts)
        import pulumi_kubernetes as k8s

        cfg = args.config
        self.name, self.node_pools, self._store = name, args.node_pools, cfg.object_store
        # The path, not its contents: new credentials in the same file (a rotated certificate, a restarted
        # test cluster) must not read as a new cluster and replace everything on it.
        kubeconfig = cfg.kubeconfig
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=kubeconfig, context=cfg.context, opts=pulumi.ResourceOptions(parent=self)
        )
        store = cfg.object_store
        self.object_store = ObjectStore(
            scheme=store.scheme,
            bucket=args.storage.bucket,
            region=store.region,
            endpoint=str(store.endpoint).rstrip("/") if store.endpoint else None,
            path_style=store.path_style,
        )
        self.gpu = gpu_scheduling(list(args.node_pools), device_plugin_managed=cfg.gpu_device_plugin_managed)
        self.storage_class = cfg.storage_class
        self.pods_run = not cfg.simulated
        self.register_outputs({"context": cfg.context})

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        # The kit cannot mint keys on a store it does not run: a binding gets its namespace's keys from config.
        key_prefix = prefix_of(prefix)
        keys = self._store.keys_of(namespace)
        credentials: dict[str, pulumi.Input[str]] | None = None
        if keys:
            credentials = {
                "AWS_ACCESS_KEY_ID": pulumi.Output.secret(_plain(keys[0])),
                "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(_plain(keys[1])),
            }
            if self.object_store.endpoint:
                credentials["MLKIT_S3_ENDPOINT"] = self.object_store.endpoint
        return IdentityBinding(service_account, namespace, key_prefix, access, credentials=credentials)

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        store = self._store
        return scheme_conf(
            store.scheme,
            region=store.region,
            endpoint=self.object_store.endpoint,
            path_style=store.path_style,
            credentials="software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
            if store.keys_of("") or store.team_keys
            else None,
        )


# What the platform creates; a cluster serving none of one of these cannot run it.
REQUIRED_APIS = (
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "rbac.authorization.k8s.io/v1",
    "networking.k8s.io/v1",
    "storage.k8s.io/v1",
    "apiextensions.k8s.io/v1",
    "admissionregistration.k8s.io/v1",
)
OLDEST_MINOR = 30


def cluster_problems(kubeconfig: str | None, context: str) -> list[str]:
    """Why the platform cannot go onto this cluster (unreachable, too old, API groups missing), or []."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return ["kubectl is not on PATH: it checks the existing cluster before anything is created (`mlkit doctor`)"]
    where = f"kubeconfig context {context!r}" + (f" in {kubeconfig}" if kubeconfig else "")
    base = [kubectl, f"--context={context}", "--request-timeout=10s"]
    if kubeconfig:
        base.append(f"--kubeconfig={Path(kubeconfig).expanduser()}")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)

    version = run("get", "--raw", "/version")
    if version.returncode:
        reason = (version.stderr.strip().splitlines() or ["no answer"])[-1]
        return [f"cannot reach the cluster of {where}: {reason}"]
    problems = []
    minor = int("".join(c for c in json.loads(version.stdout).get("minor", "0") if c.isdigit()) or 0)
    if minor < OLDEST_MINOR:
        problems.append(
            f"the cluster of {where} runs Kubernetes 1.{minor}; the platform needs 1.{OLDEST_MINOR} or later"
        )
    served = set(run("api-versions").stdout.split())
    problems += missing_apis(served, where)
    return problems


def missing_apis(served: set[str], where: str) -> list[str]:
    missing = [api for api in REQUIRED_APIS if api not in served]
    return [f"the cluster of {where} does not serve {', '.join(missing)}, which the platform needs"] if missing else []


def _plain(secret) -> str:
    # Under `pulumi up` the config arrives decrypted; a SecretRef means it was read from the file, unresolved.
    if isinstance(secret, str):
        return secret
    raise ValueError("object store credentials are still encrypted: they are only readable under `pulumi up`")


PLUGIN = register(
    TargetPlugin(
        config=ExistingConfig,
        provision=ExistingCluster,
        credential_problem=credential_problem,
        preflight_problems=preflight_problems,
    )
)

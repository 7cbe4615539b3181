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
from pydantic import Field, HttpUrl

from infra.config import ConfigModel, ProjectPath, Secret, TargetConfig
from infra.target import Access, ClusterTarget, IdentityBinding, ObjectStore, gpu_scheduling, prefix_of


class ExistingObjectStore(ConfigModel):
    """Where the platform bucket lives. Credentials are pulumi secrets, never plain text."""

    scheme: Literal["s3", "gs", "abfss"] = "s3"
    endpoint: HttpUrl | None = Field(None, description="S3-compatible endpoint; unset uses the cloud default")
    region: str = "us-east-1"
    path_style: bool = Field(True, description="path-style S3 addressing, which most on-prem stores need")
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None


class ExistingConfig(TargetConfig):
    """The ``existing:`` block of a stack. Node pools describe the cluster's nodes; nothing is provisioned."""

    # On-prem GPU nodes carry whatever GPU their owners bought; the type is a label value.
    gpu_machine_types: ClassVar[dict[str, str]] = {
        t: r"" for t in ("t4", "l4", "l40s", "a10", "a10g", "a30", "a40", "v100", "a100", "a100-80gb", "h100", "h200")
    }
    provisions_nodes: ClassVar[bool] = False

    kubeconfig: ProjectPath | None = Field(
        None,
        description="path to a kubeconfig (relative: to the project root); unset uses KUBECONFIG or ~/.kube/config",
    )
    context: str = Field(min_length=1)
    object_store: ExistingObjectStore
    storage_class: str = Field("standard", description="the cluster's storage class for platform volumes")
    gpu_device_plugin_managed: bool = Field(
        False, description="true where the NVIDIA GPU operator or device plugin already runs"
    )
    simulated: bool = Field(
        False,
        description="true for a cluster whose nodes kwok simulates (`make cluster`): no pod runs, "
        "so the platform's admission webhooks are left out",
    )

    def credential_problem(self, env: Mapping[str, str], home: Path) -> str | None:
        if self.kubeconfig:
            paths = [Path(self.kubeconfig).expanduser()]
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
        if self.context not in contexts:
            where = ", ".join(str(p) for p in paths)
            fix = "start it with `make cluster`" if self.simulated else "get a kubeconfig from the cluster's admins"
            return f"kubeconfig context {self.context!r} not found in {where}; {fix}"
        return None

    def preflight_problems(self) -> list[str]:
        return cluster_problems(self.kubeconfig, self.context)

    def provision(self, name: str, stack, opts=None):
        return ExistingCluster(name, stack, opts)


class ExistingCluster(pulumi.ComponentResource, ClusterTarget):
    """A cluster someone else runs, reached by kubeconfig context; the object store named in config."""

    def __init__(self, name: str, stack, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlkit:clouds:ExistingCluster", name, None, opts)
        import pulumi_kubernetes as k8s

        cfg: ExistingConfig = stack.existing
        self.name, self.node_pools, self._store = name, stack.node_pools, cfg.object_store
        # The path, not its contents: new credentials in the same file (a rotated certificate, a restarted
        # test cluster) must not read as a new cluster and replace everything on it.
        kubeconfig = cfg.kubeconfig
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=kubeconfig, context=cfg.context, opts=pulumi.ResourceOptions(parent=self)
        )
        store = cfg.object_store
        self.object_store = ObjectStore(
            scheme=store.scheme,
            bucket=stack.storage.bucket,
            region=store.region,
            endpoint=str(store.endpoint).rstrip("/") if store.endpoint else None,
            path_style=store.path_style,
        )
        self.gpu = gpu_scheduling(stack.node_pools, device_plugin_managed=cfg.gpu_device_plugin_managed)
        self.storage_class = cfg.storage_class
        self.pods_run = not cfg.simulated
        self.register_outputs({"context": cfg.context})

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        # The kit cannot mint keys on a store it does not run: every binding gets the keys from config.
        # Scope them on the store itself (a user or policy per team) where it supports that.
        key_prefix = prefix_of(prefix)
        store = self._store
        credentials = None
        if store.access_key_id and store.secret_access_key:
            credentials = {
                "AWS_ACCESS_KEY_ID": pulumi.Output.secret(_plain(store.access_key_id)),
                "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(_plain(store.secret_access_key)),
            }
            if self.object_store.endpoint:
                credentials["MLKIT_S3_ENDPOINT"] = self.object_store.endpoint
        return IdentityBinding(service_account, namespace, key_prefix, access, credentials=credentials)

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        conf: dict[str, pulumi.Input[str]] = {
            "fs.s3a.path.style.access": str(self._store.path_style).lower(),
            "fs.s3a.endpoint.region": self._store.region,
        }
        if self.object_store.endpoint:
            conf["fs.s3a.endpoint"] = self.object_store.endpoint
            conf["fs.s3a.aws.credentials.provider"] = "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"
        return conf


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

"""Helpers more than one target needs: kubeconfigs, taints in each API's spelling, bounded names, Hadoop settings."""

from __future__ import annotations

import hashlib
import json

import pulumi

from infra.config import Taint

# AWS and GCP spell taint effects as enums (their taint dicts are written where their SDKs' types check them).
EFFECT_ENUMS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


def taint_string(taint: Taint) -> str:
    """`key=value:Effect`, as kubelet flags and AKS take them."""
    return f"{taint.key}={taint.value}:{taint.effect}" if taint.value else f"{taint.key}:{taint.effect}"


def bounded_name(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit`` characters, else a prefix of it and a hash of the whole: unique, never ending in '-'."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def exec_kubeconfig(
    server: pulumi.Input[str],
    ca_data: pulumi.Input[str],
    cluster: pulumi.Input[str],
    command: str,
    args: list[str] | None = None,
    provide_cluster_info: bool = False,
) -> pulumi.Output[str]:
    """A kubeconfig whose user runs ``command`` for a short-lived token: no static credential in state."""

    def render(values: list) -> str:
        server, ca, name = values
        exec_ = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command, "args": args or []}
        if provide_cluster_info:
            exec_["provideClusterInfo"] = True
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca}}],
                "users": [{"name": name, "user": {"exec": exec_}}],
                "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                "current-context": name,
            }
        )

    return pulumi.Output.secret(pulumi.Output.all(server, ca_data, cluster).apply(render))


# --- what Spark's Hadoop filesystems need, per scheme ------------------------------------------------


def s3a_conf(
    region: pulumi.Input[str] | None = None,
    endpoint: pulumi.Input[str] | None = None,
    path_style: bool = False,
    credentials: str | None = None,
) -> dict[str, pulumi.Input[str]]:
    """S3A: the region, an S3-compatible endpoint if any, and where credentials come from."""
    conf: dict[str, pulumi.Input[str]] = {}
    if region:
        conf["fs.s3a.endpoint.region"] = region
    if endpoint:
        conf["fs.s3a.endpoint"] = endpoint
        conf["fs.s3a.path.style.access"] = str(path_style).lower()
        conf["fs.s3a.connection.ssl.enabled"] = str(not str(endpoint).startswith("http://")).lower()
    elif path_style:
        conf["fs.s3a.path.style.access"] = "true"
    if credentials:
        conf["fs.s3a.aws.credentials.provider"] = credentials
    return conf


def gcs_conf(project: str | None = None) -> dict[str, pulumi.Input[str]]:
    """The GCS connector, authenticating as the pod's Google identity (Workload Identity or the key file in the environment)."""
    conf: dict[str, pulumi.Input[str]] = {
        "fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
        "fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
        "fs.gs.auth.type": "APPLICATION_DEFAULT",
    }
    if project:
        conf["fs.gs.project.id"] = project
    return conf


def abfs_conf() -> dict[str, pulumi.Input[str]]:
    """ABFS exchanging the pod's federated token for an Entra ID token (hadoop-azure 3.4's provider).

    The provider requires the tenant and client id in the configuration; the workload-identity webhook injects
    them, the token file and the authority (sovereign clouds differ) as environment variables, which Hadoop's
    ${env.*} substitution reads in the pod.
    """
    return {
        "fs.azure.account.auth.type": "OAuth",
        "fs.azure.account.oauth.provider.type": "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider",
        "fs.azure.account.oauth2.msi.tenant": "${env.AZURE_TENANT_ID}",
        "fs.azure.account.oauth2.client.id": "${env.AZURE_CLIENT_ID}",
        "fs.azure.account.oauth2.token.file": "${env.AZURE_FEDERATED_TOKEN_FILE}",
        "fs.azure.account.oauth2.msi.authority": "${env.AZURE_AUTHORITY_HOST}",
    }


def scheme_conf(
    scheme: str,
    region: pulumi.Input[str] | None = None,
    endpoint: pulumi.Input[str] | None = None,
    path_style: bool = False,
    credentials: str | None = None,
) -> dict[str, pulumi.Input[str]]:
    """The settings of whichever filesystem ``scheme`` names; the S3 ones apply to s3 only."""
    if scheme == "gs":
        return gcs_conf()
    if scheme == "abfss":
        return abfs_conf()
    return s3a_conf(region, endpoint, path_style, credentials)

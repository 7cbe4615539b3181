"""What a user needs on their machine before `pulumi up` on a stack, and how to get what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.clouds import plugin_of
from infra.stack import StackConfig


@dataclass(frozen=True)
class Tool:
    name: str
    purpose: str
    install: str
    version_args: tuple[str, ...] = ("--version",)


TOOLS = {
    t.name: t
    for t in (
        Tool(
            "pulumi",
            "runs the deployment",
            "https://www.pulumi.com/docs/install/ (or `brew install pulumi`)",
            ("version",),
        ),
        Tool(
            "kubectl",
            "talks to the cluster",
            "https://kubernetes.io/docs/tasks/tools/ (or `brew install kubectl`)",
            ("version", "--client"),
        ),
        Tool(
            "helm",
            "renders and lints the kit's charts",
            "`make setup` builds it into .cache/bin; or https://helm.sh/docs/intro/install/",
            ("version", "--short"),
        ),
        Tool(
            "docker", "runs kind's nodes", "https://docs.docker.com/engine/install/ (the engine, not only the client)"
        ),
        Tool(
            "kind",
            "creates the local cluster",
            "`go install sigs.k8s.io/kind@v0.30.0` (or `brew install kind`)",
            ("version",),
        ),
        Tool(
            "aws",
            "AWS credentials and EKS kubeconfig",
            "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
        ),
        Tool(
            "gcloud",
            "GCP credentials and the GKE auth plugin",
            "https://cloud.google.com/sdk/docs/install, then `gcloud components install gke-gcloud-auth-plugin`",
        ),
        Tool("az", "Azure credentials and AKS kubeconfig", "https://learn.microsoft.com/cli/azure/install-azure-cli"),
        Tool(
            "kubelogin",
            "Entra ID tokens for AKS (local accounts are off)",
            "`az aks install-cli`, or https://azure.github.io/kubelogin/install.html",
            ("--version",),
        ),
    )
}
ALWAYS_NEEDED = ("pulumi", "kubectl", "helm")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # the version found, or what is wrong and how to fix it


def run_checks(stack: StackConfig | None, env: Mapping[str, str] | None = None) -> list[Check]:
    """Checks for one stack (or only the common tools when ``stack`` is None)."""
    env = dict(os.environ if env is None else env)
    path = env.get("PATH", "")
    plugin = plugin_of(stack.target) if stack else None
    names = list(ALWAYS_NEEDED) + (list(plugin.required_tools) if plugin else [])
    # A plug-in may need a tool the kit does not describe: check it all the same, under its own name.
    checks = [
        _tool_check(
            TOOLS.get(name) or Tool(name, f"needed by target {stack and stack.target.type}", f"install `{name}`"), path
        )
        for name in names
    ]
    if stack and plugin:
        problem = plugin.credential_problem(stack.target, env, Path(env.get("HOME", "~")).expanduser())
        checks.append(Check(f"{stack.target.type} access", problem is None, problem or "credentials found"))
    checks.append(_state_backend_check(env))
    return checks


def _tool_check(tool: Tool, path: str) -> Check:
    exe = shutil.which(tool.name, path=path)
    if not exe:
        return Check(tool.name, False, f"not found on PATH; needed: {tool.purpose}. Install: {tool.install}")
    try:
        out = subprocess.run([exe, *tool.version_args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check(tool.name, False, f"{exe} does not run ({e}); reinstall: {tool.install}")
    first_line = (out.stdout or out.stderr).strip().splitlines()[:1]
    if out.returncode != 0:
        return Check(tool.name, False, f"`{tool.name} {' '.join(tool.version_args)}` failed: {' '.join(first_line)}")
    return Check(tool.name, True, first_line[0] if first_line else exe)


def _state_backend_check(env: Mapping[str, str]) -> Check:
    backend = env.get("PULUMI_BACKEND_URL", "")
    if not backend.startswith("file://"):  # `make` sets a file backend; unset means `pulumi login`'s choice
        return Check("pulumi state", True, f"backend {backend or 'chosen by `pulumi login`'}")
    if env.get("PULUMI_CONFIG_PASSPHRASE") is not None or env.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        return Check("pulumi state", True, "local file backend; secrets passphrase set")
    return Check(
        "pulumi state",
        False,
        "the local file backend encrypts stack secrets with a passphrase: "
        "export PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)",
    )

"""What `mlkit verify` checks, resolved from the stack's config and outputs, and the cluster it reaches.

Every way the inputs can be wrong (a stack never deployed, a kubeconfig for another cluster, a team that is
not in the stack) ends here as one ``BadInput`` line, before any check starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml
from pydantic import ValidationError

from infra.stack import REPO_ROOT, StackConfig, StackConfigError, load_stack_file, stack_path
from infra.verify.kube import Kube, KubeError, last_line, simulated_nodes
from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_KEY, TeamProfile

# Where a CUDA computation runs by default: a public PyTorch runtime (torch, CUDA, Python; nvidia-smi comes
# from the NVIDIA container runtime on GPU nodes). --gpu-image names another.
DEFAULT_GPU_IMAGE = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
# The kit's training image carries the workload library (its storage layer) and the profile contract.
PROBE_IMAGE = "mlkit-training"


class BadInput(Exception):
    """The inputs name no deployed platform on this cluster; one line says which and why (exit 2)."""


@dataclass(frozen=True)
class Deployment:
    """One deployed stack, as the checks see it."""

    stack: str  # the Pulumi stack name
    config: StackConfig
    outputs: dict
    profiles: dict[str, TeamProfile]  # every team of the stack
    teams: list[str]  # the teams to check (all, or --team)
    kube: Kube
    server: str  # the API server the kubeconfig reaches
    nodes: list[dict]
    simulated: frozenset[str]  # nodes on which no container runs
    probe_image: str
    gpu_image: str
    local_cluster: Path | None  # the kit's own control plane on this machine (`make cluster`), if that is it
    pod_timeout: float = 180
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def other_team(self, team: str) -> str | None:
        return next((t for t in sorted(self.profiles) if t != team), None)

    def gpu_pools(self) -> list[str]:
        return [p.name for p in self.config.node_pools if p.gpu]

    def pool_nodes(self, selector: dict[str, str]) -> set[str]:
        return {
            n["metadata"]["name"]
            for n in self.nodes
            if all(n["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        }


def resolve(
    stack: str,
    *,
    team: str | None = None,
    kubeconfig: Path | None = None,
    context: str | None = None,
    project: Path | None = None,
    probe_image: str | None = None,
    gpu_image: str = DEFAULT_GPU_IMAGE,
    pod_timeout: float = 180,
) -> Deployment:
    """The deployment ``stack`` names, checked against the cluster; BadInput for anything that does not fit."""
    try:
        config = load_stack_file(stack)
    except StackConfigError as e:
        raise BadInput(
            f"{e.source} is not a valid stack: {e.problems[0]} (`mlkit validate {stack}` lists all)"
        ) from None
    name = stack_name(stack)
    outputs = stack_outputs(name, project or project_dir(stack))
    try:
        profiles = {t: TeamProfile.model_validate(p) for t, p in (outputs.get("teamProfiles") or {}).items()}
    except ValidationError as e:
        raise BadInput(f"stack {name}'s output teamProfiles is not a team profile: {e.errors()[0]['msg']}") from None
    if not profiles:
        raise BadInput(f"stack {name} has no teams (mlkit:teams): nothing to verify from a team namespace")
    if team is not None and team not in profiles:
        raise BadInput(f"team {team!r} does not exist in stack {name} (its teams: {', '.join(sorted(profiles))})")
    kube, server = cluster_of(config, name, kubeconfig, context)
    check_same_cluster(kube, server, name, profiles)
    nodes = kube.get("nodes")["items"]
    registry_image = config.images.image(PROBE_IMAGE) if config.images.registry else None
    image = probe_image or registry_image
    if image is None:
        raise BadInput(f"stack {name} names no image registry (mlkit:images.registry): pass --image for the probe pods")
    kubeconfig_file = kube.kubeconfig or default_kubeconfig()
    return Deployment(
        stack=name,
        config=config,
        outputs=outputs,
        profiles=profiles,
        teams=[team] if team else sorted(profiles),
        kube=kube,
        server=server,
        nodes=nodes,
        simulated=simulated_nodes(nodes, bool(getattr(config.target, "simulated", False))),
        probe_image=image,
        gpu_image=gpu_image,
        local_cluster=local_cluster_dir(kubeconfig_file, server),
        pod_timeout=pod_timeout,
    )


def stack_name(stack: str) -> str:
    """`sim` -> sim; a path `.../Pulumi.live.yaml` -> live (Pulumi's name for the stack of that file)."""
    filename = stack_path(stack).name
    return filename.removeprefix("Pulumi.").rsplit(".", 1)[0] if filename.startswith("Pulumi.") else stack


def project_dir(stack: str) -> Path:
    """The Pulumi project a stack file belongs to: the nearest folder above it holding Pulumi.yaml."""
    for folder in stack_path(stack).resolve().parents:
        if (folder / "Pulumi.yaml").is_file():
            return folder
    return REPO_ROOT


def stack_outputs(name: str, project: Path) -> dict:
    """`pulumi stack output --json` of the stack, from the backend PULUMI_BACKEND_URL (or `pulumi login`) names."""
    command = ["pulumi", "stack", "output", "--json", "--stack", name, "--non-interactive"]
    try:
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise BadInput("the Pulumi CLI is not on PATH (`mlkit doctor` says how to install it)") from None
    backend = os.environ.get("PULUMI_BACKEND_URL") or "the one `pulumi login` chose"
    if result.returncode:
        reason = last_line(result.stderr)
        if "no stack named" in reason or "not found" in reason:
            raise BadInput(f"stack {name} was never deployed: the state backend ({backend}) has no such stack")
        raise BadInput(f"cannot read stack {name}'s outputs: pulumi stack output: {reason}")
    outputs = json.loads(result.stdout or "{}")
    if not outputs:
        raise BadInput(f"stack {name} was never deployed: it has no outputs in {backend}; run `make up STACK={name}`")
    return outputs


def default_kubeconfig() -> Path:
    return Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser()


def read_kubeconfig(path: Path) -> dict:
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"kubeconfig {path} does not exist") from None
    except (OSError, yaml.YAMLError) as e:
        raise BadInput(f"kubeconfig {path} cannot be read: {e}") from None
    if not isinstance(document, dict):
        raise BadInput(f"kubeconfig {path} is not a kubeconfig (expected a mapping)")
    return document


def server_of(document: dict, context: str | None, path: Path) -> tuple[str, str]:
    """The (context, API server URL) a kubeconfig reaches with ``context`` (None: its current context)."""
    context = context or str(document.get("current-context") or "")
    contexts = {c.get("name"): c.get("context", {}) for c in document.get("contexts") or []}
    if context not in contexts:
        known = ", ".join(sorted(str(c) for c in contexts)) or "none"
        raise BadInput(f"kubeconfig {path} has no context {context!r} (its contexts: {known})")
    clusters = {c.get("name"): c.get("cluster", {}) for c in document.get("clusters") or []}
    server = clusters.get(contexts[context].get("cluster"), {}).get("server")
    if not server:
        raise BadInput(f"kubeconfig {path}: context {context} names no cluster server")
    return context, server


def cluster_of(config: StackConfig, name: str, kubeconfig: Path | None, context: str | None) -> tuple[Kube, str]:
    """The kubectl to use, and its server; BadInput when it is not the cluster the stack config names."""
    stack_kubeconfig = getattr(config.target, "kubeconfig", None)
    stack_context = getattr(config.target, "context", None)
    path = kubeconfig or (Path(stack_kubeconfig) if stack_kubeconfig else default_kubeconfig())
    used_context, server = server_of(read_kubeconfig(path), context or stack_context, path)
    if stack_kubeconfig and Path(stack_kubeconfig).resolve() != path.resolve():
        # The stack config names its cluster: another kubeconfig must reach the same API server.
        stack_file = Path(stack_kubeconfig)
        if stack_file.is_file():
            _, expected = server_of(read_kubeconfig(stack_file), stack_context, stack_file)
            if expected.rstrip("/") != server.rstrip("/"):
                raise BadInput(
                    f"kubeconfig {path} (context {used_context}) points at {server}, but stack {name} "
                    f"was deployed to {expected} (context {stack_context} of {stack_file})"
                )
    return Kube(path, used_context), server


def check_same_cluster(kube: Kube, server: str, name: str, profiles: dict[str, TeamProfile]) -> None:
    """The cluster must hold each team's profile exactly as the stack exported it, or it is another cluster."""
    for team, profile in sorted(profiles.items()):
        try:
            found = kube.run(
                "get", "configmap", PROFILE_CONFIGMAP, "-n", profile.namespace, "-o", "json", check=False, timeout=30
            )
        except KubeError as e:
            raise BadInput(f"cannot reach the cluster at {server}: {e}") from None
        if found.returncode and "NotFound" not in found.stderr:
            raise BadInput(f"cannot reach the cluster at {server}: {last_line(found.stderr)}")
        published = json.loads(found.stdout)["data"].get(PROFILE_KEY) if found.returncode == 0 else None
        if published is None or TeamProfile.model_validate_json(published) != profile:
            raise BadInput(
                f"the cluster at {server} is not stack {name}'s: namespace {profile.namespace} holds no "
                f"{PROFILE_CONFIGMAP} matching the stack's team {team} (another kubeconfig or context?)"
            )


def local_cluster_dir(kubeconfig: Path, server: str) -> Path | None:
    """The folder of the kit's own control plane (`make cluster`) when the kubeconfig is its: host checks apply."""
    folder = kubeconfig.resolve().parent
    if urlparse(server).hostname in ("127.0.0.1", "localhost") and (folder / "pids").is_dir():
        return folder
    return None

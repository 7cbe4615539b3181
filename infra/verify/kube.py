"""kubectl against the deployed cluster, and the short-lived probe pods the checks start in team namespaces."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testinfra
import yaml
from testinfra.host import Host

from infra.components.base import RESTRICTED
from infra.versions import KIT_IMAGE_USER
from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_MOUNT, TeamProfile

KWOK_ANNOTATION = "kwok.x-k8s.io/node"  # kwok manages (simulates) the nodes annotated with it: `fake`
RUN_LABEL = "mlkit.io/verify-run"  # on every pod a run starts, so its cleanup finds them all
PROBE_CONTAINER = "probe"
PROBE_PORT = 8080  # each team probe serves HTTP here: the target of the cross-namespace check


class KubeError(Exception):
    """kubectl failed; the message carries its last error line."""


@dataclass(frozen=True)
class Kube:
    """kubectl with the kubeconfig and context the stack was deployed to (None: kubectl's defaults)."""

    kubeconfig: Path | None = None
    context: str | None = None

    def command(self, *args: str) -> list[str]:
        options = [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []
        options += [f"--context={self.context}"] if self.context else []
        return ["kubectl", *options, *args]

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(self.command(*args), input=stdin, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise KubeError("kubectl is not on PATH (`mlkit doctor` says how to install it)") from None
        except subprocess.TimeoutExpired:
            raise KubeError(f"kubectl {' '.join(args)} did not answer within {timeout:.0f} s") from None
        if check and result.returncode:
            raise KubeError(f"kubectl {' '.join(args)}: {last_line(result.stderr)}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", "-o", "json", *args).stdout)

    def create(self, document: dict, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("create", "-f", "-", stdin=yaml.safe_dump(document), check=check)

    def can_i(self, user: str, verb: str, resource: str, namespace: str) -> bool:
        """What the API server's authorizer answers for ``user`` (SubjectAccessReview through impersonation)."""
        answer = self.run("auth", "can-i", verb, resource, "-n", namespace, f"--as={user}", check=False)
        if answer.stdout.strip() not in ("yes", "no"):
            raise KubeError(f"kubectl auth can-i {verb} {resource} --as={user}: {last_line(answer.stderr)}")
        return answer.stdout.strip() == "yes"

    def host(self, pod: str, namespace: str) -> Host:
        """testinfra's kubectl backend into a pod's probe container."""
        return testinfra.get_host(
            f"kubectl://{pod}?namespace={namespace}&container={PROBE_CONTAINER}",
            **({"kubeconfig": str(self.kubeconfig)} if self.kubeconfig else {}),
            **({"context": self.context} if self.context else {}),
        )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def simulated_nodes(nodes: list[dict], whole_cluster_simulated: bool) -> frozenset[str]:
    """The nodes on which no container runs: kwok's fake nodes, or all of them where the stack says so."""
    return frozenset(
        n["metadata"]["name"]
        for n in nodes
        if whole_cluster_simulated or n["metadata"].get("annotations", {}).get(KWOK_ANNOTATION) == "fake"
    )


def probe_pod(
    name: str,
    profile: TeamProfile,
    image: str,
    run_id: str,
    *,
    command: list[str],
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    resources: dict | None = None,
    privileged: bool = False,
) -> dict:
    """A pod as a team workload runs: the team's service account, identity labels, store keys and profile.

    It meets the restricted Pod Security level team namespaces enforce, unless ``privileged``.
    """
    security = {**RESTRICTED, "runAsUser": KIT_IMAGE_USER, "runAsGroup": KIT_IMAGE_USER}
    security = {_camel(k): v for k, v in security.items()}
    if privileged:
        security = {"privileged": True, "allowPrivilegeEscalation": True}
    keys = profile.store_keys_secret.models
    container: dict[str, Any] = {
        "name": PROBE_CONTAINER,
        "image": image,
        "command": command,
        "securityContext": security,
        "resources": resources or {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        # A writable /tmp (and HOME there): the root filesystem may be read-only under the kit's security context.
        "env": [{"name": "HOME", "value": "/tmp"}],
        "volumeMounts": [
            {"name": "profile", "mountPath": str(Path(PROFILE_MOUNT).parent), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        **({"envFrom": [{"secretRef": {"name": keys}}]} if keys else {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": profile.namespace,
            "labels": {**profile.pod_labels, RUN_LABEL: run_id, "app.kubernetes.io/name": "mlkit-verify"},
        },
        "spec": {
            "serviceAccountName": profile.service_accounts.models,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "activeDeadlineSeconds": 1800,  # a probe that outlives a crashed run stops by itself
            "nodeSelector": node_selector or {},
            "tolerations": tolerations or [],
            "containers": [container],
            "volumes": [
                {"name": "profile", "configMap": {"name": PROFILE_CONFIGMAP}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
        },
    }


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def pod_condition(pod: dict, kind: str) -> dict | None:
    return next((c for c in pod.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def wait_for(kube: Kube, namespace: str, name: str, done, timeout: float) -> dict:
    """Poll a pod until ``done(pod)``; the last pod seen (``done`` may never hold)."""
    deadline = time.monotonic() + timeout
    while True:
        pod = kube.get("pod", name, "-n", namespace)
        if done(pod) or time.monotonic() > deadline:
            return pod
        time.sleep(0.5)


def scheduled(pod: dict) -> bool:
    return bool(pod["spec"].get("nodeName"))


def unschedulable(pod: dict) -> bool:
    condition = pod_condition(pod, "PodScheduled")
    return bool(condition and condition["status"] == "False" and condition.get("reason") == "Unschedulable")


def ready(pod: dict) -> bool:
    condition = pod_condition(pod, "Ready")
    return bool(condition and condition["status"] == "True") or pod.get("status", {}).get("phase") in (
        "Succeeded",
        "Failed",
    )

"""kube-score over rendered manifests, and the findings the kit accepts (policy/accepted-findings.yaml).

kube-score grades each check of each object CRITICAL or WARNING (or passes it). The kit holds itself to
no CRITICAL finding on an object it writes (its charts, the objects its Pulumi program creates) and lists
every CRITICAL finding it accepts on a third-party chart with its reason; each list entry also appears in
docs/security.md. Its own ``kube-score/ignore`` annotations are disabled: nothing is accepted silently.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from infra import versions
from infra.stack import REPO_ROOT

KUBE_SCORE = REPO_ROOT / ".cache" / "bin" / "kube-score"
ACCEPTED = REPO_ROOT / "policy" / "accepted-findings.yaml"
CLUSTER_SCOPED = {
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "Namespace",
    "PersistentVolume",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
}
GRADES = {1: "CRITICAL", 5: "WARNING"}  # kube-score's grades below passing (7 is "almost OK", 10 OK)


@dataclass(frozen=True)
class Finding:
    source: str  # the chart (or "platform" for the Pulumi program's own objects) that wrote the object
    kind: str
    namespace: str
    name: str
    check: str
    grade: str
    summary: str

    @property
    def object(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def __str__(self) -> str:
        return f"{self.grade} {self.check}: {self.source} {self.object}: {self.summary}"


class Acceptance(BaseModel):
    """One accepted check on third-party charts' objects: why the kit leaves it to upstream."""

    model_config = ConfigDict(extra="forbid")
    check: str
    charts: list[str] = Field(min_length=1)
    reason: str = Field(min_length=40)

    def covers(self, finding: Finding) -> bool:
        return finding.check == self.check and finding.source in self.charts


class AcceptedFindings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    third_party: list[Acceptance] = Field(default_factory=list)


@dataclass(frozen=True)
class Scored:
    findings: list[Finding]
    objects: dict[str, int]  # per source, how many of its objects kube-score scored (it skips custom resources)


def load_accepted(path: Path = ACCEPTED) -> AcceptedFindings:
    return AcceptedFindings.model_validate(yaml.safe_load(path.read_text()) or {})


def in_namespace(objects: list[dict], namespace: str) -> list[dict]:
    """``objects`` as ``helm install --namespace`` creates them: a template that names no namespace gets the release's."""
    placed = []
    for o in objects:
        if o.get("kind") in CLUSTER_SCOPED or o.get("metadata", {}).get("namespace"):
            placed.append(o)
        else:
            placed.append({**o, "metadata": {**o.get("metadata", {}), "namespace": namespace}})
    return placed


def pods_of(objects: list[dict]) -> list[dict]:
    """The pods a SeldonDeployment's operator creates from its component specs (plain PodSpecs), which
    kube-score, knowing no custom resources, would not score otherwise."""
    pods = []
    for o in objects:
        if o.get("kind") != "SeldonDeployment":
            continue
        for predictor in o["spec"]["predictors"]:
            for index, component in enumerate(predictor.get("componentSpecs", [])):
                metadata = {
                    "name": f"{o['metadata']['name']}-{predictor['name']}-{index}",
                    "namespace": o["metadata"].get("namespace", ""),
                    "labels": {
                        **(component.get("metadata") or {}).get("labels", {}),
                        "seldon-deployment-id": o["metadata"]["name"],
                    },
                }
                pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": component["spec"]})
    return pods


def score(sources: dict[str, list[dict]], workdir: Path) -> Scored:
    """kube-score's CRITICAL and WARNING findings over all ``sources`` (chart -> its objects), scored together.

    Together, because some checks look across objects: a pod is targeted by a NetworkPolicy another
    source wrote, a Service selects a chart's pods.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    files, owner = [], {}
    for index, (source, objects) in enumerate(sorted(sources.items())):
        file = workdir / f"{index:02d}-{source}.yaml"
        objects = [o for o in objects if o]
        file.write_text(yaml.safe_dump_all([*objects, *pods_of(objects)]))
        files.append(str(file))
        owner[file.name] = source
    assert KUBE_SCORE.is_file(), f"{KUBE_SCORE} not found: run `make setup`"
    command = [
        str(KUBE_SCORE),
        "score",
        "--output-format=json",
        f"--kubernetes-version=v{versions.KUBERNETES}",
        "--disable-ignore-checks-annotations",
        # The kit sets memory limits, not CPU limits: CFS quotas throttle Spark, training and serving while
        # the node has idle cores, and CPU requests already give each pod its share (docs/security.md).
        "--ignore-container-cpu-limit",
        *files,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode not in (0, 1) or not result.stdout.strip():  # 1: something graded CRITICAL
        raise RuntimeError(f"kube-score exited {result.returncode}: {result.stderr[-2000:]}")
    findings, counts = [], dict.fromkeys(sources, 0)
    for scored in json.loads(result.stdout):
        meta = scored["object_meta"]
        counts[owner[Path(scored["file_name"]).name]] += 1
        for check in scored["checks"] or []:
            if check["skipped"] or check["grade"] not in GRADES:
                continue
            comments = check["comments"] or [{}]
            summary = "; ".join(" ".join(p for p in (c.get("path"), c.get("summary")) if p) for c in comments if c)
            findings.append(
                Finding(
                    source=owner[Path(scored["file_name"]).name],
                    kind=scored["type_meta"].get("kind", ""),
                    namespace=meta.get("namespace", ""),
                    name=meta.get("name", ""),
                    check=check["check"]["id"],
                    grade=GRADES[check["grade"]],
                    summary=summary,
                )
            )
    return Scored(sorted(findings, key=lambda f: (f.source, f.object, f.check)), counts)

"""kube-score over everything a stack deploys (`make scan`): the objects the Pulumi program writes, each kit
chart rendered into a team namespace from that team's published profile, each third-party release rendered
with the kit's values from the offline copies, and KFP's manifests. All scored together, as they share a
cluster (a team's NetworkPolicies target the charts' pods).

Zero CRITICAL findings on what the kit writes; every CRITICAL finding on a third-party object accepted with
its reason in policy/accepted-findings.yaml, each acceptance still needed and listed in docs/security.md."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
import yaml

from infra import versions
from infra.sources import Sources
from infra.versions import KIT_IMAGE_USER
from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_KEY
from mlkit_dev.scan import ACCEPTED, Acceptance, Finding, in_namespace, load_accepted, score
from tests.charts.helm import REPO, helm
from tests.charts.test_upstream_charts import kfp_offline, kustomize, releases_of, render  # noqa: F401 (a fixture)
from tests.infra.test_clouds import config_of
from tests.infra.test_platform import KIT_OBJECTS, manifest, platform_of

KIT_CHARTS = sorted(p.parent.name for p in (REPO / "charts").glob("*/Chart.yaml"))
KIT_SOURCES = {"platform", *KIT_CHARTS}
# The stack the live cluster deploys, a cloud one and kind's: between them every component and chart the kit
# installs, and both image pull policies a target publishes.
SCANNED = ["sim", "aws", "local"]


def kit_chart(chart: str, profile: dict, tmp_path) -> list[dict]:
    values = yaml.safe_load((REPO / "charts" / chart / "ci" / "lint-values.yaml").read_text())
    values["profile"] = profile
    result = helm("template", chart, str(REPO / "charts" / chart), "--namespace", profile["namespace"],
                  values=values, tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, f"{chart}: {result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def written_by_program(stack: str) -> tuple[list[dict], list[dict]]:
    """The objects the stack's Pulumi program writes itself (under mocks), and the team profiles among them."""
    mocks = platform_of(config_of(stack))
    written = [manifest(r) for r in mocks.resources if r.type.startswith(KIT_OBJECTS) and "Patch" not in r.type]
    profiles = [json.loads(o["data"][PROFILE_KEY]) for o in written if o["metadata"]["name"] == PROFILE_CONFIGMAP]
    return written, profiles


@dataclass(frozen=True)
class Scan:
    findings: list[Finding]
    objects: dict[str, int]  # per source, the objects kube-score scored
    image_pull_policy: str  # the kit images' pull policy the stack's target publishes in the team profile


def scan(stack: str, offline_charts, kfp: Sources, tmp) -> Scan:
    written, profiles = written_by_program(stack)
    sources = {"platform": written}
    # Each team runs each kit chart in its namespace, from the profile the platform published there.
    assert profiles, stack
    for chart in KIT_CHARTS:
        sources[chart] = [o for p in profiles for o in in_namespace(kit_chart(chart, p, tmp), p["namespace"])]
    for release in releases_of(stack):
        sources[release["chart"]] = in_namespace(render(release, tmp, offline_charts), release["namespace"])
    sources["kubeflow-pipelines"] = in_namespace(
        [
            *kustomize(kfp.kfp("cluster-scoped-resources", versions.KUBEFLOW_PIPELINES)),
            *kustomize(kfp.kfp("env/platform-agnostic", versions.KUBEFLOW_PIPELINES)),
        ],
        "kubeflow",
    )
    scored = score(sources, tmp / "manifests")
    report = REPO / "build" / "scan" / f"{stack}.txt"  # what `make scan` leaves for a person to read
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("".join(f"{f}\n" for f in scored.findings))
    [policy] = {p["imagePullPolicy"] for p in profiles}
    return Scan(scored.findings, scored.objects, policy)


@pytest.fixture(scope="module")
def scans(offline_charts, kfp_offline, tmp_path_factory) -> dict[str, Scan]:  # noqa: F811
    return {s: scan(s, offline_charts, kfp_offline, tmp_path_factory.mktemp(f"scan-{s}")) for s in SCANNED}


def critical(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.grade == "CRITICAL"]


def third_party(stack: str) -> set[str]:
    return {r["chart"] for r in releases_of(stack)} | {"kubeflow-pipelines"}


def test_the_scan_scores_every_source_of_objects(scans):
    for stack, result in scans.items():
        scored = {s for s, count in result.objects.items() if count}
        # feature-job writes a SparkApplication and ConfigMaps, none of which kube-score scores (docs/security.md).
        assert scored == (KIT_SOURCES - {"feature-job"}) | third_party(stack), stack


def side_loaded(result: Scan, finding: Finding) -> bool:
    """kind loads the kit's images into its nodes, where no registry holds them: IfNotPresent is its policy."""
    return result.image_pull_policy == "IfNotPresent" and finding.check == "container-image-pull-policy"


def test_no_critical_finding_on_an_object_the_kit_writes(scans):
    ours = [
        f"{stack}: {f}"
        for stack, result in scans.items()
        for f in critical(result.findings)
        if f.source in KIT_SOURCES and not side_loaded(result, f)
    ]
    assert ours == [], "kube-score CRITICAL on kit-written objects:\n" + "\n".join(ours)


def test_the_kit_images_pull_policy_is_the_targets(scans):
    for stack, result in scans.items():
        pull = {f.source for f in critical(result.findings) if f.source in KIT_SOURCES and side_loaded(result, f)}
        # Where the target side-loads, every kit pod pulls IfNotPresent; elsewhere (Always) none is flagged.
        assert pull == (KIT_SOURCES - {"feature-job"} if result.image_pull_policy == "IfNotPresent" else set()), stack


def test_every_critical_finding_on_a_third_party_chart_is_accepted_with_its_reason(scans):
    accepted = load_accepted().third_party
    open_ = [
        f"{stack}: {f}"
        for stack, result in scans.items()
        for f in critical(result.findings)
        if f.source not in KIT_SOURCES and not any(a.covers(f) for a in accepted)
    ]
    assert open_ == [], (
        f"CRITICAL findings on third-party objects not in {ACCEPTED.relative_to(REPO)} (fix the kit's values, "
        "or accept each with its reason there and in docs/security.md):\n" + "\n".join(open_)
    )


def test_every_acceptance_is_still_needed(scans):
    found = {(f.check, f.source) for result in scans.values() for f in critical(result.findings)}
    stale = [
        f"{chart} {a.check}" for a in load_accepted().third_party for chart in a.charts if (a.check, chart) not in found
    ]
    assert stale == [], f"accepted in {ACCEPTED.relative_to(REPO)} but no longer found (remove them): {stale}"


def test_docs_security_lists_each_acceptance_and_nothing_else():
    # docs/security.md's table: | `check` | `chart`, `chart` | reason |
    rows = re.findall(r"^\| `([\w-]+)` \| ((?:`[\w-]+`(?:, )?)+) \|", (REPO / "docs" / "security.md").read_text(), re.M)
    listed = {check: set(re.findall(r"`([\w-]+)`", charts)) for check, charts in rows}
    assert listed == {a.check: set(a.charts) for a in load_accepted().third_party}


def test_the_scan_grades_a_bad_pod_critical(tmp_path):
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "team"},
        "spec": {"containers": [{"name": "c", "image": "example/app:latest", "securityContext": {"privileged": True}}]},
    }
    checks = {f.check for f in critical(score({"feature-job": [bad]}, tmp_path).findings)}
    assert {"container-image-tag", "container-security-context-privileged", "container-resources"} <= checks


def test_an_acceptance_needs_a_reason_and_names_only_known_fields():
    reason = "upstream's probes, as its maintainers set them for this operator"
    with pytest.raises(ValueError, match="reason"):
        Acceptance.model_validate({"charts": ["seldon-core-operator"], "check": "pod-probes", "reason": "because"})
    with pytest.raises(ValueError, match="charts"):
        Acceptance.model_validate({"charts": [], "check": "pod-probes", "reason": reason})
    with pytest.raises(ValueError, match="Extra inputs"):
        Acceptance.model_validate({"charts": ["c"], "check": "x", "reason": reason, "objects": []})
    # Every shipped acceptance loads.
    assert load_accepted().third_party


def pod_security_contexts(node) -> list[dict]:
    """Every pod-level securityContext in a manifest (the ones holding fsGroup), however deep its pod spec sits."""
    if isinstance(node, list):
        return [c for item in node for c in pod_security_contexts(item)]
    if not isinstance(node, dict):
        return []
    found = [node["securityContext"]] if "fsGroup" in node.get("securityContext", {}) else []
    return found + [c for value in node.values() for c in pod_security_contexts(value)]


def test_the_kits_pods_run_as_the_user_its_images_declare(tmp_path):
    for image in ("serving", "training", "mlflow"):
        text = (REPO / "workloads" / image / "Dockerfile").read_text()
        assert re.findall(r"^USER (.+)$", text, re.M)[-1] == f"{KIT_IMAGE_USER}:{KIT_IMAGE_USER}", image
    written, [profile, *_] = written_by_program("sim")
    mlflow = [o for o in written if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow"]
    rendered = [*kit_chart("model-serving", profile, tmp_path), *kit_chart("drift-monitor", profile, tmp_path)]
    contexts = pod_security_contexts([*mlflow, *rendered])
    assert len(contexts) >= 4  # MLflow, the model server, the drift CronJob, the trigger (and the retrain template)
    for security in contexts:
        assert (security["runAsUser"], security["runAsGroup"]) == (KIT_IMAGE_USER, KIT_IMAGE_USER), security

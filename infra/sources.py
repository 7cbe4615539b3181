"""Where each third-party chart and the Kubeflow Pipelines manifests come from, for one stack.

Online (the default) a chart comes from its project's Helm repository and KFP from GitHub. Offline
(``mlkit:charts``) a chart comes from a local directory or an OCI registry, and KFP from a local
copy of its ``manifests/kustomize`` whose remote bases are rewritten to local mirrors in a scratch
copy: kustomize would otherwise fetch them from GitHub at render time. ``problems`` lists everything
an offline source lacks, so a stack fails before any resource is created, not half way.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra import versions
from infra.config import ChartSource

SCRATCH = Path(__file__).resolve().parents[1] / ".cache" / "kustomize"
# A remote kustomize base: https://github.com/<org>/<repo>/<path>?ref=<tag>[&timeout=...]
_REMOTE = re.compile(r"^(?:https?://|git@|github\.com/)\S+$")


@dataclass(frozen=True)
class Sources:
    config: ChartSource

    def chart(self, chart: str, version: str) -> dict:
        """The chart/version/repository arguments of a helm.v3.Release of ``chart`` at ``version``."""
        if self.config.directory:
            # A local chart is whatever its directory holds; `problems` checked its version.
            return {"chart": str(Path(self.config.directory) / chart)}
        if self.config.oci_registry:
            return {"chart": f"{self.config.oci_registry.rstrip('/')}/{chart}", "version": version}
        return {"chart": chart, "version": version, "repository_opts": {"repo": versions.CHART_REPOS[chart]}}

    def kfp(self, path: str, version: str) -> str:
        """The kustomize directory (URL or local path) of one KFP manifests path at ``version``."""
        if not self.config.kfp_manifests:
            return versions.KFP_MANIFESTS.format(path=path, version=version)
        return str(self._mirrored_kfp() / path)

    def problems(self, charts: dict[str, str], kfp_version: str | None) -> list[str]:
        """What an offline source lacks for these charts (name -> version) and KFP; empty online."""
        problems = []
        if self.config.directory:
            root = Path(self.config.directory)
            for chart, version in sorted(charts.items()):
                problems += _chart_problems(root / chart, chart, version)
        if kfp_version and self.config.kfp_manifests:
            root = Path(self.config.kfp_manifests)
            for path in versions.KFP_PATHS:
                if not (root / path / "kustomization.yaml").is_file():
                    problems.append(f"mlkit:charts.kfpManifests: {root / path}/kustomization.yaml not found")
            for file, reference in _remote_bases(root):
                mirror = self._mirror_of(reference)
                if mirror is None:
                    problems.append(
                        f"mlkit:charts.kfpManifests: {file} references {reference}, which has no local mirror; "
                        "add its URL prefix to mlkit:charts.mirrors"
                    )
                elif not mirror.is_dir():
                    problems.append(f"mlkit:charts.mirrors: {mirror} (for {reference}) not found")
        return problems

    def _mirror_of(self, reference: str) -> Path | None:
        url = reference.split("?", 1)[0]
        for prefix, local in self.config.mirrors.items():
            if url.startswith(prefix.rstrip("/") + "/") or url == prefix.rstrip("/"):
                return Path(local) / url[len(prefix.rstrip("/")) :].lstrip("/")
        return None

    def _mirrored_kfp(self) -> Path:
        """A scratch copy of the KFP manifests with every remote base pointing at its local mirror."""
        assert self.config.kfp_manifests, "only called for a stack with a local copy of the KFP manifests"
        source = Path(self.config.kfp_manifests)
        key = hashlib.sha256(repr((str(source), sorted(self.config.mirrors.items()))).encode()).hexdigest()[:12]
        target = SCRATCH / f"kfp-{key}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        for file in target.rglob("kustomization.yaml"):
            file.chmod(0o644)  # the source may be read-only
            text = file.read_text()
            for _, reference in _remote_bases(file.parent, recursive=False):
                mirror = self._mirror_of(reference)
                if mirror:  # kustomize refuses absolute paths for bases
                    text = text.replace(reference, os.path.relpath(mirror, file.parent))
            file.write_text(text)
        return target


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads a bare `=` as text: PyYAML takes it for YAML 1.1's value tag, which
    upstream manifests use as a plain string (kustomize delimiters, CRD enums)."""


def _plain_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


YamlLoader.add_constructor("tag:yaml.org,2002:value", _plain_text)


def load_all(text: str) -> list:
    return [d for d in yaml.load_all(text, Loader=YamlLoader) if d]


def _chart_problems(directory: Path, chart: str, version: str) -> list[str]:
    manifest = directory / "Chart.yaml"
    if not manifest.is_file():
        return [f"mlkit:charts.directory: chart {chart!r} not found ({manifest} is missing)"]
    found = str((yaml.safe_load(manifest.read_text()) or {}).get("version", ""))
    if found != version:
        return [
            f"mlkit:charts.directory: chart {chart!r} at {directory} is version {found!r}; the stack needs {version}"
        ]
    return []


def _remote_bases(root: Path, recursive: bool = True) -> list[tuple[Path, str]]:
    """(kustomization file, reference) for every remote resource or component under ``root``."""
    files = root.rglob("kustomization.yaml") if recursive else [root / "kustomization.yaml"]
    found = []
    for file in sorted(files):
        document = yaml.load(file.read_text(), Loader=YamlLoader) or {}
        for key in ("resources", "components", "bases"):
            for entry in document.get(key) or []:
                if isinstance(entry, str) and _REMOTE.match(entry):
                    found.append((file, entry))
    return found

"""The real Pulumi CLI against a live simulated cluster: one stack config, written per run, in a private state.

Used by the live tests and `make bench`. The Pulumi CLI, the language host and the Kubernetes provider are
the ones scripts/cluster-tools.sh builds into .cache/bin; charts come offline from ../shared/upstream-charts.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlkit_dev.simcluster import BIN, SimCluster
from tests.conftest import REPO, SHARED

UPSTREAM = SHARED / "upstream-charts"
SIM_STACK = REPO / "stacks" / "Pulumi.sim.yaml"
# The in-cluster PostgreSQL's password comes from pulumi-random, whose provider the Go proxy does not
# serve; live runs point MLflow at a managed database URL (config the kit supports) instead. The teams'
# MLflow passwords derive from its password, which the kit wants at least 16 characters long.
DATABASE_URL = "postgresql://mlflow:live-test-database-password@postgres.example.internal:5432/mlflow"


def offline_chart_dir(root: Path) -> Path:
    """A chart directory over ../shared/upstream-charts, as an offline chart source holds them.

    The shared copy of kube-prometheus-stack lacks its four subchart directories (grafana,
    kube-state-metrics, node-exporter, windows-exporter), and helm refuses a chart whose listed
    dependencies are missing: its copy here lists only the dependencies present, each dropped one off.
    """
    root.mkdir(parents=True, exist_ok=True)
    for chart in sorted(UPSTREAM.iterdir()):
        if not (chart / "Chart.yaml").is_file() or (root / chart.name).exists():
            continue
        manifest = yaml.safe_load((chart / "Chart.yaml").read_text())
        dependencies = manifest.get("dependencies", [])
        present = [d for d in dependencies if (chart / "charts" / d["name"]).is_dir()]
        bundled = list((chart / "charts").glob("*.tgz")) if (chart / "charts").is_dir() else []
        if len(present) + len(bundled) == len(dependencies):
            (root / chart.name).symlink_to(chart)
            continue
        shutil.copytree(chart, root / chart.name)
        (root / chart.name / "Chart.yaml").write_text(yaml.safe_dump({**manifest, "dependencies": present}))
        values = yaml.safe_load((chart / "values.yaml").read_text())
        for dependency in dependencies:
            if dependency not in present:
                values.setdefault(dependency["name"], {})["enabled"] = False
                *parents, leaf = dependency["condition"].split(".")
                node = values
                for key in parents:
                    node = node.setdefault(key, {})
                node[leaf] = False
        (root / chart.name / "values.yaml").write_text(yaml.safe_dump(values))
    return root


def offline_sources(charts: Path) -> dict:
    """The `mlkit:charts` block of an air-gapped stack, over the shared upstream copies."""
    return {
        "directory": str(charts),
        "kfpManifests": str(UPSTREAM / "kubeflow-pipelines-manifests-2.17.0"),
        "mirrors": {
            "https://github.com/argoproj/argo-workflows/manifests": str(UPSTREAM / "argo-workflows-manifests-v4.0.5")
        },
    }


@dataclass
class LiveStack:
    """One Pulumi stack of the kit on ``cluster``, its state and config under ``workdir``."""

    cluster: SimCluster
    workdir: Path
    name: str = "live"
    config: dict = field(default_factory=dict)  # the `config:` mapping of the stack file

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "state").mkdir(exist_ok=True)
        if not self.config:
            self.config = copy.deepcopy(yaml.safe_load(SIM_STACK.read_text())["config"])
            self.config["mlkit:target"]["kubeconfig"] = str(self.cluster.kubeconfig)
            self.config["mlkit:charts"] = offline_sources(offline_chart_dir(self.workdir / "charts"))
        # A project of its own (the program linked in): Pulumi writes stack files into the project's
        # stack folder, and the repository's stacks/ must not collect test stacks.
        self.project = self.workdir / "project"
        (self.project / "stacks").mkdir(parents=True, exist_ok=True)
        if not (self.project / "infra").exists():
            (self.project / "infra").symlink_to(REPO / "infra")
        project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(REPO / ".venv" / "infra")
        (self.project / "Pulumi.yaml").write_text(yaml.safe_dump(project))
        self.config_file = self.project / "stacks" / f"Pulumi.{self.name}.yaml"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            # The old language host ignores Pulumi.yaml's virtualenv: the infra venv goes first on PATH.
            "PATH": os.pathsep.join([str(BIN), str(REPO / ".venv" / "infra" / "bin"), os.environ["PATH"]]),
            "PULUMI_HOME": str(self.workdir / "home"),
            "PULUMI_BACKEND_URL": f"file://{self.workdir / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": "live-tests",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "KUBECONFIG": str(self.cluster.kubeconfig),
        }

    def pulumi(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        command = [str(BIN / "pulumi"), *args, "--stack", self.name, "--non-interactive"]
        try:
            result = subprocess.run(
                command, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as timed_out:  # say which resources it was still waiting on
            output = timed_out.output or b""
            output = output.decode(errors="replace") if isinstance(output, bytes) else output
            raise AssertionError(
                f"pulumi {' '.join(args)} ran past {timeout:.0f} s:\n{output[-8000:]}\n{self.unready()}"
            ) from None
        if check and result.returncode:
            raise AssertionError(
                f"pulumi {' '.join(args)} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def unready(self) -> str:
        """What the cluster shows a stuck run waiting on: pods, claims, recent warnings."""
        shown = []
        for args in (
            ("get", "pods", "-A", "-o", "wide"),
            ("get", "pvc", "-A"),
            ("get", "events", "-A", "--field-selector=type=Warning", "--sort-by=.lastTimestamp"),
        ):
            result = self.cluster.kubectl(*args, check=False)
            shown.append(f"$ kubectl {' '.join(args)}\n{(result.stdout + result.stderr)[-4000:]}")
        kwok = self.cluster.logs / "kwok.log"  # the simulator marks pods Ready: is it still alive and working?
        if kwok.is_file():
            shown.append(f"$ tail {kwok}\n{kwok.read_text(errors='replace')[-1500:]}")
        return "\n".join(shown)

    def write_config(self) -> None:
        document = {"config": self.config}
        if self.config_file.is_file():  # keep the encryption salt the stack was created with
            previous = yaml.safe_load(self.config_file.read_text())
            document = {**{k: v for k, v in previous.items() if k != "config"}, **document}
        self.config_file.write_text(yaml.safe_dump(document))

    def init(self, database_url: str | None = DATABASE_URL) -> None:
        subprocess.run(
            [str(BIN / "pulumi"), "stack", "init", self.name, "--non-interactive"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.write_config()
        if database_url:
            self.set_secret("mlkit:platform.mlflow.databaseUrl", database_url)

    def set_secret(self, path: str, value: str) -> None:
        self.pulumi("config", "set", "--secret", "--path", path, value)
        self.config = yaml.safe_load(self.config_file.read_text())["config"]

    def up(self, *extra: str) -> subprocess.CompletedProcess:
        self.write_config()
        return self.pulumi("up", "--yes", "--skip-preview", *extra)

    def preview(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        self.write_config()
        return self.pulumi("preview", *extra, check=check)

    def destroy(self) -> subprocess.CompletedProcess:
        return self.pulumi("destroy", "--yes", "--skip-preview")

    def resources(self) -> list[dict]:
        exported = json.loads(self.pulumi("stack", "export").stdout)
        return exported["deployment"].get("resources") or []

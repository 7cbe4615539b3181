import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


UPSTREAM_CHARTS = SHARED / "upstream-charts"


@pytest.fixture(scope="session")
def offline_charts(tmp_path_factory) -> Path:
    """A chart directory over ../shared/upstream-charts, as an offline chart source holds them.

    The shared copy of kube-prometheus-stack lacks its four subchart directories (grafana,
    kube-state-metrics, node-exporter, windows-exporter), and helm refuses a chart whose listed
    dependencies are missing: its copy here lists only the dependencies present.
    """
    root = tmp_path_factory.mktemp("charts")
    for chart in sorted(UPSTREAM_CHARTS.iterdir()):
        if not (chart / "Chart.yaml").is_file():
            continue
        manifest = yaml.safe_load((chart / "Chart.yaml").read_text())
        present = [d for d in manifest.get("dependencies", []) if (chart / "charts" / d["name"]).is_dir()]
        bundled = list((chart / "charts").glob("*.tgz")) if (chart / "charts").is_dir() else []
        if len(present) + len(bundled) == len(manifest.get("dependencies", [])):
            (root / chart.name).symlink_to(chart)
            continue
        shutil.copytree(chart, root / chart.name)
        (root / chart.name / "Chart.yaml").write_text(yaml.safe_dump({**manifest, "dependencies": present}))
        # The chart's own templates read the dropped subcharts' `enabled`; turn each one off.
        values = yaml.safe_load((chart / "values.yaml").read_text())
        for dependency in manifest["dependencies"]:
            if dependency not in present:
                values.setdefault(dependency["name"], {})["enabled"] = False
                *parents, leaf = dependency["condition"].split(".")
                node = values
                for key in parents:
                    node = node.setdefault(key, {})
                node[leaf] = False
        (root / chart.name / "values.yaml").write_text(yaml.safe_dump(values))
    return root

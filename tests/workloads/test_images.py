"""Each workload image pins the same versions this repository tests with."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.split("[")[0].strip().lower()] = version.strip()
    return out


@pytest.mark.parametrize(
    ("image", "environment"), [("features", "workloads"), ("training", "workloads"), ("serving", "serving")]
)
def test_image_requirements_match_the_tested_lock(image, environment):
    wanted = pins(REPO / "workloads" / image / "requirements.txt")
    locked = pins(REPO / "requirements" / f"{environment}.lock")
    assert wanted, "the image pins nothing"
    assert {name: locked.get(name) for name in wanted} == wanted


def test_feature_image_takes_its_jars_from_the_one_pom():
    dockerfile = (REPO / "workloads" / "features" / "Dockerfile").read_text()
    assert "COPY requirements/jars/pom.xml" in dockerfile and "-P cloud-connectors" in dockerfile
    pom = (REPO / "requirements" / "jars" / "pom.xml").read_text()
    for artifact in ("hudi-spark3.5-bundle_2.12", "hadoop-aws", "gcs-connector", "hadoop-azure"):
        assert artifact in pom

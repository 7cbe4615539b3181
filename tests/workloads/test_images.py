"""Every version of one thing agrees with its one source, and each image is built with it.

The sources: requirements/*.lock for Python packages (the environments the tests run), infra/versions.py
for what the platform deploys (the kit's image tag, the MLflow server, Seldon Core). `make images`
(scripts/images.py) hands the derived versions to the Dockerfiles as build arguments; what cannot be
derived (a Dockerfile's ARG default, a chart's values.yaml default, a requirements pin) is compared
with its source here, and a failure names the file, the key and both values.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from infra import versions

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "registry.example/mlkit"
# The lock of the environment each image's Python code is tested in.
IMAGE_ENVIRONMENTS = {"features": "workloads", "training": "workloads", "serving": "serving", "mlflow": "workloads"}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.split("[")[0].strip().lower()] = version.strip()
    return out


def dockerfile_args(path: Path) -> dict[str, str]:
    """Each ARG's default (the last declaration wins; an ARG without one maps to '')."""
    return {
        name: default or ""
        for name, default in re.findall(r"^ARG\s+([A-Za-z_]\w*)(?:=(\S*))?\s*$", path.read_text(), flags=re.M)
    }


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def base_images(path: Path) -> list[str]:
    """The FROM images, with the ARG defaults filled in (what a plain `docker build` pulls)."""
    args = dockerfile_args(path)
    return [expand(image, args) for image in re.findall(r"^FROM\s+(\S+)", path.read_text(), flags=re.M)]


def pip_pins(path: Path) -> dict[str, str]:
    """name==version pins of the Dockerfile's `pip install` lines, with the ARG defaults filled in."""
    args = dockerfile_args(path)
    out = {}
    for line in re.findall(r"^RUN .*pip install.*$", path.read_text(), flags=re.M):
        for name, version in re.findall(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?==([^\s\"']+)", line):
            out[name.lower()] = expand(version, args)
    return out


def lock(environment: str) -> dict[str, str]:
    return pins(REPO / "requirements" / f"{environment}.lock")


def values(chart: str) -> dict:
    return yaml.safe_load((REPO / "charts" / chart / "values.yaml").read_text())


@dataclass(frozen=True)
class Pin:
    """One place a version is written: the file, the key in it, the value there."""

    file: str
    key: str
    value: str | None

    def __str__(self) -> str:
        return f"{self.file}: {self.key} = {self.value!r}"


def from_lock(environment: str, package: str) -> Pin:
    return Pin(f"requirements/{environment}.lock", package, lock(environment).get(package))


def from_versions(name: str) -> Pin:
    return Pin("infra/versions.py", name, getattr(versions, name))


def image_version(dockerfile: str, image: str) -> Pin:
    """The version in the tag of the Dockerfile's base image ``image`` (e.g. apache/spark)."""
    for ref in base_images(REPO / dockerfile):
        found = re.match(rf"^{re.escape(image)}:v?(\d+\.\d+\.\d+)", ref)
        if found:
            return Pin(dockerfile, f"FROM {image}", found.group(1))
    return Pin(dockerfile, f"FROM {image}", None)


def agreements() -> list[tuple[Pin, Pin]]:
    """(a copy, its source) for every version written in more than one place."""
    rows = []
    for environment in ("infra", "serving", "workloads"):
        source = f"requirements/{environment}.in"
        for name, version in pins(REPO / source).items():
            rows.append((Pin(source, name, version), from_lock(environment, name)))
    for image, environment in IMAGE_ENVIRONMENTS.items():
        requirements = REPO / "workloads" / image / "requirements.txt"
        dockerfile = REPO / "workloads" / image / "Dockerfile"
        copies = [(requirements, pins(requirements))] if requirements.exists() else []
        # A Dockerfile pin of a package the tested environment lacks (the MLflow image's database and
        # cloud clients) has no lock to agree with.
        copies.append((dockerfile, {n: v for n, v in pip_pins(dockerfile).items() if n in lock(environment)}))
        for path, pinned in copies:
            for name, version in pinned.items():
                rows.append((Pin(str(path.relative_to(REPO)), name, version), from_lock(environment, name)))
    # Spark: the base image and the chart's sparkVersion run the Spark the tests run.
    rows.append((image_version("workloads/features/Dockerfile", "apache/spark"), from_lock("workloads", "pyspark")))
    rows.append((Pin("charts/feature-job/values.yaml", "sparkVersion", values("feature-job").get("sparkVersion")),
                 from_lock("workloads", "pyspark")))  # fmt: skip
    # MLflow: the server the platform runs is the one the tests run, and the serving client speaks to it.
    rows.append((image_version("workloads/mlflow/Dockerfile", "ghcr.io/mlflow/mlflow"), from_versions("MLFLOW")))
    rows.append((from_lock("workloads", "mlflow"), from_versions("MLFLOW")))
    rows.append((from_lock("serving", "mlflow-skinny"), from_versions("MLFLOW")))
    # Seldon Core: the wrapper in the serving image is the operator's release.
    rows.append((from_lock("serving", "seldon-core"), from_versions("SELDON_CORE")))
    # The kit's own images: one tag, the kit release, wherever an image of the kit is named.
    for chart in ("feature-job", "model-serving", "drift-monitor"):
        tag = values(chart).get("image", {}).get("tag")
        rows.append((Pin(f"charts/{chart}/values.yaml", "image.tag", tag), from_versions("KIT_IMAGE_TAG")))
        app = yaml.safe_load((REPO / "charts" / chart / "Chart.yaml").read_text()).get("appVersion")
        rows.append((Pin(f"charts/{chart}/Chart.yaml", "appVersion", app), from_versions("KIT_IMAGE_TAG")))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    rows.append((Pin("pyproject.toml", "project.version", project["version"]), from_versions("KIT_IMAGE_TAG")))
    return rows


@pytest.mark.parametrize(("copy", "source"), agreements(), ids=lambda pin: f"{pin.file}:{pin.key}")
def test_each_version_agrees_with_its_one_source(copy: Pin, source: Pin):
    assert copy.value is not None, f"{copy.file}: no {copy.key} found (its source: {source})"
    assert copy.value == source.value, f"{copy} disagrees with its source, {source}"


@pytest.mark.parametrize("image", ["features", "training", "serving"])
def test_each_image_pins_its_python_packages(image):
    assert pins(REPO / "workloads" / image / "requirements.txt"), f"workloads/{image}/requirements.txt pins nothing"


def make_images() -> list[list[str]]:
    """The `docker build` commands `make images` runs (its dry run), as argument lists."""
    out = subprocess.run(
        ["make", "-s", "images", f"REGISTRY={REGISTRY}", "DRY_RUN=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [shlex.split(line) for line in out.stdout.splitlines() if line.startswith("docker build ")]


def build_parts(command: list[str]) -> tuple[str, str, dict[str, str]]:
    """(image reference, Dockerfile, build arguments) of one `docker build` command."""
    options = {flag: value for flag, value in itertools.pairwise(command) if flag in ("-t", "-f")}
    build_args = dict(value.split("=", 1) for flag, value in itertools.pairwise(command) if flag == "--build-arg")
    return options["-t"], options["-f"], build_args


def test_make_images_builds_every_dockerfile_tagged_with_the_kit_tag():
    builds = [build_parts(c) for c in make_images()]
    assert sorted(f for _, f, _ in builds) == sorted(
        str(p.relative_to(REPO)) for p in (REPO / "workloads").glob("*/Dockerfile")
    )
    for ref, dockerfile, _ in builds:
        assert ref.startswith(f"{REGISTRY}/"), f"{dockerfile} is tagged {ref}, outside the registry {REGISTRY}"
        assert ref.rpartition(":")[2] == versions.KIT_IMAGE_TAG, (
            f"make images tags {dockerfile} {ref}, but infra/versions.py: KIT_IMAGE_TAG = {versions.KIT_IMAGE_TAG!r}"
        )


def test_make_images_passes_each_version_from_its_source_and_the_dockerfile_defaults_agree():
    expected = {
        "workloads/features/Dockerfile": {"SPARK_VERSION": from_lock("workloads", "pyspark")},
        "workloads/training/Dockerfile": {"TORCH_VERSION": from_lock("workloads", "torch")},
        "workloads/mlflow/Dockerfile": {"MLFLOW_VERSION": from_versions("MLFLOW")},
        "workloads/serving/Dockerfile": {},
    }
    for _, dockerfile, build_args in (build_parts(c) for c in make_images()):
        assert build_args.keys() == expected[dockerfile].keys(), f"make images builds {dockerfile} with {build_args}"
        declared = dockerfile_args(REPO / dockerfile)
        for key, source in expected[dockerfile].items():
            assert build_args[key] == source.value, (
                f"make images passes {key}={build_args[key]} to {dockerfile}, but {source}"
            )
            assert key in declared, f"{dockerfile} declares no ARG {key}, which make images passes"
            assert declared[key] == source.value, f"{dockerfile}: ARG {key} defaults to {declared[key]!r}, but {source}"


def test_the_platform_and_the_charts_name_images_make_images_builds():
    from infra.config import Images

    built = {ref.removeprefix(f"{REGISTRY}/") for ref, _, _ in (build_parts(c) for c in make_images())}
    platform = Images(registry=REGISTRY).image(versions.MLFLOW_IMAGE).removeprefix(f"{REGISTRY}/")
    assert platform in built, f"the platform runs {platform} (infra/config.py Images.image), make images builds {built}"
    for chart in ("feature-job", "model-serving", "drift-monitor"):
        image = values(chart)["image"]
        named = f"{image['repository'].rpartition('/')[2]}:{image['tag']}"
        assert named in built, f"charts/{chart}/values.yaml: image names {named}, make images builds {sorted(built)}"


def test_the_jars_match_the_spark_the_tests_run():
    """The pom's Hadoop is one version and replaces exactly the Hadoop client pyspark ships (replaces-spark.txt);
    the Hudi bundle is pyspark's Spark and Scala."""
    import pyspark

    jars = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    scala = next(re.match(r"scala-library-(\d+\.\d+)", j).group(1) for j in jars if j.startswith("scala-library-"))
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    pom = (REPO / "requirements" / "jars" / "pom.xml").read_text()
    hadoop_artifacts = re.findall(r"<artifactId>(hadoop-[\w-]+)</artifactId>\s*<version>([^<]+)</version>", pom)
    assert {a for a, _ in hadoop_artifacts} >= {
        "hadoop-client-api",
        "hadoop-client-runtime",
        "hadoop-aws",
        "hadoop-azure",
    }
    for artifact, version in hadoop_artifacts:
        assert version == "${hadoop.version}", (
            f"requirements/jars/pom.xml: {artifact} = {version!r}, not ${{hadoop.version}}"
        )
    replaced = [
        line
        for line in (REPO / "requirements/jars/replaces-spark.txt").read_text().splitlines()
        if line and line[0] != "#"
    ]
    shipped_client = sorted(j for j in jars if j.startswith(("hadoop-client-api-", "hadoop-client-runtime-")))
    assert sorted(replaced) == shipped_client, (
        f"requirements/jars/replaces-spark.txt names {replaced}; pyspark {pyspark.__version__} ships {shipped_client}"
    )
    bundle = f"hudi-spark{spark_minor}-bundle_{scala}"
    assert f"<artifactId>{bundle}</artifactId>" in pom, (
        f"requirements/jars/pom.xml has no {bundle} (pyspark {pyspark.__version__}, Scala {scala})"
    )
    [spark_image] = [i for i in base_images(REPO / "workloads" / "features" / "Dockerfile") if "spark" in i]
    assert f"scala{scala}" in spark_image, (
        f"workloads/features/Dockerfile: FROM {spark_image}, but pyspark runs Scala {scala}"
    )


def test_feature_image_takes_its_jars_from_the_one_pom():
    dockerfile = (REPO / "workloads" / "features" / "Dockerfile").read_text()
    assert "COPY requirements/jars/pom.xml" in dockerfile and "COPY requirements/jars/replaces-spark.txt" in dockerfile
    pom = (REPO / "requirements" / "jars" / "pom.xml").read_text()
    for artifact in ("hudi-spark3.5-bundle_2.12", "hadoop-aws", "gcs-connector", "hadoop-azure"):
        assert artifact in pom

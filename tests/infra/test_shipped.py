"""The product ships no harness, and each image holds all the code it runs.

mlkit_dev (local servers, fixtures, demo data, the demo, test-output validators) stays out of the wheel
and out of every image, and no shipped module imports it; every shipped module is one the platform, the
CLI or an image runs; and each image copies every module its copied code imports.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SHIPPED = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
DEV = "mlkit_dev"
FIRST_PARTY = (*SHIPPED, DEV)
# Shipped modules run by hand rather than imported by an entry point below. A command users run belongs
# here; anything only tests, benchmarks or the demo use belongs in mlkit_dev.
COMMANDS: tuple[str, ...] = (
    "workloads.monitoring",  # the drift job on this machine (the chart runs it in a cluster)
    "workloads.monitoring.trigger",  # the retraining trigger (charts/drift-monitor runs it with python -m)
    "workloads.pipeline",  # KFP's executor runs its steps inside the training image; users compile and run it
)


def build_plan():
    """scripts/images.py: every image, its Dockerfile and its build context (what `make images` builds)."""
    spec = importlib.util.spec_from_file_location("mlkit_images", REPO / "scripts" / "images.py")
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))  # dataclasses look it up
    spec.loader.exec_module(module)
    return module.images()


def modules(root: Path, packages=SHIPPED) -> dict[str, Path]:
    """Dotted name -> file of every module of ``packages`` under ``root`` (a package by its __init__)."""
    found = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, minus `if TYPE_CHECKING:` bodies (annotations only; nothing imports them at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for orelse in node.orelse:
                yield orelse
                yield from _runtime_nodes(orelse)
            continue
        yield node
        yield from _runtime_nodes(node)


def imports(path: Path, name: str) -> Iterator[tuple[int, str]]:
    """(line, module) for each import in the module ``name`` at ``path``, relative ones resolved.
    `from a import b` yields both a and a.b: b may be a submodule."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def test_the_wheel_ships_the_product_packages_only(tmp_path):
    """Built for real, by the uv and hatchling `make setup` installed the checkout with (no network)."""
    assert DEV not in SHIPPED, (
        f"pyproject.toml ships the harness: [tool.hatch.build.targets.wheel] packages = {SHIPPED}"
    )
    uv = REPO / ".cache" / "uv" / "bin" / "uv"
    built = subprocess.run(
        [str(uv), "build", "--offline", "--quiet", "--wheel", "-o", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == set(SHIPPED), f"{wheel.name} holds {sorted(top)}, not the product packages {SHIPPED}"


def test_the_editable_install_finds_the_dev_package(tmp_path):
    # From elsewhere, with no PYTHONPATH: only the editable install's path entry can find it.
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", f"import {DEV}; print({DEV}.__file__)"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == REPO / DEV / "__init__.py"


def test_no_shipped_module_imports_the_dev_package():
    found = []
    for name, path in modules(REPO).items():
        where = path.relative_to(REPO)
        found += [f"{where}:{line}: import {m}" for line, m in imports(path, name) if m.split(".")[0] == DEV]
        # A module named in a string: importlib.import_module("mlkit_dev..."), `python -m mlkit_dev...`.
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(rf"\b{DEV}\b", node.value):
                found.append(f"{where}:{node.lineno}: {node.value!r}")
    assert not found, "shipped code reaches into the harness:\n" + "\n".join(found)


def copies(dockerfile: Path) -> list[tuple[str, str]]:
    """(source, destination) of each COPY/ADD from the build context (not from another stage)."""
    pairs = []
    for line in re.findall(r"^(?:COPY|ADD)\s+(.+)$", dockerfile.read_text(), flags=re.M):
        words = line.split()
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        pairs += [(source, words[-1]) for source in words[:-1]]
    return pairs


def test_no_image_copies_the_dev_package():
    dev = REPO / DEV
    found = []
    for image in build_plan():
        for source, _ in copies(image.dockerfile):
            copied = (image.context / source).resolve()
            if copied == dev or dev.is_relative_to(copied) or copied.is_relative_to(dev):
                found.append(f"{image.dockerfile.relative_to(REPO)}: COPY {source} (context {image.context})")
    assert not found, "an image copies the harness:\n" + "\n".join(found)


def image_tree(image, root: Path) -> Path:
    """The image's copied files under ``root``, where the Dockerfile puts them."""
    for source, destination in copies(image.dockerfile):
        origin = image.context / source
        if "*" in source or not origin.exists():
            continue
        target = root / destination.lstrip("/")
        if origin.is_dir():
            # Sources only: a checkout's environments and caches are no code an image's modules import.
            skip = shutil.ignore_patterns(".venv", ".cache", ".git", "data", "__pycache__")
            shutil.copytree(origin, target, symlinks=True, ignore=skip, dirs_exist_ok=True)
        else:
            target = target / origin.name if destination.endswith("/") else target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(origin, target)
    return root


def entry_modules(dockerfile: Path) -> list[str]:
    """What the image runs: `python -m X` in its CMD or ENTRYPOINT, and a MODEL_NAME class's module."""
    text = dockerfile.read_text()
    run = " ".join(re.findall(r"^(?:CMD|ENTRYPOINT)\s+(.+)$", text, flags=re.M))
    entries = re.findall(r"-m\W+([\w.]+)", run)
    entries += [m.rpartition(".")[0] for m in re.findall(r"\bMODEL_NAME=([\w.]+)", text)]
    return entries


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of this repository (not a function imported from one)."""
    path = REPO / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_each_image_copies_the_code_its_modules_import(tmp_path):
    problems = []
    for image in build_plan():
        dockerfile = image.dockerfile.relative_to(REPO)
        pythonpath = re.search(r"PYTHONPATH=(\S+)", image.dockerfile.read_text())
        root = image_tree(image, tmp_path / image.name) / (pythonpath.group(1) if pythonpath else "/").lstrip("/")
        present = {} if not root.is_dir() else modules(root, [p.name for p in root.iterdir() if p.is_dir()])
        present |= {p.stem: p for p in root.glob("*.py")} if root.is_dir() else {}
        for entry in entry_modules(image.dockerfile):
            if entry not in present:
                problems.append(f"{dockerfile} runs {entry}, which it does not copy")
        for name, path in present.items():
            for line, module in imports(path, name):
                if module.split(".")[0] in FIRST_PARTY and is_module(module) and module not in present:
                    problems.append(f"{dockerfile}: {path.relative_to(root)}:{line} imports {module}, not copied")
    assert not problems, "\n".join(problems)


def test_every_shipped_module_runs_in_the_platform_the_cli_or_an_image():
    """Reachable by imports from an entry point; anything else is harness (mlkit_dev) or dead code."""
    shipped = modules(REPO)
    pulumi = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    entries = [".".join(Path(pulumi["main"]).parts) + ".__main__"]  # Pulumi runs <main>/__main__.py
    entries += [target.partition(":")[0] for target in PYPROJECT["project"]["scripts"].values()]
    for image in build_plan():
        entries += entry_modules(image.dockerfile)
        for source, _ in copies(image.dockerfile):  # a script copied on its own is run as one (mlflow's auth.py)
            if source.endswith(".py"):
                path = (image.context / source).resolve().relative_to(REPO)
                entries.append(".".join(path.with_suffix("").parts))
    for template in (REPO / "charts").glob("*/templates/*"):
        for file in re.findall(r"local:///opt/mlkit/(\S+?\.py)", template.read_text()):
            entries.append(".".join(Path(file).with_suffix("").parts))  # a SparkApplication's main file
    entries += COMMANDS
    # `mlkit verify` hands its checks to pytest, which collects them, and copies its probes into the pods it starts.
    for script in [*(REPO / "infra/verify/checks").glob("*.py"), *(REPO / "infra/verify/probes").glob("*.py")]:
        entries.append(".".join(script.relative_to(REPO).with_suffix("").parts))
    seen, todo = set(), [e for e in entries if e in shipped] + [f"{e}.__main__" for e in entries]
    while todo:
        name = todo.pop()
        if name in seen or name not in shipped:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        todo += [module for _, module in imports(shipped[name], name) if module in shipped]
    unreached = sorted(f"{shipped[n].relative_to(REPO)}" for n in set(shipped) - seen)
    assert not unreached, (
        "shipped, but run by no entry point (Pulumi's main, the mlkit CLI, an image's command, a chart's main file); "
        f"harness belongs in {DEV}/, a command users run in COMMANDS here:\n" + "\n".join(unreached)
    )

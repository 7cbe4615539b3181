"""The pytest plugin that runs the checks in checks/ against one Deployment and collects their results.

Fixtures: ``deployment``, ``kube``, ``pods`` (probe pods, deleted at the end), ``record`` (a passing check's
detail), ``local_host`` (testinfra's local backend); parameters ``team`` (each team checked) and
``gpu_pool`` (each GPU pool). A check raising NotVerifiable is reported so, never as passed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import testinfra
from testinfra.host import Host

from infra.verify.deployment import Deployment
from infra.verify.kube import (
    PROBE_PORT,
    RUN_LABEL,
    Kube,
    KubeError,
    last_line,
    probe_pod,
    ready,
    scheduled,
    wait_for,
)
from infra.verify.probes import source
from infra.verify.report import CheckResult, Status

DETAIL = pytest.StashKey[str]()


class NotVerifiable(Exception):
    """The check needs something this cluster cannot give (a running container, a GPU)."""


class ProbeFailed(AssertionError):
    """A probe pod could not be started, or its script did not answer."""


class Pods:
    """The probe pods of one run: started on demand, deleted together (by the run's label) at the end."""

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        self.kube = deployment.kube
        self.namespaces: set[str] = set()
        self._team_probes: dict[str, dict | Exception] = {}

    def name(self, purpose: str) -> str:
        return f"mlkit-verify-{self.deployment.run_id}-{purpose}"[:63].rstrip("-")

    def start(self, manifest: dict) -> None:
        self.namespaces.add(manifest["metadata"]["namespace"])
        created = self.kube.create(manifest, check=False)
        if created.returncode:
            raise ProbeFailed(f"pod {manifest['metadata']['name']} was refused: {last_line(created.stderr)}")

    def wait_scheduled(self, namespace: str, name: str) -> dict:
        pod = wait_for(self.kube, namespace, name, scheduled, self.deployment.pod_timeout)
        if not scheduled(pod):
            condition = next((c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"), {})
            raise ProbeFailed(
                f"pod {name} not scheduled within {self.deployment.pod_timeout:.0f} s: "
                f"{condition.get('message') or pod['status'].get('phase')}"
            )
        return pod

    def team_probe(self, team: str) -> dict:
        """The team's probe pod, scheduled (one per team and run): a workload as the team runs it, serving HTTP."""
        if team not in self._team_probes:
            profile = self.deployment.profiles[team]
            name = self.name(f"probe-{team}")
            command = ["python3", "-m", "http.server", str(PROBE_PORT), "--bind", "0.0.0.0", "--directory", "/tmp"]
            try:
                self.start(
                    probe_pod(name, profile, self.deployment.probe_image, self.deployment.run_id, command=command)
                )
                self._team_probes[team] = self.wait_scheduled(profile.namespace, name)
            except (ProbeFailed, KubeError) as e:
                self._team_probes[team] = e
        probe = self._team_probes[team]
        if isinstance(probe, Exception):
            raise ProbeFailed(str(probe))
        return probe

    def container(self, pod: dict) -> Host:
        """testinfra's kubectl backend into a running pod; NotVerifiable when its node is simulated."""
        node = pod["spec"]["nodeName"]
        if node in self.deployment.simulated:
            raise NotVerifiable(f"needs a running container; node {node} is simulated (kwok), no container runs")
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        running = wait_for(self.kube, namespace, name, ready, self.deployment.pod_timeout)
        if not ready(running) or running["status"].get("phase") != "Running":
            statuses = running["status"].get("containerStatuses") or [{}]
            raise ProbeFailed(f"pod {name} on {node} not running: {json.dumps(statuses[0].get('state', {}))}")
        return self.kube.host(name, namespace)

    def cleanup(self) -> None:
        for namespace in sorted(self.namespaces):
            self.kube.run(
                "delete", "pods", "-n", namespace, "-l", f"{RUN_LABEL}={self.deployment.run_id}",
                "--ignore-not-found", "--wait=true", "--timeout=120s", check=False, timeout=150,
            )  # fmt: skip


def run_probe(host: Host, script: str, *args: str) -> dict[str, Any]:
    """Run one of probes/ in a pod; its JSON answer."""
    result = host.run("python3 -c %s " + " ".join(["%s"] * len(args)), source(script), *args)
    lines = result.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise ProbeFailed(f"{script} exited {result.rc}: {last_line(result.stderr or result.stdout)}") from None


class VerifyPlugin:
    def __init__(self, deployment: Deployment):
        self._deployment = deployment
        self.results: list[CheckResult] = []
        self._pods = Pods(deployment)

    # --- fixtures ---------------------------------------------------------------------------

    @pytest.fixture(scope="session")
    def deployment(self) -> Deployment:
        return self._deployment

    @pytest.fixture(scope="session")
    def kube(self) -> Kube:
        return self._deployment.kube

    @pytest.fixture(scope="session")
    def pods(self):
        yield self._pods
        self._pods.cleanup()

    @pytest.fixture(scope="session")
    def local_host(self) -> Host:
        return testinfra.get_host("local://")

    @pytest.fixture
    def record(self, request) -> Callable[[str], None]:
        def record(detail: str) -> None:
            request.node.stash[DETAIL] = detail

        return record

    # --- parameters -------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "team" in metafunc.fixturenames:
            metafunc.parametrize("team", self._deployment.teams, ids=str)
        if "gpu_pool" in metafunc.fixturenames:
            pools = self._deployment.gpu_pools() or [
                pytest.param(None, id="none", marks=pytest.mark.skip(reason="the stack has no GPU node pool"))
            ]
            metafunc.parametrize("gpu_pool", pools, ids=str)

    # --- results ----------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if call.when == "call" or (call.when == "setup" and call.excinfo is not None):
            self.results.append(self._result(item, call))
        elif call.when == "teardown" and call.excinfo is not None and self.results:
            last = self.results[-1]
            self.results[-1] = CheckResult(
                last.check,
                last.proves,
                Status.FAILED,
                f"cleanup failed: {_first_line(call.excinfo.value)}",
                last.seconds,
            )
        return report

    def _result(self, item: pytest.Item, call: pytest.CallInfo) -> CheckResult:
        function = getattr(item, "function", None)
        module = getattr(item, "module", None)
        area = (module.__name__.rsplit(".", 1)[-1] if module else "check").removeprefix("check_").replace("_", "-")
        name = (getattr(item, "originalname", None) or item.name).removeprefix("test_").replace("_", "-")
        params = getattr(item, "callspec", None)
        check = f"{area}.{name}" + (f"[{params.id}]" if params else "")
        proves = ((function.__doc__ if function else None) or "").strip().split("\n")[0]
        excinfo = call.excinfo
        if excinfo is None:
            status, detail = Status.PASSED, item.stash.get(DETAIL, "")
        elif excinfo.errisinstance(NotVerifiable):
            status, detail = Status.NOT_VERIFIABLE, _first_line(excinfo.value)
        elif excinfo.errisinstance(pytest.skip.Exception):
            status, detail = Status.NOT_APPLICABLE, str(getattr(excinfo.value, "msg", excinfo.value))
        else:
            status, detail = Status.FAILED, _first_line(excinfo.value) or excinfo.typename
        return CheckResult(check, proves, status, detail, round(call.duration, 2))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.split("\n")[0] if text else type(error).__name__


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True

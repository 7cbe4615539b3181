"""`mlkit verify <stack>`: prove a deployed platform works, from inside its team namespaces.

A pytest-testinfra suite (checks/) run in this process against one Deployment (deployment.py: the stack's
config and outputs, checked against the cluster the kubeconfig reaches). Checks start short-lived probe
pods in team namespaces as the team's service account and use testinfra's kubectl backend to run probes in
them; host checks use its local backend. On simulated (kwok) nodes, checks that need a running container
are reported as not verifiable on this cluster, by name; what the API server decides runs for real.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from infra.verify.deployment import DEFAULT_GPU_IMAGE, BadInput, Deployment, resolve
from infra.verify.plugin import VerifyPlugin
from infra.verify.report import CheckResult, Status, exit_code

CHECKS = Path(__file__).parent / "checks"

__all__ = [
    "DEFAULT_GPU_IMAGE",
    "BadInput",
    "CheckResult",
    "Deployment",
    "Status",
    "SuiteError",
    "exit_code",
    "resolve",
    "run_checks",
]


class SuiteError(Exception):
    """pytest could not run the checks at all (a check module failed to import); the message has its output."""


def run_checks(deployment: Deployment, select: str | None = None) -> list[CheckResult]:
    """Run every check (or those whose name matches the pytest ``-k`` expression ``select``); one result each."""
    plugin = VerifyPlugin(deployment)
    args = [
        str(CHECKS),
        "-c", str(CHECKS / "pytest.ini"),  # the suite's own settings, never the calling project's
        "--rootdir", str(CHECKS),
        "--confcutdir", str(CHECKS),
        "-p", "no:cacheprovider",
        "--capture=no",  # probes print nothing; and a caller's own capture (a CLI runner) stays untouched
        "-q",
    ]  # fmt: skip
    if select:
        args += ["-k", select]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):  # the report is the output, not pytest's progress
        code = pytest.main(args, plugins=[plugin])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise SuiteError(f"the checks did not run (pytest exit {int(code)}):\n{output.getvalue()[-3000:]}")
    return plugin.results

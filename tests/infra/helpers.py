"""One way to run the CLI in tests and check its exit code and output."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from infra.cli import app


@dataclass
class CliResult:
    exit_code: int
    output: str
    exception: BaseException | None


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=True)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.output, exception)


def assert_cli(result: CliResult, exit_code: int, *expected: str) -> None:
    """Exit code as given, no escaped exception, and each expected text in the output."""
    assert result.exception is None, f"exception escaped the CLI: {result.exception!r}\n{result.output}"
    assert result.exit_code == exit_code, f"exit {result.exit_code}, wanted {exit_code}:\n{result.output}"
    for text in expected:
        assert text in result.output, f"{text!r} not in output:\n{result.output}"


def run_cli_process(*args: str, env: dict[str, str]) -> CliResult:
    """The CLI in its own process with exactly ``env``: nothing leaks in from the test's environment."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "infra.cli", *args], env=env, cwd=repo, capture_output=True, text=True, timeout=120
    )
    escaped = RuntimeError(proc.stderr) if "Traceback" in proc.stderr else None
    return CliResult(proc.returncode, proc.stdout + proc.stderr, escaped)

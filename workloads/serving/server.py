"""PID 1 of the serving image: Seldon Core's microservice, hardened, under a small supervisor.

    python -m workloads.serving.server [seldon-core-microservice arguments]
    (default: workloads.serving.model.FeatureModel)

The supervisor (this process):
- makes a fresh per-pod directory for prometheus_client's multiprocess files and points
  PROMETHEUS_MULTIPROC_DIR at it (workloads/serving/metrics.py says why);
- turns gRPC off unless GRPC_WORKERS is set: the chart's graph speaks REST, and an open port that
  nothing uses is attack surface;
- runs the microservice in a process group of its own and forwards SIGTERM/SIGINT to the whole
  group. Kubernetes signals PID 1 only, and Seldon's gunicorn master exits without passing it on to
  its metrics (and gRPC) processes, so a pod used to wait for SIGKILL. Every worker writes its
  request log on the way out; what is still alive after MLKIT_STOP_SECONDS (default 10) is killed.

The microservice (`--serve`) is Seldon's own `main`, with two parts replaced before it starts:
`SeldonMetrics` by ProcessMetrics (no multiprocessing.Manager), and Seldon's request parsing wrapped
so a malformed body (JSON nested too deep, a ragged ndarray, a tensor whose shape does not fit its
values, a form field that is not JSON, multipart bytes that are not text) is a 400 naming the
problem, not a 500 from Seldon's catch-all handler.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from workloads.common.settings import env_float

MODEL = "workloads.serving.model.FeatureModel"


def supervise(args: list[str]) -> int:
    stop_seconds = env_float("MLKIT_STOP_SECONDS", 10.0)
    with tempfile.TemporaryDirectory(prefix="mlkit-metrics-") as metrics_dir:
        # prometheus_client 0.8 (pinned by seldon-core) reads the lower-case name; later releases the upper.
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, "prometheus_multiproc_dir": metrics_dir}
        env.setdefault("GRPC_WORKERS", "0")
        child = subprocess.Popen(
            [sys.executable, "-m", __spec__.name, "--serve", *(args or [MODEL])], env=env, process_group=0
        )
        stop_at: list[float] = []

        def forward(signum, _frame):
            stop_at.append(time.monotonic() + stop_seconds)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = None
        while code is None:
            if stop_at and time.monotonic() > stop_at[0]:
                _kill_group(child.pid)
            code = _reap(0.2, child.pid)
        child.returncode = code
        # The microservice is gone; processes it left in its group (the metrics server) go with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + (stop_at[0] - time.monotonic() if stop_at else stop_seconds)
        while _group_alive(child.pid) and time.monotonic() < deadline:
            _reap(0.1)
        _kill_group(child.pid)
        _reap(0)
    return code if code >= 0 else 128 - code


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _reap(wait_s: float, main: int = 0) -> int | None:
    """As PID 1 this process inherits orphans: collect every exited child so none stays a zombie.
    The exit code of ``main``, if it was among them."""
    time.sleep(wait_s)
    code = None
    with contextlib.suppress(ChildProcessError):
        while (exited := os.waitpid(-1, os.WNOHANG))[0]:
            if exited[0] == main:
                code = os.waitstatus_to_exitcode(exited[1])
    return code


def serve(args: list[str]) -> None:
    from seldon_core import flask_utils, microservice, seldon_methods, wrapper

    from workloads.serving.metrics import ProcessMetrics

    microservice.SeldonMetrics = ProcessMetrics
    rest_app = wrapper.get_rest_microservice
    wrapper.get_rest_microservice = lambda *a, **k: _guard(rest_app(*a, **k))
    wrapper.get_request = _client_error(flask_utils.get_request, "request body")
    seldon_methods.extract_request_parts_json = _client_error(seldon_methods.extract_request_parts_json, "request data")
    sys.argv = ["seldon-core-microservice", *args]
    microservice.main()


def _guard(app):
    """Bodies over MLKIT_MAX_REQUEST_BYTES (default 8 MiB) are a 413 before anything reads them, and every
    HTTP error (404, 405, 413, 415) keeps its status: Seldon's catch-all handler made each a 500."""
    from flask import jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    limit = int(env_float("MLKIT_MAX_REQUEST_BYTES", 8 * 1024 * 1024))
    app.config["MAX_CONTENT_LENGTH"] = limit  # werkzeug stops reading there, chunked bodies included

    @app.before_request
    def limit_body():
        if (request.content_length or 0) > limit:
            raise RequestEntityTooLarge(
                f"request body of {request.content_length} bytes; at most {limit} (MLKIT_MAX_REQUEST_BYTES)"
            )

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        # Seldon's error shape, with the HTTP status and its headers (Allow on a 405).
        response = jsonify({"status": {"status": 1, "info": e.description, "code": e.code, "reason": e.name}})
        response.status_code = e.code
        response.headers.extend((k, v) for k, v in e.get_headers() if k.lower() != "content-type")
        return response

    return app


def _client_error(parse, what: str):
    """Seldon's request parsing raises plain exceptions on malformed input, which its catch-all handler
    turns into 500s. Parsing has no input but the request, so any of these is the client's: a 400."""
    from seldon_core.flask_utils import SeldonMicroserviceException

    @functools.wraps(parse)
    def parse_or_400(*args, **kwargs):
        try:
            return parse(*args, **kwargs)
        except RecursionError:
            message = f"{what}: JSON nested too deeply"
        except json.JSONDecodeError as e:
            message = f"{what}: a form field or query parameter is not JSON ({e})"
        except UnicodeDecodeError as e:
            message = f"{what}: a multipart file is not UTF-8 text ({e})"
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            message = f"{what}: {type(e).__name__}: {e}"
        raise SeldonMicroserviceException(message, status_code=400, reason="MICROSERVICE_BAD_DATA") from None

    return parse_or_400


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
    else:
        sys.exit(supervise(sys.argv[1:]))

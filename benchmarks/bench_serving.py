"""Single-row prediction latency and throughput: over HTTP through Seldon, in process, and bare onnxruntime.

Three layers of the same model in the same run, at concurrency 1, 8 and 32:
- http: the real seldon-core-microservice (the chart's default 2 workers x 1 thread) on loopback;
- predict: FeatureModel.predict in this process (validation + transformation + onnxruntime);
- onnxruntime: the bare InferenceSession.run on the already-transformed row.
The overhead ratios are http over onnxruntime. Clients run on the same 2 cores as the server, so
the http numbers include the client's own cost; compare runs on the same machine only.

Runs in the serving environment inside a private network namespace (make bench does both).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

ENV = "serving"
CONCURRENCY = (1, 8, 32)
REQUESTS = {1: 1000, 8: 2000, 32: 3000}
REPO = Path(__file__).resolve().parents[1]


def run() -> dict:
    from mlkit_dev.fixture import example_rows
    from mlkit_dev.local import LoadResult, LocalServer, drive, measure, only_loopback
    from workloads.serving.model import FeatureModel, request_frame

    if not only_loopback():
        raise SystemExit("run this benchmark inside a private network namespace (scripts/confined): `make bench` does")
    model_dir = Path(tempfile.mkdtemp(prefix="mlkit-bench-model-"))
    subprocess.run(
        [str(REPO / ".venv" / "workloads" / "bin" / "python"), "-m", "mlkit_dev.fixture", str(model_dir)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    rows = example_rows(100)
    bodies = [json.dumps({"jsonData": r}).encode() for r in rows]

    model = FeatureModel(str(model_dir), request_log="")
    model.load()
    vectors = [model.features(request_frame(r, None)) for r in rows]

    def bare(i: int) -> int:
        model.session.run(None, {"features": vectors[i % len(vectors)]})
        return 200

    def predict(i: int) -> int:
        model.predict(rows[i % len(rows)], None)  # what the wrapper calls per request
        return 200

    layers: dict[str, dict[int, LoadResult]] = {"onnxruntime": {}, "predict": {}, "http": {}}
    for concurrency in CONCURRENCY:
        total = REQUESTS[concurrency]
        measure(bare, concurrency=concurrency, total=200)  # warm-up
        layers["onnxruntime"][concurrency] = measure(bare, concurrency=concurrency, total=total * 5)
        layers["predict"][concurrency] = measure(predict, concurrency=concurrency, total=total)

    with LocalServer(str(model_dir), workers=2, threads=1) as server:
        drive(server.url, bodies, concurrency=8, total=200)  # warm-up: both workers loaded
        for concurrency in CONCURRENCY:
            layers["http"][concurrency] = drive(
                server.url, bodies, concurrency=concurrency, total=REQUESTS[concurrency]
            )

    def ratios(c: int) -> dict:
        http, bare_ort = layers["http"][c], layers["onnxruntime"][c]
        return {
            "p50_ratio": round(http.percentile(50) / bare_ort.percentile(50), 1),
            "p99_ratio": round(http.percentile(99) / bare_ort.percentile(99), 1),
            "throughput_ratio": round(bare_ort.per_second / http.per_second, 1),
        }

    return {
        "server": {"workers": 2, "threads": 1},
        **{layer: {f"concurrency_{c}": r.summary() for c, r in by.items()} for layer, by in layers.items()},
        "http_over_onnxruntime": {f"concurrency_{c}": ratios(c) for c in CONCURRENCY},
    }

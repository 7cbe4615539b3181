"""The kit's development and test support: everything that runs only from a checkout.

Product code ships no harness, so what exists for the tests, the benchmarks and `make demo` lives
here, apart from the packages that are deployed: the local servers (Seldon's microservice, MLflow
and moto's S3 on loopback, a simulated Kubernetes control plane), the serving fixture model, the
Telco demo batches, the demo itself and the strict validator the tests check rendered manifests with.

- Not shipped: the wheel holds only infra, mlkit_contract and workloads (pyproject.toml), no
  workloads/*/Dockerfile copies this folder, and no shipped module imports it
  (tests/infra/test_shipped.py keeps all three true). It imports the product, never the reverse.
- Found by the editable install (`make setup`), which puts the checkout itself on sys.path.
- Imports nothing here: each module brings its own dependencies, since they run in different
  environments (manifests and simcluster in .venv/infra; local in .venv/workloads and
  .venv/serving; demo_data, fixture and demo in .venv/workloads; serving_demo in .venv/serving).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Beside the checkout: the Telco extract, the upstream CRDs and chart copies the tests read.
SHARED = REPO.parent / "shared"

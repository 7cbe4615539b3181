from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def offline_charts(tmp_path_factory) -> Path:
    """A chart directory over ../shared/upstream-charts, as an offline chart source holds them."""
    from tests.live.harness import offline_chart_dir

    return offline_chart_dir(tmp_path_factory.mktemp("charts"))

"""The loop's HTML report (mlkit_dev/report.py) from a real closed loop's files, opened in a real headless Chromium."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from mlkit_dev import REPO
from mlkit_dev.browser import open_page
from mlkit_dev.report import PHASES, ReportError, gather, render, table, write_report
from workloads.monitoring.drift import psi

SCREENSHOT = REPO / "build" / "test-artifacts" / "report.png"
SECTIONS = ("1. Lineage", "2. Champion against challenger", "3. Drift per feature", "4. Serving latency")
SECTIONS += ("5. Feature job", "6. The champion gate")


@pytest.fixture(scope="module")
def loop(closed_loop):
    _, story = closed_loop
    return gather(story["data"])


class Links(HTMLParser):
    """Every URL-valued attribute and every tag of a page."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "srcset", "action", "data")]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_training_logs_the_test_predictions(closed_loop, loop):
    """train.py's evaluation/test_predictions.csv: one row per test customer, scores that give the logged AUC."""
    from sklearn.metrics import roc_auc_score

    champion, _ = closed_loop
    predictions = loop.champion.test_predictions
    assert predictions is not None and list(predictions.columns) == ["key", "label", "score"]
    assert len(predictions) == champion.rows["test"] and predictions["key"].is_unique
    assert set(predictions["label"]) == {0, 1}
    assert roc_auc_score(predictions["label"], predictions["score"]) == pytest.approx(
        champion.test["roc_auc"], abs=1e-4
    )


def test_the_report_recomputes_what_the_loop_measured(loop):
    """Same windows, same rows, same PSI as the drift job in the loop; the bars drawn are the bins PSI compared."""
    for phase in PHASES:
        measured, report = loop.story[phase], loop.reports[phase]
        assert report.rows == measured["rows_compared"]
        assert round(report.max_psi, 4) == measured["max_psi"]
        assert round(report.prediction_psi, 4) == measured["prediction_psi"]
    shown = {panel.feature for panel in loop.panels}
    assert set(loop.story["drifted"]["drifted_features"]) <= shown
    assert sum(not panel.drifted for panel in loop.panels if panel.kind != "score") == 2
    for panel in loop.panels:
        assert len(panel.shares["reference"]) == len(panel.bins)
        for phase in PHASES:
            assert psi(np.asarray(panel.shares["reference"]), np.asarray(panel.shares[phase])) == pytest.approx(
                panel.psi[phase], abs=1e-9
            ), (panel.feature, phase)


def test_the_report_renders_in_chromium(loop, tmp_path):
    report = tmp_path / "report.html"
    report.write_text(render(loop), encoding="utf-8")
    links = Links()
    links.feed(report.read_text())
    assert links.urls and all(url.startswith(("data:image/png;base64,", "#")) for url in links.urls), links.urls
    assert "script" not in links.tags  # nothing needs JavaScript

    page = open_page(report, width=1280, height=4000)

    assert page.errors == []
    assert page.requests[0] == report.as_uri()
    assert all(url.startswith("data:") for url in page.requests[1:]), page.requests
    # ROC, calibration, one per drift panel; every image decoded and laid out with a size.
    assert len(page.elements) >= 2 + len(loop.panels)
    for element in page.elements:
        assert element["width"] > 0 and element["height"] > 0, element
        if element["tag"] == "img":
            assert element["natural_width"] > 0 and element["natural_height"] > 0, element
    for heading in SECTIONS:
        assert heading in page.text
    assert loop.challenger.tags["mlkit.promotion"] == loop.story["retrain"]["champion_gate"]
    assert loop.story["retrain"]["champion_gate"] in page.text  # verbatim
    assert loop.story["drifted"]["alert"]["name"] in page.text
    for table_name, reason, _, _ in loop.quarantine:
        assert reason in page.text, (table_name, reason)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(page.screenshot)
    width, height = png_size(page.screenshot)
    assert width == 1280 and height > 2000, (width, height)
    assert len(page.screenshot) > 100_000  # a page of figures and tables, not a blank one


def test_the_command_writes_the_default_path(loop):
    done = subprocess.run(
        [sys.executable, "-m", "mlkit_dev.report", str(loop.data)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(loop.data / "report.html")
    assert (loop.data / "report.html").stat().st_size > 50_000


def test_text_is_escaped():
    cell = '<img src="https://example.com/x.png" onerror="alert(1)">'
    rendered = table(["a & b"], [[cell]])
    assert "<img" not in rendered and "&lt;img src=&quot;https://example.com" in rendered
    assert "a &amp; b" in rendered


def test_a_missing_story_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "feature_job.json").write_text(json.dumps({"January": []}))
    with pytest.raises(ReportError, match=r"monitoring/story\.json is missing"):
        write_report(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mlkit_dev.report", str(tmp_path)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"mlkit report: {tmp_path / 'monitoring' / 'story.json'} is missing: "
        f"run `make demo` (or mlkit_dev/monitoring_loop.py) on {tmp_path} first"
    )
    assert not (tmp_path / "report.html").exists()


def test_a_story_without_the_retraining_names_what_it_lacks(tmp_path):
    (tmp_path / "monitoring" / "requests").mkdir(parents=True)
    (tmp_path / "monitoring" / "story.json").write_text(json.dumps({"champion": {"version": "1"}}))
    (tmp_path / "feature_job.json").write_text("{}")
    with pytest.raises(ReportError, match=r"story\.json lacks what the report needs \(KeyError: 'retrain'\)"):
        write_report(tmp_path)

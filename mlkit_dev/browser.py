"""A real headless Chromium, driven over its DevTools protocol, to check a page the way a reader would see it.

`open_page(path)` loads a local file and returns what went wrong in the browser (console errors, uncaught
exceptions, failed loads), every URL the page requested, the rendered size of each image and SVG, and a
screenshot. Chromium is Debian's `chromium` package (requirements/apt.txt); the protocol client is
websocket-client (in the workloads lock). Runs as root too: `--no-sandbox`.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Every <img> and outermost <svg>: its box as laid out, and for images whether the data decoded.
PROBE = """JSON.stringify(Array.from(document.querySelectorAll('img, svg:not(svg svg)')).map(e => {
  const box = e.getBoundingClientRect();
  return {tag: e.tagName.toLowerCase(), alt: e.getAttribute('alt') || e.getAttribute('aria-label') || '',
          width: box.width, height: box.height,
          natural_width: e.naturalWidth ?? null, natural_height: e.naturalHeight ?? null,
          complete: e.complete ?? true};
}))"""


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or did not answer in time."""


@dataclass
class PageCheck:
    title: str
    errors: list[str]  # console.error calls, uncaught exceptions, error log entries (a failed load among them)
    requests: list[str]  # every URL the page asked for, the page itself first
    elements: list[dict]  # PROBE's result, one entry per image or SVG
    screenshot: bytes  # PNG of the whole page
    text: str = field(repr=False, default="")  # document.body.innerText


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise BrowserError("no Chromium on PATH: install Debian's `chromium` package (requirements/apt.txt; make setup)")


class Chromium:
    """One headless browser process and a protocol connection to it; a context manager."""

    def __init__(self, *, width: int = 1280, height: int = 4000, timeout_s: float = 60):
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="mlkit-chromium-")
        self._next_id = 0
        self._events: list[dict] = []

    def __enter__(self) -> Chromium:
        import websocket

        profile = Path(self._profile.name)
        self._log = (profile / "chromium.log").open("w")
        command = [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        command += ["--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio"]
        command += [
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={self.width},{self.height}",
        ]
        self._process = subprocess.Popen([*command, "about:blank"], stdout=self._log, stderr=subprocess.STDOUT)
        # Port 0: Chromium picks a free port and writes it, with the browser's endpoint, to this file.
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not (active.is_file() and len(active.read_text().split()) == 2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise BrowserError(f"Chromium did not start: {(profile / 'chromium.log').read_text()[-2000:]}")
            time.sleep(0.1)
        port, endpoint = active.read_text().split()
        # No Origin header: Chromium refuses protocol connections from origins it was not told to allow.
        self._socket = websocket.create_connection(
            f"ws://127.0.0.1:{port}{endpoint}", timeout=self.timeout_s, suppress_origin=True
        )
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_socket", None):
            self._socket.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        self._profile.cleanup()

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """One protocol command; events that arrive before its answer are kept for `wait_for`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        while True:
            answer = json.loads(self._socket.recv())
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self._events.append(answer)

    def wait_for(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self._events.append(json.loads(self._socket.recv()))
        raise BrowserError(f"{method}: not within {self.timeout_s:.0f} s")

    def evaluate(self, expression: str, session: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating {expression[:60]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open_page(self, path: Path) -> PageCheck:
        """Load ``path`` in a new tab, wait for its load event, and report what the browser saw."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", {}, session)
        metrics = {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics, session)
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session)
        self.wait_for("Page.loadEventFired", session)
        elements = json.loads(self.evaluate(PROBE, session))
        title = self.evaluate("document.title", session)
        text = self.evaluate("document.body.innerText", session)
        size = self.call("Page.getLayoutMetrics", {}, session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}, session
        )
        mine = [e for e in self._events if e.get("sessionId") == session]
        self.call("Target.closeTarget", {"targetId": target})
        return PageCheck(title, page_errors(mine), requested(mine), elements, base64.b64decode(shot["data"]), text)


def page_errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif event.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif event.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        elif event.get("method") == "Network.loadingFailed":
            errors.append(f"load failed: {params.get('errorText')} ({params.get('requestId')})")
    return errors


def requested(events: list[dict]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]


def open_page(path: Path, *, width: int = 1280, height: int = 4000) -> PageCheck:
    with Chromium(width=width, height=height) as browser:
        return browser.open_page(path)

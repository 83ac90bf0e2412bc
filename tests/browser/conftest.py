"""Fixtures of the browser tests: a real `stratus serve` (the conformance harness starts it), Debian's Chromium
driven by Playwright, and an artifacts directory that gets a screenshot of every page.

Chromium is `/usr/bin/chromium` (or `$STRATUS_CHROMIUM`); without it, or without Playwright, the tests are skipped
loudly, and under CI they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "conformance"))

from harness.server import Backend, StratusServer  # noqa: E402

CHROMIUM = os.environ.get("STRATUS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _require(cond: bool, why: str) -> None:
    if cond:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run under CI: {why}", pytrace=False)
    pytest.skip(f"browser tests SKIPPED: {why}")


def artifacts_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "browser-artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    d = artifacts_dir()
    d.mkdir(parents=True, exist_ok=True)
    return d


# The first create and the first update of a module's server stay in Creating / Updating for 2 s (the binary is
# built with --all-features, so its fail points work), so that the console is seen moving a status on by itself.
HOLD = "create-function=1*sleep(2000);update-function=1*sleep(2000)"


@pytest.fixture(scope="module")
def server():
    srv = StratusServer(Backend("sqlite"), failpoints=HOLD)
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()


@pytest.fixture(scope="session")
def browser():
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "Playwright for Python is not installed (pip install -r tests/browser/requirements.txt)")
    profile = tempfile.mkdtemp(prefix="stratus-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 860}, ignore_default_args=["--enable-automation"],
        )
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


class Shots:
    """Saves numbered full-page screenshots under the artifacts directory."""

    def __init__(self, root: Path, prefix: str):
        self.root = root
        self.prefix = prefix
        self.n = 0

    def __call__(self, page, name: str) -> Path:
        self.n += 1
        path = self.root / f"{self.prefix}-{self.n:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.png"
        page.evaluate("window.scrollTo(0, 0)")  # a sticky top bar would otherwise show mid-page
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser, request):
    """A fresh tab (its own sessionStorage) that records console errors and failed requests."""
    pg = browser.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    yield pg
    if not pg.is_closed():
        pg.close()


@pytest.fixture
def shots(artifacts, request):
    return Shots(artifacts, request.node.name.replace("test_", ""))

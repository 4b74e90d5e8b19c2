"""The report in a real browser: headless Chromium opens the index and a notebook page from disk (no network),
takes screenshots, and the DOM shows that plotly drew its figures as SVG."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from test_report_support import shared_report

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
                None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium'; "
                                                         ".ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1280,900",
         "--virtual-time-budget=10000"]


def chromium(tmp_path, url: str, *action: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh profile per start
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *action, url], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return shared_report(tmp_path_factory)


def test_index_and_a_report_page_render_with_plotly_svg(report, tmp_path):
    out, results = report
    for page in (out / "index.html", results["gate_explorer"].html):
        shot = tmp_path / f"{page.stem}.png"
        chromium(tmp_path, page.as_uri(), f"--screenshot={shot}")
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # a real, non-blank page
    dom = chromium(tmp_path, results["gate_explorer"].html.as_uri(), "--dump-dom").stdout
    drawn = re.findall(r'<div class="plot-container plotly"[^>]*>.*?<svg class="main-svg"', dom, flags=re.S)
    assert len(drawn) >= 3  # the selection, the v1-vs-v2 comparison and the saturation figure
    index_dom = chromium(tmp_path, (out / "index.html").as_uri(), "--dump-dom").stdout
    assert "gate_explorer.html" in index_dom and "failed" in index_dom

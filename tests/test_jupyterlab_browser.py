"""The notebooks in a real JupyterLab: headless Chromium (selenium + chromedriver) opens the attention
explorer, runs all cells, moves the sample slider and sees the figure change. Skips when Chromium,
chromedriver or selenium is missing (.ci/run installs the Debian packages)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from cbat.report import NOTEBOOK_DIR, PROJECT_ROOT
from test_report_support import tiny_sweep

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMEDRIVER = shutil.which("chromedriver")
selenium = pytest.importorskip("selenium", reason="selenium is not installed (the project's dev extra has it)")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="Chromium and chromedriver are not installed (Debian 'chromium' and "
                                       "'chromium-driver'; .ci/run installs them)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000"]
SERVER_START_S, RUN_ALL_S, CHANGE_S = 40, 60, 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path, tmp_path_factory):
    """JupyterLab on 127.0.0.1 (no token, app exposed for the test) over a folder holding the attention
    explorer with its parameters pointed at the tiny sweep; yields the notebook's URL."""
    sweep = tiny_sweep(tmp_path_factory)
    book = json.loads((NOTEBOOK_DIR / "attention_explorer.ipynb").read_text())
    cell = next(c for c in book["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = [f"sweep_dir = {str(sweep)!r}\n", "run_id = 'cbat_v2__s0__chrom'\n", "n_samples = 2\n",
                      "temperatures = [0.5, 2.0]\n"]
    (tmp_path / "explorer.ipynb").write_text(json.dumps(book))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = (tmp_path / "server.log").open("w")  # a file, not a pipe: a full pipe would block the server
    root = ["--allow-root"] if os.geteuid() == 0 else []  # CI containers run as root
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", *root, "--no-browser", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
                               "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
                               f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=None"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:  # readiness: the server answers its status API (or it died, or the limit passed)
            try:
                urllib.request.urlopen(f"{base}/api/status", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start in {SERVER_START_S} s: "
                                f"{(tmp_path / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"{base}/lab/tree/explorer.ipynb"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_jupyterlab_runs_the_explorer_and_a_slider_changes_the_figure(lab, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(SERVER_START_S)
        driver.get(lab)
        WebDriverWait(driver, SERVER_START_S).until(lambda d: d.execute_script(
            "const app = window.jupyterapp; const w = app && app.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel)"))
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        figure = "//div[contains(@class,'widget-output')]//div[contains(@class,'js-plotly-plot')]"
        WebDriverWait(driver, RUN_ALL_S).until(lambda d: d.find_elements(By.XPATH, figure))

        def drawn() -> str:  # the map as drawn: the heatmap image and the title
            return driver.execute_script(
                "const f = document.evaluate(arguments[0], document, null, 9, null).singleNodeValue;"
                "return f.querySelector('.gtitle').textContent + '|' + (f.querySelector('image') || {}).href?.baseVal",
                figure)

        before = drawn()
        assert "sample 0" in before
        handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        WebDriverWait(driver, CHANGE_S).until(lambda d: drawn() != before)
        assert "sample 1" in drawn()
    finally:
        driver.quit()

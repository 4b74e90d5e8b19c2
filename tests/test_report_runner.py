"""The report runner always finishes: a cell that never returns or a kernel that dies fails that notebook
(with its reason and cell) within the limit, the others still run and render, the index lists them all;
notebook paths resolve from notebooks/ and from the repository root."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from cbat import report
from cbat.report import (NOTEBOOK_DIR, PLOTLY_JS, PROJECT_ROOT, NotebookJob, execute_notebook, render_all,
                         run_notebooks, write_index)
from cbat.sweep import threads_per_worker
from test_report_support import tiny_params, tiny_sweep
from test_sweep_kill import _alive

CELL_LIMIT_S = 10.0


def notebook(path: Path, *cells: str) -> Path:
    book = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("x = 1")
    parameters.metadata["tags"] = ["parameters"]
    book.cells = [parameters, *(nbformat.v4.new_code_cell(c) for c in cells)]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, str(path))
    return path


def test_a_never_returning_cell_and_a_dead_kernel_fail_their_notebook_only(tmp_path):
    sources = tmp_path / "nb"
    sources.mkdir()
    jobs = [NotebookJob("first_ok", notebook(sources / "a.ipynb", "y = x + 1")),
            NotebookJob("never_returns", notebook(sources / "b.ipynb", "y = 2", "while True:\n    pass")),
            NotebookJob("kernel_dies", notebook(sources / "c.ipynb", "import os\nos._exit(3)")),
            NotebookJob("last_ok", notebook(sources / "d.ipynb", "print(x)"))]
    out = tmp_path / "out"
    ordered = run_notebooks(jobs, out, timeout_s=CELL_LIMIT_S, workers=2)
    assert [r.name for r in ordered] == [job.name for job in jobs]  # job order, whatever finished first
    results = {r.name: r for r in ordered}
    hung, dead = results["never_returns"], results["kernel_dies"]
    assert hung.status == "failed" and hung.error.startswith("Timeout: a cell ran past the 10 s cell limit")
    assert (hung.cell, hung.cell_code) == (3, "while True:")
    # Marked failed within its limit: the cell limit plus kernel start/stop, never the watchdog's minutes.
    assert hung.seconds < CELL_LIMIT_S + 60
    assert dead.status == "failed" and "DeadKernelError" in dead.error and dead.cell == 2
    assert results["first_ok"].status == results["last_ok"].status == "ok"
    render_all(list(results.values()), out)
    index = write_index(out, list(results.values()), {"execute": 0.0}, {}).read_text()
    for name in results:
        assert f'href="{name}.html"' in index
    assert 'class="failed">failed<' in index and "(cell 3: while True:)" in index
    banner = hung.html.read_text()
    assert 'class="cbat-banner"' in banner and "failed in cell 3" in banner and "10 s cell limit" in banner
    assert 'class="cbat-banner"' not in results["last_ok"].html.read_text()
    assert json.loads((out / "report.json").read_text())["notebooks"][1]["cell"] == 3


def test_notebooks_run_side_by_side_costliest_first_and_share_the_cores(tmp_path):
    """"left" and "right" each announce themselves with a file and wait for the other's: only side by side can
    both finish. "short" comes between them in job order but costs least, so it must start after both (it
    checks their files): started in job order instead, it fails, and so does "left" waiting for "right". Each
    kernel gets its share of the cores as OpenMP threads; results come back in job order."""
    folder = str(tmp_path)
    wait = ("import os, time\nfrom pathlib import Path\n"
            f"assert os.environ['OMP_NUM_THREADS'] == '{threads_per_worker(2)}'\n"
            f"Path({folder!r}, me).touch()\n"
            "deadline = time.monotonic() + 120\n"
            f"while not Path({folder!r}, other).exists():\n"
            "    assert time.monotonic() < deadline, 'the other notebook never started'\n"
            "    time.sleep(0.05)")
    after_both = ("from pathlib import Path\n"
                  f"assert Path({folder!r}, 'left').exists() and Path({folder!r}, 'right').exists()")
    jobs = [NotebookJob("left", notebook(tmp_path / "left.ipynb", "me, other = 'left', 'right'", wait), cost=2),
            NotebookJob("short", notebook(tmp_path / "short.ipynb", after_both)),
            NotebookJob("right", notebook(tmp_path / "right.ipynb", "me, other = 'right', 'left'", wait), cost=3)]
    results = run_notebooks(jobs, tmp_path / "out", timeout_s=180, workers=2)
    assert [(r.name, r.status, r.error) for r in results] == [("left", "ok", ""), ("short", "ok", ""),
                                                              ("right", "ok", "")]


def test_the_watchdog_stops_a_notebook_that_hangs_outside_any_cell_limit(tmp_path):
    """With no cell limit only the watchdog can end a hang; the child is stopped and the caller goes on."""
    source = notebook(tmp_path / "hang.ipynb", "import time\ntime.sleep(10**6)")
    request = {"source": str(source), "target": str(tmp_path / "hang_out.ipynb"), "kernel": "python3",
               "timeout_s": None, "cwd": str(tmp_path), "parameters": {}}
    status, error = report._execute_in_child(request, wall_s=8)
    assert status == "failed" and "ran past its 8 s limit" in error


def test_cell_limit_is_finite_by_default():
    assert report.ReportParams().notebook_timeout_s == report.CELL_TIMEOUT_S > 0
    assert execute_notebook.__defaults__[1] == report.CELL_TIMEOUT_S


def test_project_path_resolves_from_notebooks_and_from_the_root(monkeypatch, tmp_path):
    for cwd in (NOTEBOOK_DIR, PROJECT_ROOT):
        monkeypatch.chdir(cwd)
        assert report.project_path("notebooks/quickstart.ipynb").resolve() == NOTEBOOK_DIR / "quickstart.ipynb"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    assert report.project_path("here") == Path("here")  # what exists from the working directory wins
    assert report.project_path(tmp_path) == tmp_path


def test_find_sweep_trains_the_quick_sweep_with_a_message_when_the_path_is_missing(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(report, "ensure_sweep", lambda sweep_dir, out, **params: calls.append((out, params)) or out)
    report.find_sweep("reports/no_such_sweep", "reports/notebooks", task="grammar")
    assert calls == [(PROJECT_ROOT / "reports/notebooks", {"quick": True, "task": "grammar"})]
    said = capsys.readouterr().out
    assert "reports/no_such_sweep: no sweep there" in said and "training what is missing" in said


# Every notebook from notebooks/ (where JupyterLab opens it), and the cheapest one also from the root: the paths
# resolve through the same library helper (cbat.report.project_path), so one root case pins it without doubling
# the suite's notebook time. They run side by side, as the report runs them, once per session.
CASES = [(source, "notebooks") for source in sorted(NOTEBOOK_DIR.glob("*.ipynb"))] + \
        [(NOTEBOOK_DIR / "gate_explorer.ipynb", "root")]


@pytest.fixture(scope="module")
def source_runs(tmp_path_factory):
    sweep, tiny = tiny_sweep(tmp_path_factory), tiny_params()
    out = tmp_path_factory.mktemp("source_runs")
    jobs = []
    for source, cwd in CASES:
        name = f"{source.stem}-{cwd}"
        # the report tests' tiny sizes; the sweep path relative to the repository root, as the defaults are
        parameters = {"sweep_dir": os.path.relpath(sweep, PROJECT_ROOT), "device": "cpu",
                      "output_dir": str(out / name), **tiny.notebooks.get(source.stem, {})}
        if source.stem == "ablation_report":
            parameters["seeds"] = tiny.seeds
        jobs.append(NotebookJob(name, source, parameters, cwd=NOTEBOOK_DIR if cwd == "notebooks" else PROJECT_ROOT))
    return {result.name: result for result in run_notebooks(jobs, out, workers=2)}


@pytest.mark.slow
@pytest.mark.parametrize("source, cwd", CASES, ids=lambda v: v.stem if isinstance(v, os.PathLike) else v)
def test_source_notebook_runs_from_notebooks_and_from_the_root(source_runs, source, cwd):
    result = source_runs[f"{source.stem}-{cwd}"]
    assert result.status == "ok", f"{result.error} (cell {result.cell}: {result.cell_code})"
    assert not (NOTEBOOK_DIR / "sweep").exists() and not (NOTEBOOK_DIR / PLOTLY_JS).exists()


def test_sigterm_stops_the_running_notebooks_instead_of_waiting_for_them(tmp_path):
    """An interrupted report used to wait for every running notebook (up to its wall limit, here none) before
    it could exit; its kernels now get stopped. The kernel writes its pid when it starts: no polling for luck."""
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "kernel.pid"
    source = notebook(tmp_path / "hang.ipynb",
                      f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
                      "time.sleep(10**6)")
    script = ("import sys; from pathlib import Path; from cbat.interrupts import sigterm_raises; "
              "from cbat.report import NotebookJob, run_notebooks\n"
              "with sigterm_raises():\n"
              "    run_notebooks([NotebookJob('hang', Path(sys.argv[1]))], sys.argv[2], timeout_s=None)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(source), str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "the notebook's kernel never started"
            time.sleep(0.1)
        kernel = int(marker.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert not (tmp_path / "out" / "hang.ipynb").exists()  # no half-run copy left to read as a result
        deadline = time.monotonic() + 30
        while _alive(kernel):
            assert time.monotonic() < deadline, "the kernel outlived its interrupted report"
            time.sleep(0.1)
    finally:
        proc.kill()

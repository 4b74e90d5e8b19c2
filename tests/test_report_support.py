"""One tiny executed sweep and one batch report, shared by the report, notebook, browser and explorer tests.

Both are built once per pytest session under its base temp folder (whichever test asks first) and read
back by the others, so the whole notebook layer costs one sweep and one papermill pass.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from cbat.report import NOTEBOOK_DIR, NotebookResult, ReportParams, build_report, run_sweep

BROKEN_ERROR = "planted failure for the index test"


def tiny_params(sweep_dir: Path | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> ReportParams:
    """Three variants x one seed on 240 short mixture pairs (the shortest the mixture allows), one epoch; every
    notebook at toy size."""
    notebooks = {"quickstart": {"n_pairs": 240, "held_out_pairs": 120, "enhancer_len": 600, "promoter_len": 600,
                                "epochs": 1},
                 "attention_explorer": {"n_samples": 2, "temperatures": [0.5, 1.0, 4.0]},
                 "ablation_report": {"n_boot": 50},
                 "loop_attribution": {"n_loops": 1, "n_shuffles": 2, "n_steps": 8, "max_steps": 32, "n_ism": 1}}
    present = {p.stem for p in notebook_dir.glob("*.ipynb")}
    return ReportParams(
        variants=["baseline", "cbat_v1", "cbat_v2"], seeds=[0], device="cpu", workers=2,
        sweep_dir=None if sweep_dir is None else str(sweep_dir), notebook_timeout_s=600,
        sweep={"data": {"n_pairs": 240, "enhancer_len": 600, "promoter_len": 600},
               "settings": {"epochs": 1, "batch_size": 32, "hook_every": 2, "eval_batch_size": 64}},
        notebooks={k: v for k, v in notebooks.items() if k in present})


def tiny_sweep(tmp_path_factory) -> Path:
    """The session's tiny sweep folder (trained on first use)."""
    sweep_dir = tmp_path_factory.getbasetemp() / "cbat_tiny_sweep"
    if not (sweep_dir / "results.parquet").exists():
        run_sweep(tiny_params(sweep_dir), sweep_dir)
    return sweep_dir


def _broken_notebook(path: Path) -> None:
    book = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("sweep_dir = None")
    parameters.metadata["tags"] = ["parameters"]
    book.cells = [parameters, nbformat.v4.new_code_cell(f"raise RuntimeError({BROKEN_ERROR!r})")]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, str(path))


def shared_report(tmp_path_factory) -> tuple[Path, dict[str, NotebookResult]]:
    """The report of every notebook in ``notebooks/`` plus one that raises (``broken``), on the tiny sweep.

    Returns the report folder and the results by notebook job name.
    """
    base = tmp_path_factory.getbasetemp()
    out, notebook_dir = base / "cbat_report", base / "cbat_notebooks"
    if not (out / "report.json").exists():
        notebook_dir.mkdir(exist_ok=True)
        for source in NOTEBOOK_DIR.glob("*.ipynb"):
            shutil.copy(source, notebook_dir / source.name)
        _broken_notebook(notebook_dir / "broken.ipynb")
        build_report(out, tiny_params(tiny_sweep(tmp_path_factory), notebook_dir), notebook_dir=notebook_dir)
    summary = json.loads((out / "report.json").read_text())
    results = {}
    for entry in summary["notebooks"]:
        results[entry["name"]] = NotebookResult(
            name=entry["name"], title=entry["title"], status=entry["status"], error=entry["error"],
            ipynb=out / entry["ipynb"] if entry["ipynb"] else None, html=out / entry["html"] if entry["html"] else None,
            seconds=entry["seconds"], glued=entry["glued"], cell=entry["cell"], cell_code=entry["cell_code"])
    return out, results


def test_glued_records_hold_null_for_missing_numbers():
    # a table's records carry NaN for runs compared with nothing; the kernel's strict JSON turned them into a
    # warning printed into the page and the string "nan" in report.json
    import numpy as np
    import pandas as pd

    from cbat.report import json_safe

    records = pd.DataFrame({"run_id": ["a", "b"], "beats_baselines": [True, np.nan],
                            "diff": [0.1, np.nan]}).to_dict(orient="records")
    stored = json_safe({"flags": records, "inf": float("inf")})
    assert stored["flags"][1] == {"run_id": "b", "beats_baselines": None, "diff": None} and stored["inf"] is None
    assert json.loads(json.dumps(stored, allow_nan=False)) == stored

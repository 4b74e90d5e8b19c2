"""A real `cbat sweep` process killed mid-run (SIGTERM, then SIGKILL) resumes with no duplicate, missing or
half-written rows."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

SPEC = {"variants": ["baseline"], "seeds": [0, 1, 2], "splits": ["chrom"],
        "data": {"task": "grammar", "n_pairs": 120, "seed": 0},
        "settings": {"epochs": 2, "batch_size": 16, "num_threads": 1, "device": "cpu"}}
RUN_IDS = [f"baseline__s{seed}__chrom" for seed in (0, 1, 2)]


def _sweep(spec: Path, out: Path, workers: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cbat.cli", "sweep", "--spec", str(spec), "--out", str(out), "--no-progress",
           "--workers", str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _records(out: Path) -> list[Path]:
    return sorted((out / "runs").glob("*/record.json"))


def _kill_after_records(proc: subprocess.Popen, out: Path, n_records: int, sig: int) -> None:
    """Wait until ``n_records`` runs finished and an unfinished one is training, then send ``sig``."""
    while proc.poll() is None:
        started = [p for p in (out / "runs").glob("*") if p.is_dir()] if (out / "runs").exists() else []
        if len(_records(out)) >= n_records and len(started) > len(_records(out)):
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    time.sleep(1.5)  # a SIGKILLed parent's children notice within a second and exit


def _check_consistent(out: Path) -> pd.DataFrame:
    records = [json.loads(p.read_text()) for p in _records(out)]  # each parses: nothing half-written
    table = pd.read_parquet(out / "results.parquet") if (out / "results.parquet").exists() else None
    if table is not None:
        assert table.run_id.is_unique
        assert set(table.run_id) <= {r["run_id"] for r in records}
        assert (table.status == "ok").all() and table.aupr.notna().all()
    return table


def test_killed_sweep_resumes_without_duplicates(tmp_path):
    spec, out = tmp_path / "spec.json", tmp_path / "sweep"
    spec.write_text(json.dumps(SPEC))

    _kill_after_records(_sweep(spec, out), out, 1, signal.SIGTERM)
    assert len(_records(out)) == 1
    _check_consistent(out)

    # Two workers: the killed parent's child processes must notice and stop instead of writing on.
    _kill_after_records(_sweep(spec, out, workers=2), out, 2, signal.SIGKILL)
    finished = len(_records(out))
    assert finished in (2, 3)
    time.sleep(2.0)
    assert len(_records(out)) == finished
    _check_consistent(out)

    done = _sweep(spec, out)
    assert done.wait(timeout=300) == 0, done.stderr.read()
    table = _check_consistent(out)
    assert list(table.run_id) == RUN_IDS
    assert not list(out.rglob("state.pt"))  # every run finished, so no resumable state is left behind

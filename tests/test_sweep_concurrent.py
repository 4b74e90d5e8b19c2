"""Two `cbat sweep` processes on one folder: every run is trained once and the table has no duplicate rows.

Synchronised on event files (``cbat.rundir.announce``): the first process is held inside its first run
until the second has started a run of its own, so the two really overlap.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cbat import rundir

SPEC = {"variants": ["baseline"], "seeds": [0, 1, 2, 3], "splits": ["chrom"],
        "data": {"task": "grammar", "n_pairs": 120, "seed": 0},
        "settings": {"epochs": 1, "batch_size": 32, "num_threads": 1, "device": "cpu"}}
RUN_IDS = [f"baseline__s{seed}__chrom" for seed in SPEC["seeds"]]
TIMEOUT_S = 240


def _sweep(spec: Path, out: Path, events: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cbat.cli", "sweep", "--spec", str(spec), "--out", str(out), "--no-progress"]
    env = {**os.environ, rundir.EVENTS_ENV: str(events)}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists() or not path.read_text().strip():
        assert proc.poll() is None, f"sweep ended before {path.name}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no {path.name} within {TIMEOUT_S} s"
        time.sleep(0.05)


def test_two_sweeps_on_one_folder_train_each_run_once(tmp_path):
    spec, out, events = tmp_path / "spec.json", tmp_path / "sweep", tmp_path / "events"
    spec.write_text(json.dumps(SPEC))
    events.mkdir()
    for run_id in RUN_IDS[:2]:
        (events / f"{run_id}.start.hold").touch()

    first = _sweep(spec, out, events)
    _wait_for(events / f"{RUN_IDS[0]}.start", first)  # the first holds run 0 (and its lock)
    second = _sweep(spec, out, events)
    _wait_for(events / f"{RUN_IDS[1]}.start", second)  # so the second skipped it and took run 1
    for hold in events.glob("*.hold"):
        hold.unlink()
    for proc in (first, second):
        assert proc.wait(timeout=TIMEOUT_S) == 0, proc.stderr.read()

    starts = {run_id: (events / f"{run_id}.start").read_text().split() for run_id in RUN_IDS}
    assert all(len(pids) == 1 for pids in starts.values()), starts  # every run trained exactly once
    assert starts[RUN_IDS[0]] != starts[RUN_IDS[1]]  # by two different processes
    table = pd.read_parquet(out / "results.parquet")
    assert list(table.run_id) == RUN_IDS and (table.status == "ok").all()
    assert [r["run_id"] for r in rundir.read_records(out)] == RUN_IDS

"""A real `cbat sweep` process killed mid-run (SIGTERM with one worker, SIGKILL with two) resumes with no
duplicate, missing or half-written rows.

The test never polls for luck: through ``cbat.rundir.announce`` ($CBAT_RUN_EVENTS) a run writes an event
file after each epoch's checkpoint and, while a ``.hold`` file exists for that event, waits there. So the
signal always arrives while the chosen runs sit at a known epoch.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cbat import rundir

SPEC = {"variants": ["baseline"], "seeds": [0, 1, 2], "splits": ["chrom"],
        "data": {"task": "grammar", "n_pairs": 120, "seed": 0},
        "settings": {"epochs": 3, "batch_size": 16, "num_threads": 1, "device": "cpu"}}
RUN_IDS = [f"baseline__s{seed}__chrom" for seed in (0, 1, 2)]
TIMEOUT_S = 240


def _sweep(spec: Path, out: Path, events: Path, workers: int = 1, *flags: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cbat.cli", "sweep", "--spec", str(spec), "--out", str(out), "--no-progress",
           "--workers", str(workers), *flags]
    env = {**os.environ, rundir.EVENTS_ENV: str(events)}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _hold(events: Path, run_id: str, event: str) -> None:
    (events / f"{run_id}.{event}.hold").touch()


def _wait_for(events: Path, run_id: str, event: str, proc: subprocess.Popen) -> int:
    """Block until the run announced ``event``; returns the announcing pid. Fails if the sweep ends first."""
    path, deadline = events / f"{run_id}.{event}", time.monotonic() + TIMEOUT_S
    while not path.exists() or not path.read_text().strip():
        assert proc.poll() is None, f"sweep ended before {run_id} reached {event}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"{run_id} did not reach {event} within {TIMEOUT_S} s"
        time.sleep(0.05)
    return int(path.read_text().split()[-1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"worker processes {pids} outlived their killed sweep"
        time.sleep(0.05)


def _records(out: Path) -> list[str]:
    return [p.parent.name for p in rundir.record_files(out)]


def _count(events: Path, run_id: str, event: str) -> int:
    path = events / f"{run_id}.{event}"
    return len(path.read_text().split()) if path.exists() else 0


def _check_consistent(out: Path) -> pd.DataFrame:
    records = rundir.read_records(out)  # each parses: nothing half-written
    table = pd.read_parquet(out / "results.parquet") if (out / "results.parquet").exists() else None
    if table is not None:
        assert table.run_id.is_unique
        assert set(table.run_id) <= {r["run_id"] for r in records}
        assert (table.status == "ok").all() and table.aupr.notna().all()
    return table


def test_killed_sweep_resumes_without_duplicates(tmp_path):
    spec, out, events = tmp_path / "spec.json", tmp_path / "sweep", tmp_path / "events"
    spec.write_text(json.dumps(SPEC))
    events.mkdir()
    s0, s1, s2 = RUN_IDS

    # One worker, SIGTERM: run s0 finishes, s1 is stopped after its first epoch's checkpoint.
    _hold(events, s1, "epoch1")
    proc = _sweep(spec, out, events)
    _wait_for(events, s1, "epoch1", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    assert _records(out) == [s0]
    assert (out / "runs" / s1 / "state.pt").is_file() and not (out / "runs" / s2).exists()
    assert list(_check_consistent(out).run_id) == [s0]

    # Two workers, SIGKILL of the parent: both children sit at a checkpoint (s1 resumed from epoch 1, so its
    # next is epoch 2); the killed parent's children must notice and stop instead of writing on.
    _hold(events, s2, "epoch1")
    _hold(events, s1, "epoch2")
    proc = _sweep(spec, out, events, workers=2)
    children = [_wait_for(events, s1, "epoch2", proc), _wait_for(events, s2, "epoch1", proc)]
    assert proc.pid not in children
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    _wait_gone(children)
    assert _records(out) == [s0]
    _check_consistent(out)

    for hold in events.glob("*.hold"):
        hold.unlink()
    done = _sweep(spec, out, events)
    assert done.wait(timeout=TIMEOUT_S) == 0, done.stderr.read()
    table = _check_consistent(out)
    assert list(table.run_id) == RUN_IDS
    assert not list(out.rglob("state.pt"))  # every run finished, so no resumable state is left behind
    # Each epoch of each run was trained exactly once: the reruns resumed instead of starting over.
    for run_id in RUN_IDS:
        assert [_count(events, run_id, f"epoch{k}") for k in (1, 2, 3)] == [1, 1, 1], run_id


def test_killed_worker_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    """A worker that dies without writing its record (SIGKILL, out of memory) leaves a failed record naming its
    exit code; the other run finishes, and --retry-failed trains the failed one again."""
    spec, out, events = tmp_path / "spec.json", tmp_path / "sweep", tmp_path / "events"
    spec.write_text(json.dumps({**SPEC, "seeds": [0, 1]}))
    events.mkdir()
    s0, s1 = RUN_IDS[:2]
    _hold(events, s0, "epoch1")
    proc = _sweep(spec, out, events, workers=2)
    child = _wait_for(events, s0, "epoch1", proc)
    assert child != proc.pid
    os.kill(child, signal.SIGKILL)
    assert proc.wait(timeout=TIMEOUT_S) == 1, proc.stderr.read()
    records = {r["run_id"]: r for r in rundir.read_records(out)}
    assert sorted(records) == [s0, s1]
    assert records[s0]["status"] == "failed" and records[s0]["error"] == f"worker exited with code {-signal.SIGKILL}"
    assert records[s1]["status"] == "ok"

    (events / f"{s0}.epoch1.hold").unlink()
    done = _sweep(spec, out, events, 1, "--retry-failed")
    assert done.wait(timeout=TIMEOUT_S) == 0, done.stderr.read()
    table = _check_consistent(out)
    assert list(table.run_id) == [s0, s1]


def test_sigterm_before_the_record_says_so_and_the_rerun_does_not_train_again(tmp_path):
    """SIGTERM to a two-worker sweep while a run sits between its last epoch and its record: the CLI says so in
    one line and exits 143, the child exits through Python (no leaked semaphores), and the rerun records the run
    from its saved state instead of training it again."""
    spec, out, events = tmp_path / "spec.json", tmp_path / "sweep", tmp_path / "events"
    spec.write_text(json.dumps({**SPEC, "seeds": [0], "settings": {**SPEC["settings"], "epochs": 2}}))
    events.mkdir()
    run_id = RUN_IDS[0]
    _hold(events, run_id, "trained")
    proc = _sweep(spec, out, events, 2)
    child = _wait_for(events, run_id, "trained", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    stderr = proc.stderr.read()
    assert "cbat sweep: interrupted (SIGTERM); the same command resumes" in stderr
    assert "leaked" not in stderr and "Traceback" not in stderr, stderr
    _wait_gone([child])
    assert _records(out) == [] and (out / "runs" / run_id / "state.pt").is_file()

    (events / f"{run_id}.trained.hold").unlink()
    done = _sweep(spec, out, events)
    assert done.wait(timeout=TIMEOUT_S) == 0, done.stderr.read()
    assert _records(out) == [run_id] and not list(out.rglob("state.pt"))
    assert [_count(events, run_id, f"epoch{k}") for k in (1, 2)] == [1, 1]

"""The sweep folder: its layout, the run record schema, atomic writes and checked reads (one owner).

Layout::

    <sweep_dir>/sweep.json                          the spec, the resolved variants (and a design: matrix, aliases)
    <sweep_dir>/results.parquet                     one row per finished run, rebuilt from the records
    <sweep_dir>/runs/<run_id>/record.json           the run record (``schema_version``; written last)
    <sweep_dir>/runs/<run_id>/model.pt              best-validation weights and config
    <sweep_dir>/runs/<run_id>/trace.parquet         hook statistics and loss components
    <sweep_dir>/runs/<run_id>/predictions.parquet   test rows: pair_index, cell_line, label, logit, prob
    <sweep_dir>/runs/<run_id>/state.pt              resumable training state (only while a run is unfinished)
    <sweep_dir>/runs/<run_id>/run.lock, <sweep_dir>/results.lock   inter-process locks (``filelock``)

Every file is written through ``atomic_write``: a temporary file in the same folder, made 0644, moved
onto its name in one step, so a reader sees the old file or the new one, never half of one, and a write
that fails (disk full) leaves the previous file in place. Every read of a damaged file raises
``RunDirError``, one line that names the file.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

# 1: the first layout (records had no version field); 2: trace rows carry ``kind`` and ``site``;
# 3: records carry the ``learnt`` check and per-cause test metrics.
SCHEMA_VERSION = 3
FILE_MODE = 0o644  # one policy for every file we write: readable by the group and others (shared sweeps)
RUN_FILES = {"record": "record.json", "checkpoint": "model.pt", "trace": "trace.parquet",
             "predictions": "predictions.parquet", "state": "state.pt"}
RECORD_FIELDS = ("run_id", "variant", "seed", "split", "task", "status", "config", "metrics")
LOCK_TIMEOUT_S = 120.0
EVENTS_ENV = "CBAT_RUN_EVENTS"


class RunDirError(ValueError):
    """A file of a sweep folder is missing, damaged or of another schema version (the message names it)."""


class SchemaVersionError(RunDirError):
    """A record written by an older or newer CBAT Lab (not retrained over: the sweep stops and says so)."""


# --- paths ---------------------------------------------------------------------------------------
def sweep_file(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / "sweep.json"


def results_file(sweep_dir: str | Path, by_cause: bool = False) -> Path:
    """``results.parquet`` (one row per run) or ``results_by_cause.parquet`` (one row per run and cause)."""
    return Path(sweep_dir) / ("results_by_cause.parquet" if by_cause else "results.parquet")


def runs_dir(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / "runs"


def run_dir(sweep_dir: str | Path, run_id: str) -> Path:
    return runs_dir(sweep_dir) / run_id


def run_file(run_path: str | Path, kind: str) -> Path:
    """``runs/<run_id>/<file>`` for a kind of ``RUN_FILES`` (record, checkpoint, trace, predictions, state)."""
    if kind not in RUN_FILES:
        raise ValueError(f"run file kind {kind!r}; expected one of {sorted(RUN_FILES)}")
    return Path(run_path) / RUN_FILES[kind]


def record_files(sweep_dir: str | Path) -> list[Path]:
    """Every ``runs/*/record.json`` of a sweep folder, sorted by run id."""
    return sorted(runs_dir(sweep_dir).glob(f"*/{RUN_FILES['record']}"))


# --- writing -------------------------------------------------------------------------------------
def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one step, with mode 0644.

    When ``write`` raises (e.g. disk full) the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """Plain JSON types: NaN/inf become None, numpy scalars and tuples become Python ones."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(jsonable(data), indent=2))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_torch(path: str | Path, payload: Any) -> None:
    import torch

    atomic_write(path, lambda tmp: torch.save(payload, tmp))


# --- reading -------------------------------------------------------------------------------------
def _require(path: Path) -> None:
    if not path.is_file():
        raise RunDirError(f"{path}: file not found")


def read_json(path: str | Path) -> dict:
    """A JSON object from ``path``; truncated or corrupt JSON raises ``RunDirError`` naming the file."""
    path = Path(path)
    _require(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        raise RunDirError(f"{path}: truncated or corrupt JSON ({getattr(err, 'msg', err)}{where})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_parquet(path: str | Path) -> pd.DataFrame:
    """A Parquet table; a truncated or corrupt file raises ``RunDirError`` naming the file."""
    path = Path(path)
    _require(path)
    try:
        return pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for damaged files
        raise RunDirError(f"{path}: truncated or corrupt Parquet file ({type(err).__name__}: {err})") from None


def read_torch(path: str | Path, map_location: str = "cpu") -> Any:
    """A ``torch.save`` payload loaded with ``weights_only=True``; damage raises ``RunDirError`` naming the file."""
    import torch

    path = Path(path)
    _require(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError ...
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunDirError(f"{path}: truncated or corrupt checkpoint ({message})") from None


def check_file(path: str | Path) -> None:
    """Check a run file's integrity without loading it: Parquet footer, zip CRCs of a ``.pt``, JSON syntax."""
    path = Path(path)
    _require(path)
    if path.suffix == ".json":
        read_json(path)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pq.read_metadata(path)
        except Exception as err:  # noqa: BLE001
            raise RunDirError(f"{path}: truncated or corrupt Parquet file ({err})") from None
    elif path.suffix == ".pt":
        try:  # torch.save writes a zip archive: testzip reads every member and checks its CRC
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise RunDirError(f"{path}: truncated or corrupt checkpoint ({err})") from None
        if bad is not None:
            raise RunDirError(f"{path}: corrupt checkpoint (member {bad} fails its CRC check)")


# --- the record ----------------------------------------------------------------------------------
def new_record(**fields: Any) -> dict:
    """A record dict stamped with the current ``schema_version``; callers add any further keys."""
    return {"schema_version": SCHEMA_VERSION, **fields}


def check_record(record: dict, path: str | Path) -> dict:
    """Check the schema version and the fields every reader relies on; extra keys are allowed."""
    version = record.get("schema_version", 1)  # records written before the field existed are version 1
    if version != SCHEMA_VERSION:
        age = "an older" if isinstance(version, int) and version < SCHEMA_VERSION else "a newer"
        raise SchemaVersionError(f"{path}: record schema version {version} is from {age} CBAT Lab; this one reads "
                                 f"version {SCHEMA_VERSION} (read it with that version, or run the sweep again into "
                                 "a new folder)")
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        raise RunDirError(f"{path}: record lacks field(s) {missing}; expected {list(RECORD_FIELDS)}")
    if record["status"] == "ok":
        metrics = record["metrics"]
        pooled = metrics.get("test", {}).get("pooled") if isinstance(metrics, dict) else None
        if not isinstance(pooled, dict):
            raise RunDirError(f"{path}: status 'ok' but field metrics.test.pooled is missing")
        if not {"learnt", "reason"} <= set(record.get("learnt") or {}):
            raise RunDirError(f"{path}: status 'ok' but field learnt (the did-it-learn check: learnt, reason) is "
                              "missing")
    return record


def read_record(path: str | Path) -> dict:
    """Read and check one ``record.json`` (see ``check_record``)."""
    return check_record(read_json(path), path)


def write_record(path: str | Path, record: dict) -> None:
    write_json(path, {"schema_version": SCHEMA_VERSION, **record})


def read_records(sweep_dir: str | Path) -> list[dict]:
    """All run records of a sweep folder (finished runs only), sorted by run id; damage raises."""
    return [read_record(path) for path in record_files(sweep_dir)]


def read_spec(sweep_dir: str | Path) -> Optional[dict]:
    """The content of ``sweep.json``, or None when the folder has none."""
    path = sweep_file(sweep_dir)
    return read_json(path) if path.exists() else None


def run_problem(run_path: str | Path) -> Optional[str]:
    """Why a finished run cannot be used as is (one line naming the file), or None when it is intact.

    A run without ``record.json`` is unfinished, not damaged (None). For an "ok" record the trace,
    predictions and checkpoint must be intact too. A record of another schema version raises
    ``SchemaVersionError`` instead: retraining would overwrite another version's results.
    """
    record_path = run_file(run_path, "record")
    if not record_path.exists():
        return None
    try:
        record = read_record(record_path)
        if record["status"] == "ok":
            for kind in ("trace", "predictions", "checkpoint"):
                check_file(run_file(run_path, kind))
    except SchemaVersionError:
        raise
    except RunDirError as err:
        return str(err)
    return None


# --- locks ---------------------------------------------------------------------------------------
def run_lock(run_path: str | Path):
    """The inter-process lock of one run (``runs/<run_id>/run.lock``); acquire with ``timeout=0`` to skip."""
    from filelock import FileLock

    Path(run_path).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(run_path) / "run.lock"))


def sweep_lock(sweep_dir: str | Path):
    """The lock under which ``sweep.json`` is created and ``results.parquet`` rebuilt."""
    from filelock import FileLock

    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(sweep_dir) / "results.lock"), timeout=LOCK_TIMEOUT_S)


# --- test events ---------------------------------------------------------------------------------
def announce(run_path: str | Path, event: str, hold_timeout_s: float = 300.0) -> None:
    """Test hook: with ``$CBAT_RUN_EVENTS`` set to a folder, append this pid to ``<folder>/<run_id>.<event>``.

    If ``<folder>/<run_id>.<event>.hold`` exists the run then waits until the test removes it (or the
    timeout passes), so a test can act while a run is at a known point instead of polling for luck.
    Without the variable this does nothing.
    """
    folder = os.environ.get(EVENTS_ENV)
    if not folder:
        return
    name = f"{Path(run_path).name}.{event}"
    with open(Path(folder) / name, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    hold, deadline = Path(folder) / f"{name}.hold", time.monotonic() + hold_timeout_s
    while hold.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{hold}: still present after {hold_timeout_s} s")
        time.sleep(0.02)

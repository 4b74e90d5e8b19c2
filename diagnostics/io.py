"""Read a sweep directory (``sweep.json``, ``runs/<run_id>/record.json`` + trace/predictions/checkpoint)
into tidy frames. Nothing here trains or writes. Layout, record schema and checked reads come from
``cbat.rundir``: a malformed record is named with the field it lacks, a damaged file with its path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pandas as pd

from cbat import rundir
from cbat.sweep import results_table, training_settings

RECORD_FIELDS = rundir.RECORD_FIELDS

# The reading errors of the run folder (a missing, damaged or other-version file), under the name
# diagnostics has always raised.
SweepError = rundir.RunDirError


@dataclass
class Sweep:
    """One sweep directory, read once; traces and predictions load lazily and are cached.

    ``runs`` holds one row per run (failed ones included, ``status`` says which) with the ``learnt`` guard and
    the test pooled metrics as columns (``cbat.sweep.results_table``); ``records`` the raw ``record.json``
    content by run id.
    """

    path: Path
    spec: dict
    records: dict[str, dict]
    runs: pd.DataFrame
    _cache: dict = field(default_factory=dict, repr=False)

    # --- selection -------------------------------------------------------------------------------
    def ok(self, variant: Optional[str] = None, task: Optional[str] = None,
           split: Optional[str] = None) -> pd.DataFrame:
        """Finished runs, optionally of one variant/task/split, sorted by seed."""
        rows = self.runs[self.runs["status"] == "ok"]
        for column, value in (("variant", variant), ("task", task), ("split", split)):
            if value is not None:
                rows = rows[rows[column] == value]
        return rows.sort_values(["variant", "task", "split", "seed"]).reset_index(drop=True)

    def variants(self) -> list[str]:
        """Variant names in the order the sweep declared them (``sweep.json``), then any other run's variant."""
        declared = list(self.spec.get("variants", {}))
        return declared + [v for v in self.runs["variant"].drop_duplicates() if v not in declared]

    def config(self, run_id: str) -> dict:
        return self.records[run_id]["config"]

    def variant_config(self, variant: str) -> dict:
        """The config of a variant (taken from its first run; all seeds of a variant share it)."""
        run_ids = self.runs.loc[self.runs["variant"] == variant, "run_id"]
        if run_ids.empty:
            known = sorted(self.runs["variant"].unique())
            raise SweepError(f"{self.path}: no run of variant {variant!r}; variants: {known}")
        return self.config(run_ids.iloc[0])

    def variant_settings(self, variant: str) -> dict:
        """The training settings of a variant's first run, as ``cbat.sweep.training_settings`` resolves them."""
        run_id = self.runs.loc[self.runs["variant"] == variant, "run_id"].iloc[0]
        return training_settings(self.records[run_id].get("settings") or {})

    # --- per-run files ---------------------------------------------------------------------------
    def file(self, run_id: str, kind: str) -> Optional[Path]:
        """Path of a run's ``trace``/``predictions``/``checkpoint`` file, or None when it does not exist."""
        run_dir = rundir.run_dir(self.path, run_id)
        paths = self.records[run_id].get("paths") or {}
        named = paths.get(kind) or (paths.get("model") if kind == "checkpoint" else None)
        candidates = [Path(named)] if named and Path(named).is_absolute() else \
            [run_dir / named, self.path / named] if named else []
        for path in candidates + [rundir.run_file(run_dir, kind)]:
            if path.is_file():
                return path
        return None

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` for this sweep (files read, values derived from them)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _parquet(self, run_id: str, kind: str) -> pd.DataFrame:
        def read() -> pd.DataFrame:
            path = self.file(run_id, kind)
            if path is None:
                raise SweepError(f"{rundir.run_dir(self.path, run_id)}: no {kind} file")
            return rundir.read_parquet(path)
        return self.cached((run_id, kind), read)

    def trace(self, run_id: str) -> pd.DataFrame:
        """The run's summary trace: name, block, statistic, head, step, value."""
        return self._parquet(run_id, "trace")

    def predictions(self, run_id: str) -> pd.DataFrame:
        """The run's test predictions: pair_index, cell_line, label, logit, prob."""
        return self._parquet(run_id, "predictions")

    def traces(self, run_ids: Iterable[str]) -> pd.DataFrame:
        """Traces of several runs stacked, with ``run_id``, ``variant`` and ``seed`` columns in front."""
        return _stack(self, run_ids, self.trace)

    def all_predictions(self, run_ids: Iterable[str]) -> pd.DataFrame:
        """Predictions of several runs stacked, with ``run_id``, ``variant`` and ``seed`` columns in front."""
        return _stack(self, run_ids, self.predictions)


def _stack(sweep: Sweep, run_ids: Iterable[str], read) -> pd.DataFrame:
    frames = []
    for run_id in run_ids:
        frame = read(run_id).copy()
        record = sweep.records[run_id]
        frame.insert(0, "seed", record["seed"])
        frame.insert(0, "variant", record["variant"])
        frame.insert(0, "run_id", run_id)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run_id", "variant", "seed"])
    return pd.concat(frames, ignore_index=True)


def load_sweep(sweep_dir: str | Path | Sweep) -> Sweep:
    """Read a sweep directory.

    Parameters
    ----------
    sweep_dir : the directory a sweep wrote (or an already loaded ``Sweep``, returned as is).

    Returns
    -------
    Sweep
        With ``runs`` rebuilt from the records (never from an appended table), so a half-finished
        sweep reads consistently.
    """
    if isinstance(sweep_dir, Sweep):
        return sweep_dir
    path = Path(sweep_dir)
    if not path.is_dir():
        raise SweepError(f"{path}: sweep directory not found")
    spec = rundir.read_spec(path) or {}
    records = {record["run_id"]: record for record in rundir.read_records(path)}
    if not records:
        raise SweepError(f"{path}: no finished run (expected runs/<run_id>/record.json)")
    runs = results_table(list(records.values()))
    return Sweep(path=path, spec=spec, records=records, runs=runs)

"""Resumable ablation sweeps: variants x seeds x splits, run by local processes or Ray.

Sweep directory (read by diagnostics and notebooks)::

    <sweep_dir>/sweep.json                      the spec (``SweepSpec.to_dict()``) and the resolved variants
    <sweep_dir>/runs/<run_id>/record.json       written atomically when a run ends (status "ok"/"failed")
    <sweep_dir>/runs/<run_id>/trace.parquet     hook statistics and loss components over training
    <sweep_dir>/runs/<run_id>/predictions.parquet   test rows: pair_index, cell_line, label, logit, prob
    <sweep_dir>/runs/<run_id>/model.pt          ``cbat.train.load_checkpoint(path) -> (model, cfg)``
    <sweep_dir>/results.parquet                 one row per finished run, rebuilt from the records

``run_id = "<variant>__s<seed>__<split>"`` with ":" in the split written as "-" (``cell_line-NHEK``).
A run without ``record.json`` is unfinished: a rerun trains it again (continuing from its last epoch
checkpoint), so a killed sweep resumes and the table never holds duplicates or half rows. Every run is
seeded from its own seed only; with ``workers > 1`` each runs in its own child process (local backend),
with one worker they run one after another in the calling process, on Ray each is a task.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd
from tqdm.auto import tqdm

from cbat.ablations import resolve_variants
from cbat.config import CBATConfig, load_config
from cbat.metrics import METRIC_KEYS
from cbat.train import TrainSettings, jsonable, train, write_json, write_parquet

BACKENDS = ("local", "ray")
RESULT_COLUMNS = ["run_id", "variant", "seed", "split", "task", "status", *METRIC_KEYS, "error"]
QUICK_SETTINGS = {"epochs": 6, "batch_size": 32, "lr": 1e-3, "patience": 3, "hook_every": 25}


# --- the spec ------------------------------------------------------------------------------------
@dataclass
class SweepSpec:
    """What to run: every (variant, seed, split) combination.

    Attributes
    ----------
    variants : names (a set of ``cbat.ablations.VARIANT_SETS``, a preset, an ablation such as
        ``cbat_v2-window``) or dicts ``{"name", "config": preset name or YAML/JSON path, "overrides":
        {field: value}, "settings": {training-setting overrides for this variant}}``.
    seeds : run seeds (weight init, batch order).
    splits : "chrom" (held-out chromosomes), "cell_line:<name>" (held-out, "unseen" cell line; bare
        "cell_line" holds out NHEK), "random" (leaky, warns).
    data : ``{"task": <synthetic task>, "n_pairs": ..., "seed": ...}`` for the embedded benchmark or
        ``{"path": <file>, ...}`` for ``cbat.data.load``.
    settings : ``TrainSettings`` fields shared by all runs.
    split_seed : seed of the split itself, the same for every run so test pairs pair up across runs.
    """

    variants: list[Union[str, dict]] = field(default_factory=lambda: ["presets"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    splits: list[str] = field(default_factory=lambda: ["chrom"])
    data: dict = field(default_factory=lambda: {"task": "grammar", "n_pairs": 2000, "seed": 0})
    settings: dict = field(default_factory=dict)
    split_seed: int = 0

    def __post_init__(self) -> None:
        if not self.variants or not self.seeds or not self.splits:
            raise ValueError("sweep spec: 'variants', 'seeds' and 'splits' must each name at least one entry")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"sweep spec: 'seeds' must be integers, got {self.seeds}")
        for split in self.splits:
            parse_split(split)
        if not isinstance(self.data, dict) or not ({"task", "path"} & set(self.data)):
            raise ValueError(f"sweep spec: 'data' must be a mapping with 'task' or 'path', got {self.data!r}")
        TrainSettings.from_dict(self.settings, "sweep spec 'settings'")

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "sweep spec") -> "SweepSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) - known:
            extra = sorted(set(data) - known) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{source}: unexpected {extra}; expected keys {sorted(known)}")
        return cls(**data)

    def variant_table(self) -> dict[str, dict]:
        """Resolved variants: name -> {"config": CBATConfig, "settings": overrides, "parent", "factors"}."""
        table: dict[str, dict] = {}
        for entry in self.variants:
            if isinstance(entry, str):
                for variant in resolve_variants([entry]):
                    table.setdefault(variant.name, {"config": variant.config, "settings": {},
                                                    "parent": variant.parent, "factors": list(variant.factors)})
                continue
            if not isinstance(entry, dict) or "name" not in entry:
                raise ValueError(f"sweep spec: variant {entry!r} must be a name or a mapping with a 'name'")
            fields = {**load_config(entry.get("config", "baseline")).to_dict(), **entry.get("overrides", {}),
                      "name": entry["name"]}
            cfg = CBATConfig.from_dict(fields, source=f"sweep spec: variant {entry['name']!r}")
            table[entry["name"]] = {"config": cfg, "settings": dict(entry.get("settings", {})),
                                    "parent": str(entry.get("config", "baseline")), "factors": []}
        return table

    def runs(self) -> list[dict]:
        """One plain, picklable dict per run, in sweep order (variant, then seed, then split)."""
        runs = []
        for name, variant in self.variant_table().items():
            settings = {**self.settings, **variant["settings"]}
            TrainSettings.from_dict(settings, f"sweep spec: settings of variant {name!r}")
            for seed in self.seeds:
                for split in self.splits:
                    runs.append({"run_id": run_id(name, seed, split), "variant": name, "seed": seed,
                                 "split": split, "split_seed": self.split_seed, "data": self.data,
                                 "task": task_name(self.data), "config": variant["config"].to_dict(),
                                 "settings": settings, "factors": variant["factors"]})
        return runs


def quick_sweep_spec(**overrides: Any) -> SweepSpec:
    """The default quick sweep: four presets x 3 seeds on ``grammar`` (600/400 bp), chromosome split.

    Sized to finish within 15 minutes on a 2-core CPU with ``workers=2`` (see ``benchmarks/bench_sweep.py``).
    Keyword arguments replace spec fields, e.g. ``quick_sweep_spec(seeds=[0])``.
    """
    spec = SweepSpec(variants=["presets"], seeds=[0, 1, 2], splits=["chrom"],
                     data={"task": "grammar", "n_pairs": 1600, "seed": 0}, settings=dict(QUICK_SETTINGS))
    return dataclasses.replace(spec, **overrides) if overrides else spec


def run_id(variant: str, seed: int, split: str) -> str:
    """``<variant>__s<seed>__<split>`` with ":" replaced by "-" so the id is a portable folder name."""
    return f"{variant}__s{seed}__{split.replace(':', '-')}"


def task_name(data: dict) -> str:
    if "task" in data:
        return str(data["task"])
    paths = data["path"] if isinstance(data["path"], list) else [data["path"]]
    return "+".join(dict.fromkeys(Path(str(p)).name.split(".")[0] for p in paths))


def parse_split(split: str) -> tuple[str, Optional[str]]:
    """"chrom" / "random" / "cell_line:<name>" -> (by, held-out cell line or None)."""
    if split in ("chrom", "random", "cell_line"):  # bare "cell_line": cbat.data.split's default (NHEK)
        return split, None
    if split.startswith("cell_line:") and len(split) > len("cell_line:"):
        return "cell_line", split.split(":", 1)[1]
    raise ValueError(f"split {split!r}; expected 'chrom', 'random', 'cell_line' or 'cell_line:<name>'")


# --- data ----------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _load_data_cached(key: str):
    import cbat.data

    spec = json.loads(key)
    if "task" in spec:
        return cbat.data.synthetic(**spec)
    return cbat.data.load(spec.pop("path"), **spec)


def load_data(spec: dict):
    """The ``EPIDataset`` of a data spec (cached per process)."""
    return _load_data_cached(json.dumps(spec, sort_keys=True))


def make_split(dataset, split: str, seed: int):
    """Indices for one split name (see ``parse_split``) via ``cbat.data.split``."""
    import cbat.data

    by, held_out = parse_split(split)
    if by == "cell_line":
        return cbat.data.split(dataset, by="cell_line", test=held_out, seed=seed)
    return cbat.data.split(dataset, by=by, seed=seed)


# --- one run -------------------------------------------------------------------------------------
def _diagnostics(trace: pd.DataFrame) -> dict:
    """A small summary for the record: the final forward's statistics and mean loss components."""
    final = trace[(trace["phase"] == "final") & (trace["head"] == -1)]
    losses = trace[trace["name"].str.startswith("loss.")]
    return {"final": {name: dict(zip(g["statistic"], g["value"])) for name, g in final.groupby("name")},
            "losses": {f"{n}.{s}": v for (n, s), v in losses.groupby(["name", "statistic"])["value"].mean().items()}}


def execute_run(run: dict, run_dir: str | Path) -> dict:
    """Train one run into ``run_dir`` and write its ``record.json`` (also for a failed run).

    Any exception inside training (bad data, a NaN, a config error) marks the run failed with the message;
    the sweep goes on. Returns the record.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {key: run[key] for key in ("run_id", "variant", "seed", "split", "task")}
    record.update(status="failed", error=None, config=run["config"], settings=run["settings"],
                  factors=run.get("factors", []), metrics={}, history=[], diagnostics={},
                  paths={"trace": "trace.parquet", "predictions": "predictions.parquet", "checkpoint": "model.pt"},
                  timings={})
    started = time.perf_counter()
    try:
        cfg = CBATConfig.from_dict(run["config"], source=f"run {run['run_id']} config")
        settings = TrainSettings.from_dict(run["settings"], f"run {run['run_id']} settings")
        dataset = load_data(run["data"])
        split = make_split(dataset, run["split"], run["split_seed"])
        result = train(cfg, dataset, split, settings, seed=run["seed"], out_dir=run_dir, resume=True)
        record.update(status="ok", metrics=result.metrics, history=result.history, timings=result.timings,
                      best_epoch=result.best_epoch, steps=result.steps, diagnostics=_diagnostics(result.trace))
    except Exception as err:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        record["error"] = f"{type(err).__name__}: {err}"
        record["timings"] = {"total_s": time.perf_counter() - started}
    write_json(run_dir / "record.json", record)
    return record


def _watch_parent(parent_pid: int) -> None:
    """Exit when the sweep process is gone (e.g. SIGKILL), so no orphan keeps writing."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent_pid, 0)
        except OSError:
            os._exit(1)


def _child_main(run: dict, run_dir: str, threads: int, parent_pid: Optional[int] = None) -> dict:
    """Entry point of a worker: set torch threads, watch the parent (local backend), run."""
    import torch

    if parent_pid is not None:
        # The parent stops its children on SIGTERM/Ctrl-C; a child must not record an interrupt as failure.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    torch.set_num_threads(threads)
    return execute_run(run, run_dir)


# --- results -------------------------------------------------------------------------------------
def read_records(sweep_dir: str | Path) -> list[dict]:
    """All run records of a sweep directory (finished runs only), sorted by run id."""
    runs = Path(sweep_dir) / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*/record.json"))]


def results_table(records: list[dict], order: Optional[list[str]] = None) -> pd.DataFrame:
    """One row per record: identity, status, test pooled metrics (and the error of failed runs)."""
    rows = []
    for rec in records:
        pooled = (rec.get("metrics") or {}).get("test", {}).get("pooled", {})
        rows.append({**{k: rec.get(k) for k in ("run_id", "variant", "seed", "split", "task", "status")},
                     **{k: pooled.get(k) for k in METRIC_KEYS}, "error": rec.get("error")})
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    rank = {rid: i for i, rid in enumerate(order or [])}
    frame = frame.iloc[sorted(range(len(frame)), key=lambda i: (rank.get(frame.run_id.iat[i], len(rank)),
                                                                   frame.run_id.iat[i]))]
    for key in METRIC_KEYS:
        frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame.reset_index(drop=True)


def write_results(sweep_dir: str | Path, order: Optional[list[str]] = None) -> pd.DataFrame:
    """Rebuild ``results.parquet`` from the records (never appended) and return it."""
    frame = results_table(read_records(sweep_dir), order)
    write_parquet(Path(sweep_dir) / "results.parquet", frame)
    return frame


def load_results(sweep_dir: str | Path) -> pd.DataFrame:
    """The results table of a sweep directory, rebuilt from its records."""
    return results_table(read_records(sweep_dir), _spec_order(sweep_dir))


def _spec_order(sweep_dir: str | Path) -> Optional[list[str]]:
    path = Path(sweep_dir) / "sweep.json"
    if not path.exists():
        return None
    return [run["run_id"] for run in SweepSpec.from_dict(json.loads(path.read_text())["spec"]).runs()]


# --- running -------------------------------------------------------------------------------------
def _prepare(spec: SweepSpec, sweep_dir: Path) -> None:
    """Write ``sweep.json``, or check that an existing one holds the same spec (resume)."""
    content = {"spec": spec.to_dict(),
               "variants": {name: {"config": v["config"].to_dict(), "parent": v["parent"], "factors": v["factors"]}
                            for name, v in spec.variant_table().items()}}
    path = sweep_dir / "sweep.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if existing.get("spec") != content["spec"]:
            raise ValueError(f"{path}: this folder holds a different sweep; resume it with the same spec or "
                             "choose another output folder")
        return
    write_json(path, content)


def _threads(settings: dict, workers: int) -> int:
    return settings.get("num_threads") or max(1, (os.cpu_count() or 1) // workers)


def run_sweep(spec: SweepSpec, out_dir: str | Path, workers: int = 1, backend: str = "local",
              retry_failed: bool = False, progress: bool = True) -> pd.DataFrame:
    """Run every unfinished run of ``spec`` into ``out_dir`` and return the results table.

    Parameters
    ----------
    spec : the sweep; rerunning the same spec into the same folder skips finished runs.
    workers : runs at the same time (local backend: 1 runs them in this process, more use child
        processes); each gets max(1, cores // workers) torch threads unless ``settings.num_threads`` says
        otherwise.
    backend : "local" (child processes) or "ray" (tasks on ``ray.init()``'s cluster, or the running one;
        ``RAY_ADDRESS`` selects a cluster; the sweep folder must be on a filesystem all nodes share).
    retry_failed : run failed runs again.
    progress : tqdm bars on stderr (overall, and per run when ``workers == 1``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}; expected one of {list(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}; expected a positive integer")
    sweep_dir = Path(out_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _prepare(spec, sweep_dir)
    runs = spec.runs()
    order = [run["run_id"] for run in runs]
    pending = []
    for run in runs:
        record_path = sweep_dir / "runs" / run["run_id"] / "record.json"
        if record_path.exists():
            if not (retry_failed and json.loads(record_path.read_text())["status"] == "failed"):
                continue
            record_path.unlink()
        pending.append(run)
    if pending:
        load_data(spec.data)  # generate (and cache) the data once before workers read it
    # Progress is presentation, not part of the experiment: per-run bars only when runs do not interleave.
    pending = [{**run, "settings": {**run["settings"], "progress": progress and workers == 1}} for run in pending]
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), desc="sweep", unit="run", disable=not progress)

    def finished(run: dict) -> None:
        write_results(sweep_dir, order)
        bar.update(1)
        bar.set_postfix_str(run["run_id"])

    try:
        if backend == "ray":
            _run_ray(pending, sweep_dir, workers, finished)
        else:
            _run_local(pending, sweep_dir, workers, finished)
    finally:
        bar.close()
    return write_results(sweep_dir, order)


def _fail_record(run: dict, run_dir: Path, error: str) -> None:
    """Record a run whose worker died without writing its own record (killed, out of memory)."""
    if not (run_dir / "record.json").exists():
        record = {key: run[key] for key in ("run_id", "variant", "seed", "split", "task")}
        record.update(status="failed", error=error, config=run["config"], settings=run["settings"],
                      factors=run.get("factors", []), metrics={}, history=[], diagnostics={}, paths={},
                      timings={})
        write_json(run_dir / "record.json", record)


def _run_inline(pending: list[dict], sweep_dir: Path, finished) -> None:
    """One worker: runs one after another in this process (no start-up cost; each run seeds itself)."""
    import torch

    previous = torch.get_num_threads()
    try:
        for run in pending:
            torch.set_num_threads(_threads(run["settings"], 1))
            execute_run(run, sweep_dir / "runs" / run["run_id"])
            finished(run)
    finally:
        torch.set_num_threads(previous)


def _run_local(pending: list[dict], sweep_dir: Path, workers: int, finished) -> None:
    if workers == 1:
        _run_inline(pending, sweep_dir, finished)
        return
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # Import once in the fork server so each run's child starts in a fraction of a second; torch._dynamo
        # is what the first optimizer construction would otherwise import (several seconds) in every child.
        context.set_forkserver_preload(["cbat.sweep", "torch._dynamo"])
    queue, active = list(pending), {}

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    try:
        while queue or active:
            while queue and len(active) < workers:
                run = queue.pop(0)
                run_dir = sweep_dir / "runs" / run["run_id"]
                threads = _threads(run["settings"], workers)
                proc = context.Process(target=_child_main, args=(run, str(run_dir), threads, os.getpid()),
                                       name=f"cbat-run-{run['run_id']}")
                proc.start()
                active[proc.sentinel] = (proc, run, run_dir)
            for sentinel in wait(list(active)):
                proc, run, run_dir = active.pop(sentinel)
                proc.join()
                if proc.exitcode != 0:
                    _fail_record(run, run_dir, f"worker exited with code {proc.exitcode}")
                finished(run)
    finally:
        for proc, _, _ in active.values():  # interrupted: stop our own children, leave no orphans
            proc.terminate()
        for proc, _, _ in active.values():
            proc.join()
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _run_ray(pending: list[dict], sweep_dir: Path, workers: int, finished) -> None:
    try:
        import ray  # only when asked: Ray is heavy and optional
    except ImportError as err:
        raise ValueError("backend 'ray' needs the 'ray' package (pip install ray)") from err
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    task = ray.remote(_child_main)
    refs = {}
    for run in pending:
        threads = _threads(run["settings"], workers)
        refs[task.options(num_cpus=threads).remote(run, str(sweep_dir / "runs" / run["run_id"]), threads)] = run
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        for ref in done:
            run = refs.pop(ref)
            try:
                ray.get(ref)
            except Exception as err:  # noqa: BLE001 - a lost worker marks the run failed
                _fail_record(run, sweep_dir / "runs" / run["run_id"], f"ray task failed: {err}")
            finished(run)

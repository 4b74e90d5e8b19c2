"""Resumable ablation sweeps: variants x seeds x splits, run by local processes or Ray.

The sweep folder's layout, record schema and file I/O belong to ``cbat.rundir``. ``run_id =
"<variant>__s<seed>__<split>"`` with ":" in the split written as "-" (``cell_line-NHEK``).

A run without ``record.json`` is unfinished: a rerun trains it again (continuing from its last epoch
checkpoint), so a killed sweep resumes and the table never holds duplicates or half rows. A finished run
whose record, trace, predictions or checkpoint is damaged is reported (one line naming the file) and
trained again. Each run is trained under its own lock (``runs/<run_id>/run.lock``): a second sweep process
on the same folder skips runs another process holds and takes the others, so no run is trained twice;
``results.parquet`` is rebuilt under the folder's lock. Every run is seeded from its own seed only; with
``workers > 1`` each runs in its own child process (local backend), with one worker they run one after
another in the calling process, on Ray each is a task.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import reprlib
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cbat import interrupts, rundir
from cbat.ablations import Design, design as build_design, resolve_variants
from cbat.config import CBATConfig, load_config, plain_fields
from cbat.metrics import METRIC_KEYS
from cbat.rundir import jsonable
from cbat.train import TrainSettings, train

BACKENDS = ("local", "ray")
SKIPPED_EXIT = 75  # a worker's exit code when another process holds its run
CHILD_STOP_TIMEOUT_S = 30.0  # an interrupted sweep waits this long for its children, then kills them
RESULT_COLUMNS = ["run_id", "variant", "seed", "split", "task", "status", "learnt", "learnt_reason", *METRIC_KEYS,
                  "error"]
# The quick report's sizes, in one place: `make report` trains exactly these, the report prints them on its first
# page, and the README's acceptance figures were measured with them. 2,400 mixture pairs (800 per cause), 600/600
# bp (long_range needs a 600-bp promoter, see docs/benchmark.md). Runs train and validate on those; they are tested
# on the chromosome split's test pairs plus 4,800 held-out pairs of an independent draw (about 4,800 test pairs in
# all, 3 s of prediction per baseline run): on the split's ~400 test pairs from a few promoters, test AUROC per cause
# varied 2-6x more between seeds than on the fresh pairs, so the twins' intervals were set by which promoters a
# seed got right. A third of the easy negatives is tested (the rest are scaffolding): a per-sequence model then
# scores at most about 0.57 AUROC, and on thousands of test pairs no_cross reaches that ceiling (0.63 at 2/3).
QUICK_DATA = {"task": "mixture", "n_pairs": 2400, "seed": 0, "held_out_pairs": 4800,
              "easy_negatives_tested": 1 / 3}
# Four seeds, so an effect over the runs that learnt keeps >= 3 runs per side after one stalled run.
# cbat_v2 (7x a baseline run, and no verdict rests on it) trains three.
QUICK_SEEDS = (0, 1, 2, 3)
# Six for the baseline, the reference of every twin, and the hard top-2 twin, which three checks read (H2, V1a
# and the sparse-strong control) and whose seeds differ most (diffuse AUROC 0.6-0.85 on the held-out draw): the
# two decide H2, V1a and H3 where four did not, for 4 runs (about 60 s of sweep with two workers;
# docs/benchmark.md).
QUICK_WIDE_SEEDS = (0, 1, 2, 3, 4, 5)
# lr 3e-3 with a linear warm-up over the first 100 steps (about two epochs): at a constant 3e-3 about one run in
# four stalled at chance (4 of 36 in the last report; seed 3 of the baseline in a rerun), with the warm-up 8 of 9
# baseline seeds took off at epoch 2-4 (seed 3 stalls, see docs/benchmark.md). Early stopping waits 5 epochs, then
# allows 4 without a validation AUPR gain of 0.005 (smaller gains still update the kept weights; runs at 0.99 stop
# instead of creeping on). Predictions in batches of 32: on one CPU thread the 255 validation pairs took 0.18 s
# against 0.38 s at the default 256 (baseline; cbat_v2 0.76 vs 1.07 s), about a tenth of a quick baseline run.
QUICK_SETTINGS = {"epochs": 12, "batch_size": 32, "lr": 3e-3, "lr_warmup_steps": 100, "patience": 4, "warmup_epochs": 5,
                  "min_delta": 0.005, "hook_every": 25, "eval_batch_size": 32}
# The single-factor twins the verdicts need, all added to the cheap baseline, beside the no_cross control and
# cbat_v2 itself: H1 window, H2/V1a and the sparse-strong control hard top-2, V1b the 2-D reshape, H3 and V1c
# two blocks with sigmoid gates (V1c reads their gates), H4 position modulation, H5 anchors (with the joint
# attention they need), H6 the three auxiliary losses. cbat_v1 (V1d) is left out: at this size it stays near
# chance (test AUROC 0.62 on seed 0) and three runs cost about 75 s of the report's budget.
_V2_AUX = {"sparsity_loss_weight": 0.1, "sparsity_target": 0.3, "immax_weight": 0.5, "speculation_weight": 0.1}
QUICK_VARIANTS: list[Union[str, dict]] = [
    {"name": "baseline", "config": "baseline", "seeds": list(QUICK_WIDE_SEEDS)}, "no_cross",
    {"name": "cbat_v2", "config": "cbat_v2", "seeds": [0, 1, 2]},
    "baseline+window", "baseline+pos_modulation", "baseline+anchors",
    {"name": "baseline+topk2", "config": "baseline", "overrides": {"sparsity": "hard_topk", "topk": 2},
     "seeds": list(QUICK_WIDE_SEEDS)},
    {"name": "baseline+reshape2d", "config": "baseline", "overrides": {"local": "reshape2d"}},
    {"name": "baseline+deep_gates", "config": "baseline", "overrides": {"n_blocks": 2, "gate": "sigmoid"}},
    {"name": "baseline+aux_losses", "config": "baseline", "overrides": _V2_AUX},
]


# --- the spec ------------------------------------------------------------------------------------
VARIANT_KEYS = {"name", "config", "overrides", "settings", "seeds"}
# The design's two corners, which a designed sweep runs beside its rows unless variants are given: the observed
# cbat_v2 - baseline that the decomposition splits into main effects.
DESIGN_VARIANTS = ("baseline", "cbat_v2")


def _twice(name: str) -> str:
    return (f"sweep spec: variant name {name!r} is given twice; each variant needs a name of its own (it names the "
            "run folders)")


@dataclass
class SweepSpec:
    """What to run: every (variant, seed, split) combination.

    Attributes
    ----------
    variants : names (a set of ``cbat.ablations.VARIANT_SETS``, a preset, an ablation such as
        ``cbat_v2-window``) or dicts ``{"name", "config": preset name or YAML/JSON path, "overrides":
        {field: value}, "settings": {training-setting overrides for this variant}, "seeds": [...] (this
        variant's seeds instead of ``seeds``)}``.
    seeds : run seeds (weight init, batch order).
    splits : "chrom" (held-out chromosomes), "cell_line:<name>" (held-out, "unseen" cell line; bare
        "cell_line" holds out NHEK), "random" (leaky, warns).
    data : ``{"task": <synthetic task>, "n_pairs": ..., "seed": ...}`` for the embedded benchmark or
        ``{"path": <file>, ...}`` for ``cbat.data.load``; ``"permute_labels": <seed>`` permutes the labels (a
        null control: no comparison of such a sweep should claim an effect).
    settings : ``TrainSettings`` fields shared by all runs.
    split_seed : seed of the split itself, the same for every run so test pairs pair up across runs.
    design : a designed ablation added to ``variants`` (``from_dict`` without variants: ``DESIGN_VARIANTS``):
        ``{"kind": "fractional", "resolution": 3|4|5, "foldover": bool, "overrides": {config fields set in every
        row}}`` (``cbat.ablations.design``). Row i
        is variant ``design-r<i>``; with seeds ``[s0, s1, ...]`` it runs once per seed, under seed
        ``s * n_rows + i``, so no two runs of the design share a seed. ``variants`` may then be empty.
    """

    variants: list[Union[str, dict]] = field(default_factory=lambda: ["presets"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    splits: list[str] = field(default_factory=lambda: ["chrom"])
    data: dict = field(default_factory=lambda: {"task": "mixture", "n_pairs": 2400, "seed": 0})
    settings: dict = field(default_factory=dict)
    split_seed: int = 0
    design: Optional[dict] = None

    def __post_init__(self) -> None:
        for name in ("variants", "seeds", "splits"):  # `seeds: 1` or `splits: chrom` in a file: a list is meant
            value = getattr(self, name)
            if isinstance(value, (tuple, range, np.ndarray)):  # the Python API's other sequences: range(3) ...
                value = list(value)
                setattr(self, name, value)
            if not isinstance(value, list):
                example = f" (e.g. [{value!r}])" if isinstance(value, (str, int, float)) else ""
                raise ValueError(f"sweep spec: '{name}' must be a list{example}, got {reprlib.repr(value)}")
        # A config object names a variant (its name) and is stored as its fields, so sweep.json resumes it.
        self.variants = [{"name": v.name, "config": v.to_dict()} if isinstance(v, CBATConfig)
                         else {**v, "config": v["config"].to_dict()}
                         if isinstance(v, dict) and isinstance(v.get("config"), CBATConfig) else v
                         for v in self.variants]
        plain_fields(self)  # numpy seeds (np.arange) are plain integers
        if not (self.variants or self.design) or not self.seeds or not self.splits:
            raise ValueError("sweep spec: 'variants' (or a 'design'), 'seeds' and 'splits' must each name at "
                             "least one entry")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"sweep spec: 'seeds' must be integers, got {self.seeds}")
        for split in self.splits:
            parse_split(split)
        if not isinstance(self.data, dict) or not ({"task", "path"} & set(self.data)):
            raise ValueError(f"sweep spec: 'data' must be a mapping with 'task' or 'path', got {self.data!r}")
        known = data_keys(self.data)
        if set(self.data) - known:
            raise ValueError(f"sweep spec 'data': unexpected {sorted(set(self.data) - known)}; expected keys "
                             f"{sorted(known)}")
        from cbat.data.loaders import absolute_paths

        # read from the working directory, stored absolute: workers, notebooks and resumes elsewhere read the same
        self.data = absolute_paths(self.data)
        TrainSettings.from_dict(self.settings, "sweep spec 'settings'")
        self.built_design()

    def built_design(self) -> Optional[Design]:
        """The ``cbat.ablations.Design`` of ``design`` (None without one)."""
        if self.design is None:
            return None
        known = {"kind", "resolution", "foldover", "overrides"}
        if not isinstance(self.design, dict) or set(self.design) - known:
            extra = sorted(set(self.design) - known) if isinstance(self.design, dict) else type(self.design).__name__
            raise ValueError(f"sweep spec 'design': unexpected {extra}; expected keys {sorted(known)}")
        try:
            return build_design(**self.design)
        except (TypeError, ValueError) as err:
            raise ValueError(f"sweep spec 'design': {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))

    def with_seeds(self, seeds: list[int]) -> "SweepSpec":
        """This spec with every variant run under ``seeds``, also those with seeds of their own (the quick
        sweep's baseline, top-2 twin and cbat_v2): asked for seeds, a user gets those and no others."""
        variants = [{k: v for k, v in variant.items() if k != "seeds"} if isinstance(variant, dict) else variant
                    for variant in self.variants]
        return dataclasses.replace(self, variants=variants, seeds=seeds)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "sweep spec") -> "SweepSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) - known:
            extra = sorted(set(data) - known) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{source}: unexpected {extra}; expected keys {sorted(known)}")
        if data.get("design") is not None and "variants" not in data:  # as `cbat sweep --design` without --variants
            data = {**data, "variants": list(DESIGN_VARIANTS)}
        return cls(**data)

    def variant_table(self) -> dict[str, dict]:
        """Resolved variants: name -> {"config": CBATConfig, "settings": overrides, "parent", "factors"}."""
        table: dict[str, dict] = {}
        for entry in self.variants:
            if isinstance(entry, str):
                for variant in resolve_variants([entry]):  # sets may overlap: the same variant twice is one
                    if variant.name in table and table[variant.name]["config"] != variant.config:
                        raise ValueError(_twice(variant.name))
                    table.setdefault(variant.name, {"config": variant.config, "settings": {},
                                                    "parent": variant.parent, "factors": list(variant.factors)})
                continue
            if not isinstance(entry, dict) or "name" not in entry:
                raise ValueError(f"sweep spec: variant {entry!r} must be a name or a mapping with a 'name'")
            name = entry["name"]
            if not isinstance(name, str) or not name.strip() or set(name) & set("/\\") or name in (".", ".."):
                raise ValueError(f"sweep spec: variant name {name!r}: expected a non-empty name without '/' or "
                                 "'\\' (it names the run folders)")
            unknown = sorted(set(entry) - VARIANT_KEYS)
            if unknown:
                raise ValueError(f"sweep spec: variant {name!r}: unexpected {unknown}; expected keys "
                                 f"{sorted(VARIANT_KEYS)}")
            for key in ("overrides", "settings"):
                if not isinstance(entry.get(key, {}), dict):
                    raise ValueError(f"sweep spec: variant {name!r} '{key}': expected a mapping, got "
                                     f"{entry[key]!r}")
            if name in table:
                raise ValueError(_twice(name))
            base = entry.get("config", "baseline")
            if isinstance(base, dict):  # a config's fields (what a CBATConfig in the spec is stored as)
                base = CBATConfig.from_dict(base, source=f"sweep spec: variant {name!r} 'config'")
            elif not isinstance(base, (str, Path)):
                raise ValueError(f"sweep spec: variant {name!r} 'config': expected a preset name, a YAML/JSON path, "
                                 f"a CBATConfig or its fields, got {type(base).__name__}")
            else:
                base = load_config(base)
            fields = {**base.to_dict(), **entry.get("overrides", {}), "name": entry["name"]}
            cfg = CBATConfig.from_dict(fields, source=f"sweep spec: variant {entry['name']!r}")
            table[entry["name"]] = {"config": cfg, "settings": dict(entry.get("settings", {})),
                                    "parent": base.name if isinstance(entry.get("config"), dict)
                                    else str(entry.get("config", "baseline")), "factors": []}
            if "seeds" in entry:
                seeds = entry["seeds"]
                if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
                    raise ValueError(f"sweep spec: variant {entry['name']!r} 'seeds' must be a non-empty list of "
                                     f"integers, got {seeds!r}")
                table[entry["name"]]["seeds"] = list(seeds)
        design = self.built_design()
        for row, variant in enumerate(design.variants() if design else []):
            if variant.name in table:
                raise ValueError(f"sweep spec: variant {variant.name!r} has the name of a design row; rename it")
            table[variant.name] = {"config": variant.config, "settings": {}, "parent": variant.parent,
                                   "factors": list(variant.factors), "design_row": row}
        return table

    def run_seeds(self, variant: dict) -> list[int]:
        """The seeds of one resolved variant: ``seeds``, or one own seed per design row and replicate."""
        if "design_row" not in variant:
            return list(variant.get("seeds", self.seeds))
        n_rows = len(self.built_design().matrix)
        return [seed * n_rows + variant["design_row"] for seed in self.seeds]

    def runs(self) -> list[dict]:
        """One plain, picklable dict per run, in sweep order (variant, then seed, then split)."""
        runs = []
        for name, variant in self.variant_table().items():
            settings = {**self.settings, **variant["settings"]}
            TrainSettings.from_dict(settings, f"sweep spec: settings of variant {name!r}")
            for seed in self.run_seeds(variant):
                for split in self.splits:
                    runs.append({"run_id": run_id(name, seed, split), "variant": name, "seed": seed,
                                 "split": split, "split_seed": self.split_seed, "data": self.data,
                                 "task": task_name(self.data), "config": variant["config"].to_dict(),
                                 "settings": settings, "factors": variant["factors"]})
        return runs


def quick_data(task: str = QUICK_DATA["task"]) -> dict:
    """``QUICK_DATA`` for ``task``: another task keeps the sizes and the held-out draw but its own share of tested
    easy negatives (a third is the mixture's choice; a probe's single cause needs them all, docs/benchmark.md)."""
    data = {**QUICK_DATA, "task": task}
    if task != QUICK_DATA["task"]:
        data.pop("easy_negatives_tested")
    return data


def quick_sweep_spec(**overrides: Any) -> SweepSpec:
    """The default quick sweep: ``QUICK_VARIANTS`` x ``QUICK_SEEDS`` (where a variant has no seeds of its own) on
    the ``mixture`` benchmark (600/600 bp), chromosome split, with ``QUICK_SETTINGS``.

    Sized for ``make report`` on a 2-core CPU with ``workers=2`` (see ``benchmarks/bench_report.py``).
    Keyword arguments replace spec fields, e.g. ``quick_sweep_spec(splits=["random"])``; one seed for every
    variant is ``quick_sweep_spec().with_seeds([0])``.
    """
    spec = SweepSpec(variants=list(QUICK_VARIANTS), seeds=list(QUICK_SEEDS), splits=["chrom"], data=quick_data(),
                     settings=dict(QUICK_SETTINGS))
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
def _load_data_cached(key: str, stamps: tuple):  # noqa: ARG001 - ``stamps`` only keys the cache
    import cbat.data

    spec = json.loads(key)
    permute = spec.pop("permute_labels", None)
    dataset = cbat.data.synthetic(**spec) if "task" in spec else cbat.data.load(spec.pop("path"), **spec)
    if permute is None:
        return dataset
    # the null control: the same pairs with labels independent of the sequences (planted truth no longer applies)
    labels = np.random.default_rng(int(permute)).permutation(dataset.labels)
    return dataclasses.replace(dataset, labels=labels, truth=None)


def data_keys(spec: dict) -> set[str]:
    """Keys a data spec may hold: ``task`` and the arguments of ``cbat.data.synthetic``, or ``path`` and those of
    ``cbat.data.load``; either with ``permute_labels`` (the null control)."""
    import inspect

    import cbat.data

    loader = cbat.data.synthetic if "task" in spec else cbat.data.load
    names = list(inspect.signature(loader).parameters)
    return set(names[1:]) | {"task" if "task" in spec else "path", "permute_labels"}


def load_data(spec: dict):
    """The ``EPIDataset`` of a data spec (cached per process, until one of its files changes on disk)."""
    return _load_data_cached(json.dumps(spec, sort_keys=True), _file_stamps(spec))


def _file_stamps(spec: dict) -> tuple:
    """(path, size, mtime) of every file the spec names, and of the files inside a folder it names."""
    from cbat.data.loaders import PATH_ARGUMENTS

    named = [Path(v) for key in PATH_ARGUMENTS for v in np.atleast_1d(spec.get(key) or []).tolist()]
    files = [f for path in named for f in (sorted(path.iterdir()) if path.is_dir() else [path])]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())


def sweep_data(sweep_dir: str | Path):
    """The ``EPIDataset`` a sweep trained on, rebuilt from its ``sweep.json`` data spec; refused in one line when
    the data no longer match the fingerprint the sweep stored (files edited, reordered or replaced since), as
    every run's predictions name pairs by their index."""
    path = rundir.sweep_file(sweep_dir)
    content = rundir.read_spec(sweep_dir) or {}
    data = content.get("spec", {}).get("data")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: no data spec ('spec.data'); cannot rebuild the sweep's pairs")
    dataset = load_data(data)
    _check_fingerprint(dataset, content, path, data)
    return dataset


def _check_fingerprint(dataset, content: dict, path: Path, data: dict) -> None:
    stored = content.get("data_fingerprint")  # absent in a sweep.json written before fingerprints
    if stored is None:
        return
    found = dataset.fingerprint()
    if found != stored:
        source = data.get("path", data.get("task"))
        raise ValueError(f"{path}: the data ({source}) changed since this sweep trained on them (fingerprint "
                         f"{found[:12]}, stored {stored[:12]}); restore them, or start a new sweep folder")


def make_split(dataset, split: str, seed: int):
    """Indices for one split name (see ``parse_split``) via ``cbat.data.split``."""
    import cbat.data

    by, held_out = parse_split(split)
    if by == "cell_line":
        parts = cbat.data.split(dataset, by="cell_line", test=held_out, seed=seed)
    else:
        parts = cbat.data.split(dataset, by=by, seed=seed)
    # Every part needs both classes: training, early stopping (validation AUPR) and the test's ranking metrics,
    # without which a run trains for nothing; found here, a sweep refuses the data in one line before it writes.
    labels = np.asarray(dataset.labels)
    sizes = ", ".join(f"{part} {len(getattr(parts, part))}" for part in ("train", "val", "test"))
    for part in ("train", "val", "test"):
        index = np.asarray(getattr(parts, part), dtype=np.int64)
        problem = "no pairs" if index.size == 0 else "one class only" if np.unique(labels[index]).size < 2 else ""
        if problem:
            why = "a held-out cell line with one label" if by == "cell_line" and part == "test" else \
                "the data are too small for this split"
            raise ValueError(f"split {split!r}: {part} holds {problem} ({sizes} of {labels.size} pairs); {why}")
    return parts


# --- one run -------------------------------------------------------------------------------------
def _diagnostics(trace: pd.DataFrame) -> dict:
    """A small summary for the record: the final forward's statistics and mean loss components."""
    final = trace[(trace["phase"] == "final") & (trace["head"] == -1)]
    losses = trace[trace["kind"] == "loss"]
    return {"final": {name: dict(zip(g["statistic"], g["value"])) for name, g in final.groupby("name")},
            "losses": {f"{n}.{s}": v for (n, s), v in losses.groupby(["name", "statistic"])["value"].mean().items()}}


def _take(run_dir: Path, retry_failed: bool) -> bool:
    """Whether this run must be trained now (caller holds its lock); removes a stale or damaged record."""
    record_path = rundir.run_file(run_dir, "record")
    if not record_path.exists():
        return True
    problem = rundir.run_problem(run_dir)
    if problem is None and not (retry_failed and rundir.read_record(record_path)["status"] == "failed"):
        return False  # finished (possibly by another process since this sweep looked)
    record_path.unlink()
    return True


def _new_record(run: dict, error: Optional[str] = None) -> dict:
    return rundir.new_record(**{key: run[key] for key in ("run_id", "variant", "seed", "split", "task")},
                             status="failed", error=error, config=run["config"], settings=run["settings"],
                             factors=run.get("factors", []), metrics={}, learnt={}, history=[], diagnostics={},
                             paths={}, timings={})


def execute_run(run: dict, run_dir: str | Path, retry_failed: bool = False) -> Optional[dict]:
    """Train one run into ``run_dir`` under its lock and write its ``record.json`` (also for a failed run).

    Any exception inside training (bad data, a NaN, a config error) marks the run failed with the message;
    the sweep goes on. Returns the record, or None when another process holds the run or has finished it.
    """
    from filelock import Timeout

    run_dir = Path(run_dir)
    lock = rundir.run_lock(run_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    try:
        if not _take(run_dir, retry_failed):
            return None
        rundir.announce(run_dir, "start")
        record = _new_record(run)
        record["paths"] = {kind: rundir.RUN_FILES[kind] for kind in ("trace", "predictions", "checkpoint")}
        started = time.perf_counter()
        try:
            cfg = CBATConfig.from_dict(run["config"], source=f"run {run['run_id']} config")
            settings = TrainSettings.from_dict(run["settings"], f"run {run['run_id']} settings")
            dataset = load_data(run["data"])
            split = make_split(dataset, run["split"], run["split_seed"])
            result = train(cfg, dataset, split, settings, seed=run["seed"], out_dir=run_dir, resume=True,
                           keep_state=True)
            rundir.announce(run_dir, "trained")
            record.update(status="ok", metrics=result.metrics, learnt=result.learnt, history=result.history,
                          timings=result.timings,
                          best_epoch=result.best_epoch, steps=result.steps, diagnostics=_diagnostics(result.trace))
        except Exception as err:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
            record["error"] = f"{type(err).__name__}: {err}"
            record["timings"] = {"total_s": time.perf_counter() - started}
        rundir.write_record(rundir.run_file(run_dir, "record"), record)
        if record["status"] == "ok":  # recorded: nothing left to resume (a failed run keeps it for a retry)
            rundir.run_file(run_dir, "state").unlink(missing_ok=True)
        return record
    finally:
        lock.release()


def _watch_parent(parent_pid: int) -> None:
    """Exit when the sweep process is gone (e.g. SIGKILL), so no orphan keeps writing."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent_pid, 0)
        except OSError:
            os._exit(1)


def _child_main(run: dict, run_dir: str, threads: int, parent_pid: Optional[int] = None,
                retry_failed: bool = False) -> Optional[dict]:
    """Entry point of a worker: set torch threads, watch the parent (local backend), run.

    A local worker whose run is held by another process exits with ``SKIPPED_EXIT``.
    """
    import torch
    from cbat.data.splits import LeakySplitWarning

    if parent_pid is not None:
        # The parent stops its children on SIGTERM/Ctrl-C; a child must not record an interrupt as failure.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
        # The parent split the same data and warned of a leaky split once; a run's own warnings are one line each.
        warnings.simplefilter("ignore", LeakySplitWarning)
        warnings.showwarning = lambda message, *_, **__: print(f"cbat: {run['run_id']}: warning: {message}",
                                                               file=sys.stderr)
    torch.set_num_threads(threads)
    with interrupts.sigterm_raises():  # exit through Python: the run lock and tqdm's semaphores are released
        record = execute_run(run, run_dir, retry_failed)
    if record is None and parent_pid is not None:
        sys.exit(SKIPPED_EXIT)
    return record


# --- results -------------------------------------------------------------------------------------
def read_records(sweep_dir: str | Path) -> list[dict]:
    """All run records of a sweep directory (finished runs only), sorted by run id (``cbat.rundir``)."""
    return rundir.read_records(sweep_dir)


def _readable_records(sweep_dir: Path) -> list[dict]:
    # While a sweep runs, a damaged record (already reported, queued for retraining) stays out of the table.
    records = []
    for path in rundir.record_files(sweep_dir):
        try:
            records.append(rundir.read_record(path))
        except rundir.SchemaVersionError:
            raise
        except rundir.RunDirError:
            continue
    return records


def results_table(records: list[dict], order: Optional[list[str]] = None) -> pd.DataFrame:
    """One row per record: identity, status, test pooled metrics (and the error of failed runs)."""
    rows = []
    for rec in records:
        pooled = (rec.get("metrics") or {}).get("test", {}).get("pooled", {})
        ok = rec.get("status") == "ok"
        rows.append({**{k: rec.get(k) for k in ("run_id", "variant", "seed", "split", "task", "status")},
                     "learnt": ok and bool(rec["learnt"]["learnt"]),
                     "learnt_reason": rec["learnt"]["reason"] if ok else "the run failed",
                     **{k: pooled.get(k) for k in METRIC_KEYS}, "error": rec.get("error")})
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    rank = {rid: i for i, rid in enumerate(order or [])}
    frame = frame.iloc[sorted(range(len(frame)), key=lambda i: (rank.get(frame.run_id.iat[i], len(rank)),
                                                                   frame.run_id.iat[i]))]
    for key in METRIC_KEYS:
        frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame.reset_index(drop=True)


CAUSE_COLUMNS = ["run_id", "variant", "seed", "split", "cause", "aupr", "auroc", "recall", "mean_prob", "n",
                 "n_pos"]


def cause_table(records: list[dict]) -> pd.DataFrame:
    """One row per (finished run, planted cause): test metrics of that cause's positives against its matched
    negatives. Empty for data without causes."""
    rows = [{**{k: rec[k] for k in ("run_id", "variant", "seed", "split")}, "cause": cause,
             **{k: values.get(k) for k in CAUSE_COLUMNS[5:]}}
            for rec in records if rec.get("status") == "ok"
            for cause, values in (rec.get("metrics") or {}).get("test", {}).get("per_cause", {}).items()]
    return pd.DataFrame(rows, columns=CAUSE_COLUMNS)


def failure_lines(results: pd.DataFrame) -> list[str]:
    """``<run_id>: failed: <error>`` per failed run of a results table, so a command shows why, not only that."""
    return [f"{row.run_id}: failed: {row.error}" for row in results[results["status"] == "failed"].itertuples()]


def write_results(sweep_dir: str | Path, order: Optional[list[str]] = None) -> pd.DataFrame:
    """Rebuild ``results.parquet`` and ``results_by_cause.parquet`` from the records (never appended) under the
    folder's lock and return the first."""
    with rundir.sweep_lock(sweep_dir):
        records = _readable_records(Path(sweep_dir))
        frame = results_table(records, order)
        rundir.write_parquet(rundir.results_file(sweep_dir), frame)
        rundir.write_parquet(rundir.results_file(sweep_dir, by_cause=True), cause_table(records))
    return frame


def load_results(sweep_dir: str | Path) -> pd.DataFrame:
    """The results table of a sweep directory, rebuilt from its records."""
    return results_table(read_records(sweep_dir), _spec_order(sweep_dir))


def _spec_order(sweep_dir: str | Path) -> Optional[list[str]]:
    content = rundir.read_spec(sweep_dir)
    if content is None:
        return None
    return [run["run_id"] for run in SweepSpec.from_dict(content["spec"]).runs()]


# --- running -------------------------------------------------------------------------------------
def _prepare(spec: SweepSpec, sweep_dir: Path, dataset=None) -> None:
    """Write ``sweep.json`` (with the fingerprint of ``dataset``, the spec's data), or check that an existing one
    holds the same spec (resume)."""
    content = {"spec": spec.to_dict(),
               "variants": {name: {"config": v["config"].to_dict(), "parent": v["parent"], "factors": v["factors"]}
                            for name, v in spec.variant_table().items()}}
    design = spec.built_design()
    if design is not None:
        content["design"] = design.to_dict()
    if dataset is not None:
        content["data_fingerprint"] = dataset.fingerprint()
    path = rundir.sweep_file(sweep_dir)
    with rundir.sweep_lock(sweep_dir):  # two sweeps starting together write it once
        if path.exists():
            differ = spec_difference(rundir.read_json(path).get("spec"), content["spec"])
            if differ:
                raise ValueError(f"{path}: this folder holds a different sweep ({differ}, stored vs asked); resume "
                                 "it with the same spec or choose another output folder")
            return
        rundir.write_json(path, content)


# Settings that change how a run is shown, placed or timed, not what it learns: two variants that differ only in
# these still train alike (``training_settings``).
NOT_TRAINING_SETTINGS = ("device", "num_threads", "progress", "compile", "eval_batch_size", "hook_every")


def key_changes(old: dict, new: dict, between: str = " vs ", show: Callable[[Any], str] = str) -> list[str]:
    """"<key> <old><between><new>" for each key whose value differs (a key one side lacks reads None), sorted."""
    return [f"{k} {show(old.get(k))}{between}{show(new.get(k))}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def training_settings(settings: dict) -> dict:
    """A run's stored settings as ``TrainSettings`` resolves them (defaults filled in), without the ones that
    do not change what it learns (``NOT_TRAINING_SETTINGS``): equal for two runs that train alike."""
    resolved = {**dataclasses.asdict(TrainSettings()), **settings}
    return {k: v for k, v in resolved.items() if k not in NOT_TRAINING_SETTINGS}


def spec_difference(stored: Optional[dict], spec: dict) -> str:
    """What differs between two ``SweepSpec.to_dict()`` outputs ("seeds [0, 1] vs [0]", "settings lr 0.003 vs
    0.001"; "" when they describe the same runs). Settings are compared by their values as ``TrainSettings``
    resolves them (a default given or left out alike), and those that do not change what a run learns
    (``NOT_TRAINING_SETTINGS``: a sweep started on CPU resumes with ``--device cuda``; each run's record keeps the
    settings it ran with) not at all; a design by its values with defaults filled in; data paths as absolute
    paths. So a folder made by ``cbat sweep`` resumes under ``cbat report`` and the other way round."""
    if not isinstance(stored, dict):
        return "the folder's sweep.json holds no spec"
    from cbat.data.loaders import absolute_paths

    design_defaults = {"kind": "fractional", "resolution": 4, "foldover": False, "overrides": {}}

    def meaning(content: dict) -> dict:
        design, data = content.get("design"), content.get("data")
        return {**content, "settings": training_settings(content.get("settings") or {}),
                # an older sweep.json may hold relative paths: read from the working directory, as then
                "data": absolute_paths(data) if isinstance(data, dict) else data,
                "design": {**design_defaults, **design} if isinstance(design, dict) else design}

    old, new = meaning(stored), meaning(spec)
    changes = key_changes({k: v for k, v in old.items() if k != "settings"},
                          {k: v for k, v in new.items() if k != "settings"}, show=repr)
    return "; ".join(changes + [f"settings {c}" for c in key_changes(old["settings"], new["settings"], show=repr)])


def threads_per_worker(workers: int) -> int:
    """CPU threads each of ``workers`` side-by-side processes gets: an equal share of the cores, at least 1."""
    return max(1, (os.cpu_count() or 1) // workers)


def _threads(settings: dict, workers: int) -> int:
    return settings.get("num_threads") or threads_per_worker(workers)


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
    progress : tqdm bars on stderr (overall, and per run when ``workers == 1`` and the spec's settings do not
        turn them off, as ``cbat report`` does).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}; expected one of {list(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}; expected a positive integer")
    sweep_dir = Path(out_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir}: is a file; expected a sweep folder (new or to resume)")
    dataset = None
    # Bad input fails before the folder is written, so the corrected command can use it: variants, configs and
    # settings first, then the device (Ray's workers may have GPUs the driver lacks), then the data and splits.
    runs = spec.runs()
    if not rundir.sweep_file(sweep_dir).exists():
        stray = sorted(p.name for p in sweep_dir.iterdir() if p.name != "results.lock") if sweep_dir.exists() else []
        if stray:  # a new sweep writes sweep.json, runs/ and results here: never among someone's own files
            raise ValueError(f"{sweep_dir}: not a sweep folder (no sweep.json) and not empty ({', '.join(stray[:3])}"
                             f"{' ...' if len(stray) > 3 else ''}); give a new or empty folder, or a sweep to resume")
        if backend == "local":
            TrainSettings.from_dict(spec.settings, "sweep spec 'settings'").resolved_device()
        dataset = load_data(spec.data)
        for split in spec.splits:
            make_split(dataset, split, spec.split_seed)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _prepare(spec, sweep_dir, dataset)
    order = [run["run_id"] for run in runs]
    pending = _scan(runs, sweep_dir, retry_failed)
    if pending and dataset is None:  # resumed: load (and cache) the data before workers read them, the same data
        dataset = sweep_data(sweep_dir)
        for split in spec.splits:  # here, not only in the workers, so a leaky split warns once in this process
            make_split(dataset, split, spec.split_seed)
    # Progress is presentation, not part of the experiment: per-run bars only when runs do not interleave.
    pending = [{**run, "settings": {**run["settings"],
                                    "progress": progress and workers == 1 and run["settings"].get("progress", True)}}
               for run in pending]
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), desc="sweep", unit="run", disable=not progress)

    def finished(run: dict) -> None:
        write_results(sweep_dir, order)
        bar.update(1)
        bar.set_postfix_str(run["run_id"])

    skipped: list[str] = []
    try:
        with interrupts.sigterm_raises():  # stopped by SIGTERM, the runs' children are stopped too
            if backend == "ray":
                _run_ray(pending, sweep_dir, workers, finished, skipped, retry_failed)
            else:
                _run_local(pending, sweep_dir, workers, finished, skipped, retry_failed)
    finally:
        bar.close()
    if skipped:
        print(f"{len(skipped)} run(s) held by another sweep process on {sweep_dir} were left to it: "
              f"{', '.join(skipped)}", file=sys.stderr)
    return write_results(sweep_dir, order)


def _scan(runs: list[dict], sweep_dir: Path, retry_failed: bool) -> list[dict]:
    """Runs to train: unfinished ones, damaged ones (reported here, retrained) and, if asked, failed ones."""
    pending = []
    for run in runs:
        path = rundir.run_dir(sweep_dir, run["run_id"])
        record_path = rundir.run_file(path, "record")
        if record_path.exists():
            problem = rundir.run_problem(path)
            if problem is not None:
                print(f"{problem}; run {run['run_id']} will be trained again", file=sys.stderr)
                pending.append(run)
                continue
            record = rundir.read_record(record_path)
            changed = _changes(record, run)
            if changed:
                raise ValueError(f"{sweep_dir}: run {run['run_id']} was trained with another "
                                 f"{changed} than the spec now gives (a config or settings file changed since); "
                                 "restore it, or start a new sweep folder")
            if not (retry_failed and record["status"] == "failed"):
                continue
        pending.append(run)
    return pending


def _changes(record: dict, run: dict) -> str:
    """What a recorded run was trained with that the spec's run no longer has ("config (d_model 16 -> 32)")."""
    parts = []
    for what, old, new in (("config", jsonable(record.get("config") or {}), jsonable(run["config"])),
                           ("settings", jsonable(training_settings(record.get("settings") or {})),
                            jsonable(training_settings(run["settings"])))):
        differ = key_changes(old, new, " -> ")
        if differ:
            parts.append(f"{what} ({', '.join(differ)})")
    return " and ".join(parts)


def _fail_record(run: dict, run_dir: Path, error: str) -> None:
    """Record a run whose worker died without writing its own record (killed, out of memory)."""
    from filelock import Timeout

    lock = rundir.run_lock(run_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return  # another process has taken the run up again
    try:
        if not rundir.run_file(run_dir, "record").exists():
            rundir.write_record(rundir.run_file(run_dir, "record"), _new_record(run, error=error))
    finally:
        lock.release()


def _run_inline(pending: list[dict], sweep_dir: Path, finished, skipped: list[str], retry_failed: bool) -> None:
    """One worker: runs one after another in this process (no start-up cost; each run seeds itself)."""
    import torch

    previous = torch.get_num_threads()
    try:
        for run in pending:
            torch.set_num_threads(_threads(run["settings"], 1))
            if execute_run(run, rundir.run_dir(sweep_dir, run["run_id"]), retry_failed) is None:
                skipped.append(run["run_id"])
            else:
                finished(run)
    finally:
        torch.set_num_threads(previous)


def _run_local(pending: list[dict], sweep_dir: Path, workers: int, finished, skipped: list[str],
               retry_failed: bool) -> None:
    if workers == 1:
        _run_inline(pending, sweep_dir, finished, skipped, retry_failed)
        return
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # Import once in the fork server so each run's child starts in a fraction of a second; torch._dynamo
        # is what the first optimizer construction would otherwise import (several seconds) in every child.
        context.set_forkserver_preload(["cbat.sweep", "torch._dynamo"])
    queue, active = list(pending), {}
    try:
        while queue or active:
            while queue and len(active) < workers:
                run = queue.pop(0)
                run_dir = rundir.run_dir(sweep_dir, run["run_id"])
                threads = _threads(run["settings"], workers)
                proc = context.Process(target=_child_main,
                                       args=(run, str(run_dir), threads, os.getpid(), retry_failed),
                                       name=f"cbat-run-{run['run_id']}")
                proc.start()
                active[proc.sentinel] = (proc, run, run_dir)
            for sentinel in wait(list(active)):
                proc, run, run_dir = active.pop(sentinel)
                proc.join()
                if proc.exitcode == SKIPPED_EXIT:
                    skipped.append(run["run_id"])
                    continue
                if proc.exitcode != 0:
                    _fail_record(run, run_dir, f"worker exited with code {proc.exitcode}")
                finished(run)
    finally:
        interrupts.stop_children([proc for proc, _, _ in active.values()], CHILD_STOP_TIMEOUT_S)


def _run_ray(pending: list[dict], sweep_dir: Path, workers: int, finished, skipped: list[str],
             retry_failed: bool) -> None:
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
        refs[task.options(num_cpus=threads).remote(run, str(rundir.run_dir(sweep_dir, run["run_id"])), threads,
                                                    None, retry_failed)] = run
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        for ref in done:
            run = refs.pop(ref)
            try:
                if ray.get(ref) is None:
                    skipped.append(run["run_id"])
                    continue
            except Exception as err:  # noqa: BLE001 - a lost worker marks the run failed
                _fail_record(run, rundir.run_dir(sweep_dir, run["run_id"]), f"ray task failed: {err}")
            finished(run)

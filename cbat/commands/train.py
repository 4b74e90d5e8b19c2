"""``cbat train``: train one config (per seed) on one data set and split into a sweep-style folder."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cbat.cli import UserError
from cbat.config import PRESETS, parse_yaml

HELP = "Train one config (--preset or --config) on a data set; writes record.json, model.pt, trace and predictions."

SETTING_FLAGS = (("epochs", int), ("batch_size", int), ("lr", float), ("patience", int), ("max_steps", int),
                 ("hook_every", int))


# What --data, --n-pairs and --data-seed stand for when not given (``cbat sweep --quick``: the quick sweep's data).
DEFAULT_DATA = {"task": "mixture", "n_pairs": 2000, "seed": 0}
DATA_FLAGS = ("data", "n_pairs", "data_seed", "genome")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``cbat train`` and ``cbat sweep``."""
    parser.add_argument("--data", nargs="+", default=None,
                        help="a synthetic task (mixture, grammar, long_range, diffuse, sparse_strong), data files or "
                             "a folder for cbat.data.load (several load as one data set), or a JSON object data spec "
                             "(default: mixture)")
    parser.add_argument("--genome", type=Path, help="genome FASTA for coordinate files (your hg19/hg38)")
    parser.add_argument("--n-pairs", type=int, default=None,
                        help="pairs of a synthetic task (default 2000; 2400 with --quick)")
    parser.add_argument("--data-seed", type=int, default=None, help="seed of the synthetic data (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="run seeds")
    parser.add_argument("--out", required=True, type=Path, help="output folder (rerun to resume)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:<i> (default auto)")
    parser.add_argument("--workers", type=int, default=1, help="runs at the same time (local backend)")
    # no argparse choices: run_sweep owns the backend names and rejects others in one line
    parser.add_argument("--backend", default="local", help="local (processes on this machine, default) or ray")
    parser.add_argument("--settings", type=Path, help="YAML/JSON file of training settings")
    for name, kind in SETTING_FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                            help=f"training setting {name} (overrides --settings)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def data_flags_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in DATA_FLAGS)


def data_spec(args: argparse.Namespace, defaults: dict = DEFAULT_DATA) -> dict:
    """The data spec named by ``--data`` (task name, paths or JSON object) and ``--genome``; ``defaults`` (task,
    n_pairs, seed) stand in for the flags not given."""
    from cbat.data.loaders import absolute_paths
    from cbat.data.tasks import TASKS

    data = defaults["task"] if args.data is None else args.data
    values = [data] if isinstance(data, str) else list(data)
    sizing = [flag for flag, name in (("--n-pairs", "n_pairs"), ("--data-seed", "data_seed"))
              if getattr(args, name, None) is not None]
    if sizing and not (len(values) == 1 and values[0].strip() in TASKS):  # they would be dropped without a word
        raise UserError(f"{' and '.join(sizing)} size a synthetic task (--data {'|'.join(TASKS)}); a data file or "
                        "JSON spec --data keeps its own pairs (put n_pairs/seed inside a JSON spec)")
    if len(values) > 1:
        missing = [v for v in values if not Path(v).exists()]
        if missing:
            raise UserError(f"--data {missing[0]!r}: not found; several --data values must all be data files")
        spec = {"path": values}
    else:
        spec = _one_data_spec(args, values[0], defaults)
    if getattr(args, "genome", None) is not None:
        if "path" not in spec:
            raise UserError("--genome applies to data files (--data pairs.csv ...), not to a synthetic task")
        spec["genome"] = str(args.genome)
    return absolute_paths(spec)


def _one_data_spec(args: argparse.Namespace, text: str, defaults: dict) -> dict:
    from cbat.data.tasks import TASKS

    text = text.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"--data: not a valid JSON object ({err})") from None
        if not isinstance(spec, dict):
            raise UserError("--data: expected a JSON object")
        return spec
    if text in TASKS:
        return {"task": text, "n_pairs": defaults["n_pairs"] if args.n_pairs is None else args.n_pairs,
                "seed": defaults["seed"] if args.data_seed is None else args.data_seed}
    if not Path(text).exists():
        raise UserError(f"--data {text!r}: neither a synthetic task ({', '.join(TASKS)}) nor an existing file")
    return {"path": text}


def settings_overrides(args: argparse.Namespace) -> dict:
    """Training settings from ``--settings`` plus the individual flags."""
    settings = {}
    if args.settings is not None:
        if not args.settings.is_file():
            raise UserError(f"--settings {args.settings}: file not found")
        settings = parse_yaml(args.settings.read_text(), f"--settings {args.settings}") or {}
        if not isinstance(settings, dict):
            raise UserError(f"--settings {args.settings}: expected a mapping of training settings")
    for name, _ in SETTING_FLAGS:
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    if args.device is not None:
        settings["device"] = args.device
    return settings


def execute(spec, args: argparse.Namespace) -> int:
    """Run the spec (a ``cbat.sweep.SweepSpec``), print the results table, return 0 when every run succeeded
    else 1."""
    from cbat.sweep import failure_lines, run_sweep

    results = run_sweep(spec, args.out, workers=args.workers, backend=args.backend,
                        retry_failed=getattr(args, "retry_failed", False), progress=not args.no_progress)
    columns = ["run_id", "status", "learnt", "aupr", "auroc", "f1", "ece", "mean_prob", "base_rate"]
    print(results[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for line in failure_lines(results):
        print(line)
    unlearnt = results[(results["status"] == "ok") & ~results["learnt"].astype(bool)]
    if len(unlearnt):  # finished is not learnt: say so where the numbers are first read
        print(f"{len(unlearnt)} finished run(s) did not learn, so every comparison with them reads 'not learnt': "
              + "; ".join(f"{r.run_id} ({r.learnt_reason})" for r in unlearnt.itertuples()))
    print(f"results: {Path(args.out) / 'results.parquet'}")
    return 0 if (results.status == "ok").all() else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=PRESETS, help="a preset config (default baseline)")
    which.add_argument("--config", type=Path, help="a YAML/JSON config file")
    parser.add_argument("--split", default="chrom", help="chrom (default), random or cell_line:<name>")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from cbat.sweep import SweepSpec

    if args.config is not None:  # named by its file, as cbat sweep --config names it (not by the config's own name)
        variant = {"name": args.config.stem, "config": str(args.config)}
    else:
        variant = args.preset or "baseline"
    spec = SweepSpec(variants=[variant], seeds=args.seeds or [0], splits=[args.split], data=data_spec(args),
                     settings=settings_overrides(args))
    return execute(spec, args)

"""``cbat report``: run (or reuse) the sweep, execute the notebooks with papermill, render HTML, write an index."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the sweep (finished runs reused), execute the notebooks and write an HTML report with an index"


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated names, e.g. baseline,cbat_v2")
    return names


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports/default", help="report folder (default: reports/default)")
    parser.add_argument("--quick", action="store_true",
                        help="the small CPU default: the quick sweep (cbat.sweep.QUICK_*: mixture, presets and "
                             "single-factor twins x 4-6 seeds) and small notebooks")
    parser.add_argument("--params", type=Path, help="YAML file of report parameters (flags given here win)")
    parser.add_argument("--task", help="synthetic task: mixture (default), grammar, long_range, diffuse, sparse_strong")
    parser.add_argument("--variants", type=_names, help="comma-separated variants (presets, ablations, sets)")
    parser.add_argument("--seeds", type=_seeds, help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:<i> (default auto)")
    parser.add_argument("--sweep", dest="sweep_dir", help="sweep folder to reuse or fill (default <out>/sweep)")
    parser.add_argument("--workers", type=int,
                        help="sweep worker processes and notebooks run side by side (default 2)")
    parser.add_argument("--data", nargs="+", help="your data files or a folder (cbat.data.load) instead of the "
                                                  "synthetic task; see README 'Your own data'")
    parser.add_argument("--genome", type=Path, help="genome FASTA for coordinate files (your hg19/hg38)")
    parser.add_argument("--split", help="chrom, random, cell_line or cell_line:<name> (held-out cell line)")


def _data_overrides(args: argparse.Namespace, sweep: dict) -> dict:
    """``sweep`` fields named by ``--data``, ``--genome`` and ``--split`` (merged into a params file's)."""
    from cbat.cli import UserError
    from cbat.data.loaders import absolute_paths
    from cbat.sweep import parse_split

    fields = {}
    if args.data:
        missing = [p for p in args.data if not Path(p).exists()]
        if missing:
            raise UserError(f"--data {missing[0]!r}: not found; expected data files or a folder")
        fields["data"] = {"path": args.data[0] if len(args.data) == 1 else list(args.data)}
    if args.genome is not None:
        data = fields.get("data", sweep.get("data", {}))
        if "path" not in data:
            raise UserError("--genome applies to data files: give --data (or sweep.data.path in --params)")
        fields["data"] = {**data, "genome": str(args.genome)}
    if "data" in fields or "path" in sweep.get("data", {}):
        fields["data"] = absolute_paths(fields.get("data", sweep.get("data")))
    if args.split:
        try:
            parse_split(args.split)
        except ValueError as err:
            raise UserError(f"--split: {err}") from None
        fields["splits"] = [args.split]
    return fields


def run(args: argparse.Namespace) -> int:
    from cbat.cli import UserError
    from cbat.report import ReportParams, build_report

    given = {name: getattr(args, name) for name in ("task", "variants", "seeds", "device", "sweep_dir", "workers")
             if getattr(args, name) is not None}
    if args.quick:
        given["quick"] = True
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected a positive integer")
    params = ReportParams.from_file(args.params, **given) if args.params else ReportParams(**given)
    params.sweep = {**params.sweep, **_data_overrides(args, params.sweep)}
    results = build_report(args.out, params)
    failed = [r.name for r in results if r.status != "ok"]
    if failed:
        print(f"cbat report: {len(failed)} notebook(s) failed: {', '.join(failed)} "
              f"(see {Path(args.out) / 'index.html'})")
        return 1
    print(f"cbat report: {len(results)} notebooks ok -> {Path(args.out) / 'index.html'}")
    return 0

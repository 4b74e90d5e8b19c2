"""``cbat sweep``: variants x seeds x splits, resumable, on local processes or Ray."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from cbat.cli import UserError
from cbat.commands.train import add_data_arguments, data_flags_given, data_spec, execute, settings_overrides
from cbat.ablations import DESIGN_KINDS, RESOLUTIONS
from cbat.config import PRESETS, parse_yaml

HELP = "Run an ablation sweep (variants x seeds x splits); rerun the same command to resume."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", nargs="+", default=None,
                        help="variant sets (presets, leave_one_out, add_one_in, all), presets or ablation names "
                             "such as cbat_v2-window (default: presets)")
    parser.add_argument("--preset", nargs="+", choices=PRESETS, default=[], help="add preset variants")
    parser.add_argument("--config", nargs="+", type=Path, default=[], help="add variants from config files")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="chrom (default), random, cell_line:<name> (held-out cell line)")
    parser.add_argument("--spec", type=Path,
                        help="a YAML/JSON sweep spec: its variants and data (variant and data flags are refused); "
                             "--seeds, --splits and training-setting flags replace its own")
    parser.add_argument("--quick", action="store_true",
                        help="the report's quick sweep (cbat.sweep.QUICK_*: mixture, presets and single-factor "
                             "twins x 4-6 seeds)")
    parser.add_argument("--design", choices=DESIGN_KINDS,
                        help="add a designed ablation over the factors of cbat.ablations.FACTORS (low = baseline, "
                             "high = cbat_v2); without --variants the sweep also runs baseline and cbat_v2")
    parser.add_argument("--resolution", type=int, choices=RESOLUTIONS,
                        help="resolution of --design: 3 (16 design rows) or 4 (32 rows, default), each row run once "
                             "per seed; 5 is refused while the design library cannot build it for 12 factors")
    parser.add_argument("--foldover", action="store_true",
                        help="add the mirror image of every design row (resolution III becomes IV)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    parser.add_argument("--compare", action="store_true",
                        help="also write comparison.csv: each variant vs baseline over paired seeds, paired t interval "
                             "widened by a test-pair bootstrap")
    add_data_arguments(parser)


def _spec(args: argparse.Namespace):
    spec = _base_spec(args)
    if args.design is None:
        if (args.resolution is not None or args.foldover) and spec.design is not None:
            raise UserError(f"--resolution and --foldover: the spec file {args.spec} holds the design; set them in "
                            "its 'design'")
        if args.resolution is not None or args.foldover:
            raise UserError("--resolution and --foldover shape a designed ablation; add --design fractional")
        return spec
    if spec.design is not None:
        raise UserError("--design: the spec file already holds a 'design'; give it in one place")
    design = {"kind": args.design, "resolution": 4 if args.resolution is None else args.resolution,
              "foldover": args.foldover}
    try:
        return dataclasses.replace(spec, design=design)
    except ValueError as err:
        raise UserError(str(err)) from None


def _base_spec(args: argparse.Namespace):
    from cbat.sweep import DESIGN_VARIANTS, SweepSpec, quick_data, quick_sweep_spec

    if args.spec is not None:
        if not args.spec.is_file():
            raise UserError(f"--spec {args.spec}: file not found")
        data = parse_yaml(args.spec.read_text(), f"--spec {args.spec}")  # a JSON spec parses too
        if args.variants or args.preset or args.config or args.quick or data_flags_given(args):
            raise UserError(f"--spec {args.spec} holds the variants and data; leave out --variants/--preset/--config/"
                            "--quick and the data flags, or put them in the file")
        return _flags_on_top(SweepSpec.from_dict(data, source=str(args.spec)), args)
    if args.quick:  # the quick sweep, with the data, seeds and settings flags given on top
        if args.variants or args.preset or args.config:
            raise UserError("--quick runs the quick sweep's variants; leave out --variants/--preset/--config, or "
                            "--quick")
        spec = quick_sweep_spec()
        if data_flags_given(args):
            data = data_spec(args, spec.data)
            if "task" in data and not any(str(v).lstrip().startswith("{") for v in args.data or []):
                data = {**quick_data(data["task"]), **data}  # a task by name: the quick benchmark's held-out draw too
            spec = dataclasses.replace(spec, data=data)
        return _flags_on_top(spec, args)
    default = list(DESIGN_VARIANTS) if args.design else ["presets"]
    variants = list(args.variants or ([] if (args.preset or args.config) else default))
    variants += args.preset + [{"name": path.stem, "config": str(path)} for path in args.config]
    return SweepSpec(variants=variants, seeds=args.seeds or [0, 1, 2], splits=args.splits or ["chrom"],
                     data=data_spec(args), settings=settings_overrides(args))


def _flags_on_top(spec, args: argparse.Namespace):
    """A given spec (the quick sweep, a --spec file) with the seeds, splits and training-setting flags given."""
    if args.seeds:
        spec = spec.with_seeds(args.seeds)
    return dataclasses.replace(spec, settings={**spec.settings, **settings_overrides(args)},
                               **({"splits": args.splits} if args.splits else {}))


def run(args: argparse.Namespace) -> int:
    spec = _spec(args)
    if args.compare and "baseline" not in spec.variant_table():  # say so before training, not after
        raise UserError("--compare compares every variant with the 'baseline' variant, which this sweep lacks; add "
                        "it (--preset baseline) or leave out --compare")
    status = execute(spec, args)
    if args.compare:
        from cbat.stats import compare_to_baseline

        table = compare_to_baseline(args.out)
        table.to_csv(Path(args.out) / "comparison.csv", index=False)
        if table.empty:
            print("--compare: no variant beside the baseline finished in this sweep; nothing to compare")
        else:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return status

"""``cbat synth``: generate the embedded synthetic EPI benchmark and write it as files a user can open."""
from __future__ import annotations

from pathlib import Path

from cbat.cli import UserError

HELP = "Generate the synthetic EPI benchmark (real JASPAR motifs, ground truth) as Parquet/CSV files."


def add_arguments(parser) -> None:
    import inspect

    from cbat.data.synthetic import synthetic
    from cbat.data.tasks import TASKS

    # the lengths default to synthetic()'s own, so the CLI and the Python API generate the same data
    default = {name: p.default for name, p in inspect.signature(synthetic).parameters.items()}

    parser.add_argument("--task", default="mixture", choices=TASKS, help="rule set (default: mixture)")
    parser.add_argument("--n-pairs", type=int, default=2000, help="number of pairs (default: 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--enhancer-len", type=int, default=default["enhancer_len"],
                        help=f"bp (default {default['enhancer_len']}; paper scale: 3000)")
    parser.add_argument("--promoter-len", type=int, default=default["promoter_len"],
                        help=f"bp (default {default['promoter_len']}; paper scale: 2000)")
    parser.add_argument("--positive-fraction", type=float, default=0.5, help="0.5 for 1:1, 0.048 for ~1:20")
    parser.add_argument("--cell-lines", nargs="+", default=None, help="subset of GM12878 K562 Stomach NHEK")
    parser.add_argument("--copies", type=int, default=None, help="sparse_strong / long_range: repeats of "
                        "the decisive CTCF pair (default: 2)")
    parser.add_argument("--easy-negatives-tested", type=float, default=None, metavar="SHARE",
                        help="share of the easy negatives the test set keeps; the rest are written with scaffold "
                        "True and every split leaves them out of test (default: 2/3 for mixture, 1 for the probes)")
    parser.add_argument("--held-out-pairs", type=int, default=0, metavar="N",
                        help="append an independent draw of N pairs, written with held_out True: every split puts "
                        "them in the test set only (the report's quick data hold 4800)")
    parser.add_argument("--out", required=True, help="output file: pairs table (.parquet, .csv or .tsv); the "
                        "ground truth goes next to it as <stem>.truth.<ext>")


def _write(frame, path: Path) -> None:
    """Write a table atomically in the format its suffix names."""
    from cbat.rundir import atomic_write, write_parquet

    if path.suffix == ".parquet":
        write_parquet(path, frame)
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, sep="\t" if path.suffix == ".tsv" else ","))


def run(args) -> int:
    import cbat.data

    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv", ".tsv"):
        raise UserError(f"--out {out}: expected a .parquet, .csv or .tsv file name")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    ds = cbat.data.synthetic(task=args.task, n_pairs=args.n_pairs, seed=args.seed, enhancer_len=args.enhancer_len,
                             promoter_len=args.promoter_len, positive_fraction=args.positive_fraction,
                             cell_lines=args.cell_lines, copies=args.copies,
                             easy_negatives_tested=args.easy_negatives_tested, held_out_pairs=args.held_out_pairs)
    truth_path = out.with_name(f"{out.stem}.truth{out.suffix}")
    _write(ds.to_table(), out)
    _write(ds.truth, truth_path)
    print(f"wrote {len(ds)} pairs ({int(ds.labels.sum())} positive, cell lines {', '.join(ds.cell_lines)}) to "
          f"{out}; ground truth ({len(ds.truth)} motifs) to {truth_path}")
    return 0

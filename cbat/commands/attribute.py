"""``cbat attribute``: Captum attribution of a trained run's predicted loops, seqlets and JASPAR motifs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "attribute a run's top predicted loops (IG, shuffled references) and match seqlets to JASPAR motifs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, type=Path,
                        help="a run folder (model.pt, record.json, predictions.parquet), a model.pt checkpoint, or "
                             "a sweep folder (the run is chosen as the report chooses it: "
                             "diagnostics.attribution.choose_run)")
    parser.add_argument("--data", default=None,
                        help="synthetic task name, data file or JSON data spec (default: the run's own data; "
                             "required with a bare checkpoint)")
    parser.add_argument("--genome", type=Path, help="genome FASTA for a coordinates file given by --data")
    parser.add_argument("--n-pairs", type=int, default=None,
                        help="pairs of the synthetic task given by --data (default 2000)")
    parser.add_argument("--data-seed", type=int, default=None,
                        help="seed of the synthetic task given by --data (default 0)")
    parser.add_argument("--top", type=int, default=10, help="loops per group of --by (default 10)")
    grouping = parser.add_mutually_exclusive_group()
    grouping.add_argument("--by", choices=["auto", "cell_line", "cause", "pooled"], default="auto",
                          help="rank loops per cell line, per planted cause (synthetic benchmark: every cause is "
                               "scored) or over all pairs; auto (default): per cause when the data have planted "
                               "causes, else per cell line")
    grouping.add_argument("--pooled", dest="by", action="store_const", const="pooled", help="the same as --by pooled")
    parser.add_argument("--threshold", type=float, default=None, help="only pairs with probability >= this")
    parser.add_argument("--n-shuffles", type=int, default=10, help="dinucleotide-shuffled references (default 10)")
    parser.add_argument("--n-steps", type=int, default=50,
                        help="first integrated-gradients steps; doubled per loop until converged (default 50)")
    parser.add_argument("--max-steps", type=int, default=800,
                        help="cap of the doubling; a loop still above --delta-threshold there is flagged (default 800)")
    parser.add_argument("--internal-batch-size", type=int, default=64,
                        help="pairs per forward/backward inside IG; bounds memory (default 64)")
    parser.add_argument("--ism", type=int, default=None,
                        help="loops checked by in-silico mutagenesis at their seqlets and 50 background bases "
                             "(default every loop; 0 none)")
    parser.add_argument("--delta-threshold", type=float, default=0.05,
                        help="integrate again with twice the steps while |convergence delta| exceeds this, in "
                             "logit units; loops above it at --max-steps are flagged (default 0.05)")
    parser.add_argument("--motifs", default="jaspar",
                        help="'jaspar' (CORE vertebrates, default), 'truth' (the planted motifs' ids) or "
                             "comma-separated JASPAR ids")
    parser.add_argument("--jaspar-release", default=None,
                        help="bundled JASPAR release (default JASPAR2024, the one the benchmark is built from)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffles (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<i> (default auto)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _motif_db(args: argparse.Namespace, dataset):
    from cbat.cli import UserError
    from diagnostics.motifs import MotifDB

    if args.motifs == "jaspar":
        return MotifDB.from_jaspar(release=args.jaspar_release)
    if args.motifs == "truth":
        if dataset.truth is None:
            raise UserError("--motifs truth: the data carry no planted motifs; use 'jaspar' or a list of ids")
        return MotifDB.from_jaspar(ids=tuple(sorted(set(dataset.truth["motif_id"]))), release=args.jaspar_release)
    ids = tuple(i.strip() for i in args.motifs.split(",") if i.strip())
    if not ids:
        raise UserError(f"--motifs {args.motifs!r}: expected 'jaspar', 'truth' or comma-separated JASPAR ids")
    return MotifDB.from_jaspar(ids=ids, release=args.jaspar_release)


def run(args: argparse.Namespace) -> int:
    from cbat import rundir
    from cbat.cli import UserError
    from cbat.commands.train import data_spec
    from diagnostics.attribution import choose_run, explain_loops, load_run, select_loops
    from diagnostics.attribution_figures import NO_TRUTH, check_report_folder, write_loop_report

    if args.top < 1 or args.n_shuffles < 1 or args.n_steps < 1 or args.internal_batch_size < 1:
        raise UserError("--top, --n-shuffles, --n-steps and --internal-batch-size must be positive")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold {args.threshold}: expected a probability in [0, 1]")
    if args.ism is not None and args.ism < 0:
        raise UserError(f"--ism {args.ism}: expected a number of loops >= 0")
    if not args.delta_threshold > 0:
        raise UserError(f"--delta-threshold {args.delta_threshold}: expected a positive convergence tolerance")
    if args.max_steps < args.n_steps:
        raise UserError(f"--max-steps ({args.max_steps}) must be at least --n-steps ({args.n_steps})")
    if args.data is None and (args.n_pairs is not None or args.data_seed is not None or args.genome is not None):
        raise UserError("--n-pairs, --data-seed and --genome describe the data given by --data; without --data the "
                        "run's own data are attributed")
    try:  # found now, not after the attribution
        check_report_folder(args.out)
    except ValueError as err:
        raise UserError(f"--out {err}") from None
    run_path = args.run
    if rundir.sweep_file(run_path).is_file() and rundir.runs_dir(run_path).is_dir():  # a sweep folder
        run_id, why = choose_run(run_path)
        print(f"cbat attribute: explaining {run_id} of the sweep: {why}", file=sys.stderr)
        run_path = rundir.run_dir(run_path, run_id)
    model, dataset, predictions = load_run(run_path, args.device,
                                           data_spec(args) if args.data is not None else None)
    record = rundir.run_file(run_path, "record")  # a bare checkpoint folder may have none: nothing to warn about
    guard = (rundir.read_record(record).get("learnt") or {}) if record.is_file() else {}
    warnings = []
    if guard.get("learnt") is False:  # still attributed on request, but never read as an explanation
        warnings.append(f"{Path(run_path).name} did not learn ({guard.get('reason')}); its attributions explain a "
                        "model at chance")
        print(f"cbat attribute: warning: {warnings[-1]}", file=sys.stderr)
    motif_db = _motif_db(args, dataset)  # a bad --motifs or --jaspar-release is found before the attribution
    loops = select_loops(predictions, top=args.top, threshold=args.threshold,
                         by=None if args.by == "pooled" else args.by)
    if loops.empty:
        raise UserError("no predicted loops to attribute (lower --threshold?)")
    report = explain_loops(model, dataset, loops, motif_db, n_shuffles=args.n_shuffles,
                           n_steps=args.n_steps, internal_batch_size=args.internal_batch_size, n_ism=args.ism,
                           delta_threshold=args.delta_threshold, max_steps=args.max_steps, seed=args.seed,
                           progress=not args.no_progress)
    written = write_loop_report(report, args.out, warnings=warnings)
    flagged, disagree = int(report.loops["flagged"].sum()), int(report.trust["ism_flag"].sum())
    print("\n".join(report.summary_lines()), file=sys.stderr)
    print(f"cbat attribute: {len(loops)} loops, {len(report.seqlets)} seqlets; {flagged} not converged at "
          f"--max-steps, {disagree} loop sides where IG disagrees with ISM but saliency agrees; wrote "
          f"{written['report']}", file=sys.stderr)
    if report.recovery is not None and not (report.loops["outcome"] == "TP").any():
        print("recovery: no true-positive loop among the chosen loops, so nothing to score (raise --top or choose "
              "--by cause)", file=sys.stderr)
    elif report.recovery is not None:
        print("recovery: " + ", ".join(f"{k}={v:.3f}" for k, v in report.recovery.items()), file=sys.stderr)
    else:
        print(f"recovery: {NO_TRUTH}", file=sys.stderr)
    return 0

"""Attribution scored against planted motifs on a small model trained here on ``sparse_strong``.

The thresholds must hold for the real attribution and fail for broken ones: random scores, and the
attribution of another loop (the wrong input for these sequences).
"""
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import cbat.data
from cbat import rundir
from cbat.cli import main
from diagnostics import attribution as A
from diagnostics import motifs as M
from diagnostics import recovery as R
from diagnostics.attribution_figures import write_loop_report

DATA = {"task": "sparse_strong", "n_pairs": 1000, "seed": 0, "enhancer_len": 300, "promoter_len": 200,
        "cell_lines": ["GM12878"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is faster and the same on every machine
    try:
        ds = cbat.data.synthetic(**DATA, cache_dir=tmp_path_factory.mktemp("cache"))
        train, test = np.arange(800), np.arange(800, 1000)
        model = R.train_probe_model(ds, train, epochs=3, seed=0)
        logits = A.predict(model, *ds.onehot(test))
        predictions = pd.DataFrame({"pair_index": test, "cell_line": ds.meta["cell_line"].to_numpy()[test],
                                    "label": ds.labels[test], "logit": logits, "prob": 1 / (1 + np.exp(-logits))})
        loops = A.select_loops(predictions, top=10)
        db = M.MotifDB.from_jaspar(ids=tuple(sorted(set(ds.truth["motif_id"]))), release="JASPAR2024")
        report = A.explain_loops(model, ds, loops, db, n_shuffles=4, n_steps=32, n_ism=1, progress=False)
        yield ds, model, predictions, report, db
    finally:
        torch.set_num_threads(threads)


def test_the_scored_model_learned_the_pair_rule(trained):
    _, _, predictions, report, _ = trained
    assert roc_auc_score(predictions["label"], predictions["logit"]) > 0.9
    assert (report.loops["outcome"] == "TP").mean() > 0.8


def test_attribution_recovers_planted_causal_motifs(trained):
    _, _, _, report, _ = trained
    scores = report.recovery
    assert scores["enhancer_n"] >= 8 and scores["promoter_n"] >= 8
    assert scores["auroc"] > 0.85 and scores["auprc"] > 0.5
    assert scores["motif_id_fraction"] >= 0.8
    assert scores["causal_vs_decoy_auroc"] > 0.8 and scores["decoys_lower"] == 1.0


def test_broken_attributions_fail_the_same_thresholds(trained):
    ds, _, _, report, db = trained
    index = report.loops["pair_index"].to_numpy()
    scores = report.scores()
    rng = np.random.default_rng(0)
    random = R.recovery_scores({side: rng.normal(size=s.shape) for side, s in scores.items()}, ds.truth, index)
    assert random["auroc"] < 0.65 and random["auprc"] < 0.5 and random["causal_vs_decoy_auroc"] < 0.8
    # the wrong input: each loop scored with the attribution of another loop
    shifted = {side: np.roll(s, 1, axis=0) for side, s in scores.items()}
    codes = {"enhancer": ds.enhancer[index], "promoter": ds.promoter[index]}
    seqlets = M.annotate_seqlets(shifted, codes, report.loops, db)
    wrong = R.recovery_scores(shifted, ds.truth, index, seqlets)
    assert wrong["auroc"] < 0.65 and wrong["auprc"] < 0.5
    assert wrong["motif_id_fraction"] < 0.8 and wrong["causal_vs_decoy_auroc"] < 0.8


def test_tables_are_tidy_and_aggregate_per_cell_line(trained):
    ds, _, _, report, _ = trained
    assert list(report.seqlets.columns) == M.SEQLET_COLUMNS
    assert set(report.seqlets["side"]) == {"enhancer", "promoter"}
    assert (report.seqlets["end"] - report.seqlets["start"] == 15).all()
    matched = report.seqlets[report.seqlets["matched"]]
    assert set(matched["motif_id"]) <= set(ds.truth["motif_id"])
    summary = report.motif_summary
    assert (summary["cell_line"] == "GM12878").all() and summary["loop_fraction"].between(0, 1).all()
    # GM12878 causal TFs lead both sides
    causal_ids = set(ds.truth.loc[ds.truth["role"] == "causal", "motif_id"])
    for side in ("enhancer", "promoter"):
        assert summary[summary["side"] == side].iloc[0]["motif_id"] in causal_ids
    pairs = report.motif_pairs
    assert pairs["n_loops"].is_monotonic_decreasing and pairs.iloc[0]["n_loops"] >= 2
    assert {"enhancer_motif", "promoter_motif"} <= set(pairs.columns)
    assert set(report.ism["method"]) == {"integrated_gradients", "saliency"}
    assert (report.ism.query("method == 'integrated_gradients'")["pearson"] > 0.3).all()


def test_report_files_and_html(trained, tmp_path):
    _, _, _, report, _ = trained
    written = write_loop_report(report, tmp_path, n_tracks=1, n_logos=2)
    for name in ("loops", "seqlets", "motif_summary", "motif_pairs", "ism_check"):
        assert pd.read_parquet(tmp_path / f"{name}.parquet").shape[0] == len(getattr(
            report, {"loops": "loops", "seqlets": "seqlets", "motif_summary": "motif_summary",
                     "motif_pairs": "motif_pairs", "ism_check": "ism"}[name]))
        assert (tmp_path / f"{name}.csv").is_file()
    assert json.loads((tmp_path / "recovery.json").read_text())["auroc"] == pytest.approx(report.recovery["auroc"])
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "Plotly.newPlot" in html
    assert not list(tmp_path.glob(".*.tmp"))
    assert set(written) >= {"report", "recovery", "attribution"}


def test_cli_attribute_on_a_sweep_run(trained, tmp_path, capsys):
    from cbat.train import save_checkpoint

    ds, model, predictions, _, _ = trained
    run_dir = tmp_path / "sweep" / "runs" / "baseline__s0__chrom"
    save_checkpoint(run_dir / "model.pt", model, model.cfg)
    # the data spec comes from the sweep file, laid out as cbat.sweep writes it
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps({"spec": {"data": DATA}, "variants": {}}))
    code = main(["attribute", "--run", str(run_dir), "--device", "cpu", "--out", str(tmp_path / "none")])
    err = capsys.readouterr().err  # without its test predictions a run's loops would come from its training pairs
    assert code == 2 and "predictions.parquet: not found" in err and not (tmp_path / "none").exists()
    rundir.write_parquet(run_dir / "predictions.parquet",
                         predictions.assign(cause=ds.meta["cause"].to_numpy()[predictions["pair_index"]]))
    code = main(["attribute", "--run", str(run_dir), "--top", "2", "--by", "cause",
                 "--n-shuffles", "2", "--n-steps", "8", "--ism", "0", "--motifs", "truth", "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    loops = pd.read_parquet(tmp_path / "out" / "loops.parquet")
    assert len(loops) == 2 and {"delta", "flagged", "outcome"} <= set(loops.columns)
    assert set(loops["cause"]) == {DATA["task"]}  # one task: its one cause
    assert (tmp_path / "out" / "report.html").is_file()
    err = capsys.readouterr().err
    per_side = [line for line in err.splitlines() if line.startswith("loop ") and "converged at" in line]
    assert "recovery:" in err and len(per_side) == 4  # 2 loops x 2 sides
    trust = pd.read_parquet(tmp_path / "out" / "trust.parquet")
    assert len(trust) == 4 and {"steps", "delta", "ig_ism_r", "ism_flag", "top_motif"} <= set(trust.columns)

    # a sweep folder: the run is chosen as the report chooses it, and the choice is printed
    pooled = {"aupr": 0.9, "auroc": 0.9}
    rundir.write_record(run_dir / "record.json", rundir.new_record(
        run_id=run_dir.name, variant="baseline", seed=0, split="chrom", task=DATA["task"], status="ok", error=None,
        config=model.cfg.to_dict(), metrics={"test": {"pooled": pooled}, "val": {"pooled": pooled}},
        learnt={"learnt": True, "reason": ""}))
    assert main(["attribute", "--run", str(tmp_path / "sweep"), "--top", "1", "--n-shuffles", "1", "--n-steps", "4",
                 "--ism", "0", "--motifs", "truth", "--device", "cpu", "--out", str(tmp_path / "chosen"),
                 "--no-progress"]) == 0
    assert "explaining baseline__s0__chrom of the sweep: validation AUPR 0.900" in capsys.readouterr().err
    assert len(pd.read_parquet(tmp_path / "chosen" / "loops.parquet")) == 1
    # the run's own model.pt finds the sweep's data spec as its folder does
    assert main(["attribute", "--run", str(run_dir / "model.pt"), "--top", "1", "--n-shuffles", "1", "--n-steps", "4",
                 "--ism", "0", "--motifs", "truth", "--device", "cpu", "--out", str(tmp_path / "by_file"),
                 "--no-progress"]) == 0


def test_cli_attribute_reads_a_coordinates_file_with_its_genome(trained, tmp_path, capsys):
    """--genome was missing from cbat attribute, so a coordinates file could only come as a JSON data spec."""
    from cbat.train import save_checkpoint

    formats = Path(__file__).parent / "fixtures" / "formats"
    _, model, _, _, _ = trained
    save_checkpoint(tmp_path / "model.pt", model, model.cfg)
    assert main(["attribute", "--run", str(tmp_path / "model.pt"), "--data",
                 str(formats / "targetfinder" / "HUVEC" / "output-ep" / "pairs.csv"), "--genome",
                 str(formats / "genome.fa"), "--top", "1", "--by", "pooled", "--n-shuffles", "1", "--n-steps", "4",
                 "--max-steps", "4", "--ism", "0", "--motifs", "MA0139.1", "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0, capsys.readouterr().err
    loops = pd.read_parquet(tmp_path / "out" / "loops.parquet")
    # a loop names its pair and both loci, not only its index in the data (helper: "can't be traced back")
    assert len(loops) == 1 and loops["pair_id"].iloc[0]
    assert re.fullmatch(r"chr\w+:\d+-\d+", loops["enhancer_id"].iloc[0])
    assert "recovery: No planted truth in these data" in capsys.readouterr().err
    assert "No planted truth in these data" in (tmp_path / "out" / "report.html").read_text()


def test_cli_attribute_names_bad_input(tmp_path, capsys):
    assert main(["attribute", "--run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a run folder nor a checkpoint file" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "pairs.csv"
    not_a_checkpoint.write_text("a,b\n")
    assert main(["attribute", "--run", str(not_a_checkpoint), "--out", str(tmp_path / "o")]) == 2
    assert "pairs.csv: truncated or corrupt checkpoint" in capsys.readouterr().err
    assert main(["attribute", "--run", str(tmp_path / "missing"), "--out", str(not_a_checkpoint)]) == 2
    assert "--out " + str(not_a_checkpoint) + ": is a file" in capsys.readouterr().err
    # sizing flags without --data used to be ignored without a word (the run's own data were attributed)
    assert main(["attribute", "--run", str(tmp_path / "missing"), "--n-pairs", "50", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--n-pairs, --data-seed and --genome describe the data given by --data" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_loops_references_do_not_depend_on_the_loops_beside_it(trained):
    """One stream of shuffles across loops made loop k's attribution depend on the loops before it (a loop's
    enhancer attribution correlated 0.61 between --top 3 and --top 1)."""
    ds, model, _, _, _ = trained
    enhancer, promoter = ds.onehot(np.array([5, 9, 11]))
    three = A.integrated_gradients(model, enhancer, promoter, n_shuffles=2, n_steps=8, keys=[5, 9, 11],
                                   delta_threshold=None, progress=False)
    alone = A.integrated_gradients(model, enhancer[2:], promoter[2:], n_shuffles=2, n_steps=8, keys=[11],
                                   delta_threshold=None, progress=False)
    np.testing.assert_allclose(three.enhancer[2], alone.enhancer[0], atol=1e-5)
    refs = A.shuffled_references(enhancer, 2, seed=0, keys=[5, 9, 11])
    assert not torch.equal(refs[:2], A.shuffled_references(enhancer[:1], 2, seed=0, keys=[9]))


def test_hand_chosen_loops_get_outcomes_from_the_labels_and_bad_indices_are_refused(trained):
    ds, model, _, _, db = trained
    negatives = np.flatnonzero(ds.labels == 0)[:2]
    report = A.explain_loops(model, ds, pd.DataFrame({"pair_index": negatives}), db, n_shuffles=1, n_steps=4,
                             n_ism=0, progress=False)
    assert set(report.loops["outcome"]) <= {"FP", "TN"}  # were "predicted", and scored as if true positives
    assert report.recovery_groups["n_loops"].eq(0).all() and not report.recovery_groups["recovered"].any()
    assert report.recovery_groups["why"].str.startswith("no true-positive loop among its chosen loops").all()
    assert np.isnan(report.recovery["decoys_lower"])  # no site scored: no claim either way
    for bad, message in (([1.5, 2], "expected whole numbers"), ([3, 3], r"pair_index \[3\] given more than once")):
        with pytest.raises(ValueError, match=message):
            A.explain_loops(model, ds, pd.DataFrame({"pair_index": bad}), db, n_shuffles=1, n_steps=4, n_ism=0,
                            progress=False)


def test_a_report_folder_holds_one_report_and_a_failure_leaves_it_as_it_was(trained, tmp_path):
    ds, model, predictions, report, _ = trained
    out = tmp_path / "out"
    write_loop_report(report, out)
    assert (out / "recovery.json").is_file()
    untrue = dataclasses.replace(report, recovery=None, recovery_groups=None, truth=None)  # data without truth
    written = write_loop_report(untrue, out)
    assert not (out / "recovery.json").exists() and not (out / "recovery_groups.csv").exists()
    assert set(p.name for p in out.iterdir()) == {Path(p).name for p in written.values()} | {
        f"{Path(p).stem}.csv" for k, p in written.items() if p.endswith(".parquet")}
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "seqlets.csv").unlink()
    (out / "seqlets.csv").mkdir()  # a folder where the report writes a file: refused before anything moves
    with pytest.raises(ValueError, match="seqlets.csv: is a folder where the loop report writes a file"):
        write_loop_report(report, out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "seqlets.csv"} == {
        k: v for k, v in before.items() if k != "seqlets.csv"}
    html = (out / "report.html").read_text()
    top = report.loops.sort_values("logit", ascending=False).iloc[0]
    assert f"loop {top.pair_index} (" in html  # the most confident loop has a track

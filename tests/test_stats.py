"""Paired bootstrap against the baseline: a clear gain beats, a clear loss trails, no gain is unclear."""

import numpy as np
import pandas as pd
import pytest

from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from cbat import rundir
from cbat.metrics import learnt
from cbat.stats import (METRICS, _resampled_scores, adjust, average_precision, compare_to_baseline, paired_bootstrap,
                        paired_effect, roc_auc, verdict)

N_PAIRS, N_SEEDS = 200, 3


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, N_PAIRS)
    noise = rng.normal(0, 1, (N_SEEDS, N_PAIRS))
    sharp = 1 / (1 + np.exp(-(3.0 * (labels - 0.5) + noise)))  # separates the classes well
    blurred = 1 / (1 + np.exp(-(0.3 * (labels - 0.5) + noise)))  # barely does
    return labels, sharp, blurred


def test_fast_ranking_metrics_match_scikit_learn(scores):
    labels, sharp, _ = scores
    rounded = np.round(sharp[0], 1)  # many ties
    for probs in (sharp[0], rounded):
        assert average_precision(labels, probs) == pytest.approx(average_precision_score(labels, probs))
        assert roc_auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs))


def test_resampled_ranking_metrics_by_weights_match_scoring_each_resample(scores):
    """The bootstrap weights each run's once-sorted scores by the draw's counts instead of sorting every resample:
    the same numbers as scoring the resampled arrays (ties, one-class resamples as NaN, and the same draws)."""
    labels, sharp, blurred = scores
    probs = np.vstack([sharp, np.round(blurred, 1)])  # one run with many ties
    few = np.r_[1, np.zeros(9, int)]  # one positive among ten pairs: some resamples hold one class
    for lab, runs in ((labels, probs), (few, probs[:, :10])):
        for metric, reference in (("auroc", roc_auc_score), ("aupr", average_precision_score)):
            rng = np.random.default_rng(4)
            expected = []
            for _ in range(40):
                idx = rng.integers(0, lab.size, lab.size)
                expected.append([reference(lab[idx], row[idx]) if 0 < lab[idx].sum() < lab.size else np.nan
                                 for row in runs])
            got = _resampled_scores(lab, runs, metric, 40, np.random.default_rng(4))
            np.testing.assert_allclose(got, np.array(expected), rtol=0, atol=1e-12)
            assert np.isnan(got).any() == (lab is few)


def test_fast_threshold_metrics_match_scikit_learn(scores):
    labels, sharp, blurred = scores
    # a model, one predicting no positive and one predicting all (zero_division: 0), and probabilities at 0.5
    for probs in (sharp[0], blurred[0], np.zeros(N_PAIRS), np.ones(N_PAIRS), np.full(N_PAIRS, 0.5)):
        for name, reference in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
            expected = reference(labels, probs >= 0.5, zero_division=0)
            assert METRICS[name](labels, probs) == pytest.approx(expected), (name, probs[:3])
    assert METRICS["recall"](np.zeros(4, int), np.ones(4)) == 0.0  # no positive label


def test_clear_gain_beats_and_clear_loss_trails(scores):
    labels, sharp, blurred = scores
    gain = paired_bootstrap(labels, blurred, sharp, "aupr", n_boot=200)
    assert gain["ci_low"] > 0 and gain["mean_diff"] > 0
    assert verdict("aupr", gain["ci_low"], gain["ci_high"]) == "beats"
    loss = paired_bootstrap(labels, sharp, blurred, "auroc", n_boot=200)
    assert verdict("auroc", loss["ci_low"], loss["ci_high"]) == "trails"


def test_same_predictions_are_no_clear_difference(scores):
    labels, sharp, _ = scores
    same = paired_bootstrap(labels, sharp, sharp.copy(), "aupr", n_boot=100)
    assert same["mean_diff"] == 0 and same["ci_low"] <= 0 <= same["ci_high"]
    assert verdict("aupr", same["ci_low"], same["ci_high"]) == "no clear difference"


def test_lower_is_better_for_calibration_error():
    assert verdict("ece", -0.05, -0.01) == "beats"
    assert verdict("ece", 0.01, 0.05) == "trails"


def test_drift_has_no_better_side_and_no_interval_is_no_claim():
    """Upward drift is the log's recall inflation, not a gain: it read "beats"; one seed gives no interval and read
    "no clear difference", as if the data bounded the effect."""
    assert verdict("drift", 0.16, 0.35) == "higher" and verdict("drift", -0.3, -0.1) == "lower"
    assert verdict("drift", -0.1, 0.1) == "no clear difference"
    assert verdict("aupr", np.nan, np.nan) == "no interval"


def test_stats_refuse_nan_probabilities_and_unscorable_runs(scores):
    labels, sharp, blurred = scores
    broken = sharp.copy()
    broken[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"treatment probabilities \(row 1\) must lie in \[0, 1\] and contain no NaN"):
        paired_effect(labels, blurred, broken, "auroc", n_boot=10)
    with pytest.raises(ValueError, match="no run has a aupr score"):
        paired_effect(np.ones(N_PAIRS), blurred, sharp, "aupr", n_boot=10)
    for metric in ("auroc", "recall"):  # recall read an effect of 0 with no variance
        with pytest.raises(ValueError, match="fit_effects: no test pairs"):
            paired_effect(np.array([], int), np.zeros((3, 0)), np.zeros((3, 0)), metric, n_boot=10)
    with pytest.raises(ValueError, match=r"p values must lie in \[0, 1\]"):
        adjust([-0.1, 0.01])
    with pytest.raises(ValueError, match="max_true=0"):
        adjust([0.01, 0.04], max_true=0)


def test_compare_to_baseline_reads_a_sweep_folder(scores, tmp_path):
    labels, sharp, _ = scores
    rng = np.random.default_rng(5)
    learnt_baseline = 1 / (1 + np.exp(-(1.2 * (labels - 0.5) + rng.normal(0, 1, (N_SEEDS, N_PAIRS)))))
    noise = rng.uniform(0, 1, (N_SEEDS, N_PAIRS))
    for variant, probs in (("baseline", learnt_baseline), ("better", sharp), ("chance", noise)):
        for seed in range(N_SEEDS):
            run_dir = tmp_path / "runs" / f"{variant}__s{seed}__chrom"
            run_dir.mkdir(parents=True)
            pd.DataFrame({"pair_index": np.arange(N_PAIRS), "cell_line": "K562", "label": labels,
                          "logit": 0.0, "prob": probs[seed]}).to_parquet(run_dir / "predictions.parquet")
            rundir.write_record(run_dir / "record.json", {
                "run_id": run_dir.name, "variant": variant, "seed": seed, "split": "chrom", "status": "ok",
                "task": "grammar", "config": {}, "metrics": {"test": {"pooled": {}}},
                "learnt": learnt(labels, probs[seed]), "paths": {"predictions": "predictions.parquet"}})
    table = compare_to_baseline(tmp_path, metrics=("aupr", "ece"), n_boot=100)
    assert list(table.variant.unique()) == ["better", "chance"] and table.n_seeds.eq(N_SEEDS).all()
    better = table[table.variant == "better"].set_index("metric")
    assert better.loc["aupr", "verdict"] == "beats" and better.loc["aupr", "not_learnt"] == ""
    # a model at chance trails the baseline by far, yet the comparison says it did not learn instead
    chance = table[table.variant == "chance"].set_index("metric")
    assert chance.loc["aupr", "ci_high"] < 0 and chance.loc["aupr", "verdict"] == "not learnt"
    assert "chance__s0__chrom: test AUROC interval" in chance.loc["aupr", "not_learnt"]
    with pytest.raises(ValueError, match="no finished run of the baseline"):
        compare_to_baseline(tmp_path, baseline="missing")
    # a variant whose every run failed is in the table, with nothing compared, rather than missing from it
    run_dir = tmp_path / "runs" / "broken__s0__chrom"
    run_dir.mkdir(parents=True)
    rundir.write_record(run_dir / "record.json", {
        "run_id": run_dir.name, "variant": "broken", "seed": 0, "split": "chrom", "status": "failed",
        "error": "NumericalFault: non-finite loss at step 0", "task": "grammar", "config": {}, "metrics": {},
        "paths": {}})
    broken = compare_to_baseline(tmp_path, metrics=("aupr",), n_boot=20).set_index("variant").loc["broken"]
    assert broken["verdict"] == "no paired runs" and broken["n_seeds"] == 0 and np.isnan(broken["mean_diff"])
    # finished under other seeds than the baseline's: said so, not "no paired runs"
    for seed in (7, 8):
        run_dir = tmp_path / "runs" / f"reseeded__s{seed}__chrom"
        run_dir.mkdir(parents=True)
        pd.DataFrame({"pair_index": np.arange(N_PAIRS), "cell_line": "K562", "label": labels, "logit": 0.0,
                      "prob": sharp[0]}).to_parquet(run_dir / "predictions.parquet")
        rundir.write_record(run_dir / "record.json", {
            "run_id": run_dir.name, "variant": "reseeded", "seed": seed, "split": "chrom", "status": "ok",
            "task": "grammar", "config": {}, "metrics": {"test": {"pooled": {}}}, "learnt": learnt(labels, sharp[0]),
            "paths": {"predictions": "predictions.parquet"}})
    table = compare_to_baseline(tmp_path, metrics=("aupr",), n_boot=20).set_index("variant")
    assert table.loc["reseeded", "verdict"] == "no shared seed"
    with pytest.raises(ValueError, match="nowhere: sweep directory not found"):
        compare_to_baseline(tmp_path / "nowhere")

"""Metrics agree with scikit-learn, calibration error behaves, groups are split by cell line."""
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cbat import metrics
from cbat.metrics import RankedScores, auroc_interval, binary_metrics, evaluate, expected_calibration_error, learnt


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    probs = np.clip(0.5 * labels + rng.uniform(0, 0.6, 300), 0, 1)
    return labels, probs


def test_ranking_and_threshold_metrics(scored):
    labels, probs = scored
    m = binary_metrics(labels, probs, threshold=0.5)
    assert m["aupr"] == pytest.approx(average_precision_score(labels, probs))
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, probs))
    predicted = probs >= 0.5
    tp = int((predicted & (labels == 1)).sum())
    assert m["precision"] == pytest.approx(tp / predicted.sum())
    assert m["recall"] == pytest.approx(tp / labels.sum())
    assert m["n"] == 300 and m["n_pos"] == labels.sum() and m["base_rate"] == pytest.approx(labels.mean())


def test_expected_calibration_error():
    labels = np.array([0, 1] * 50)
    assert expected_calibration_error(labels, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.full(100, 0.95)) == pytest.approx(0.45)
    assert expected_calibration_error(labels, labels.astype(float)) == pytest.approx(0.0)


def test_evaluate_per_cell_line_and_single_class_group(scored):
    labels, probs = scored
    cells = np.where(np.arange(300) < 150, "GM12878", "K562")
    labels = labels.copy()
    labels[150:] = 1  # K562 holds only positives: no ranking metric there
    out = evaluate(labels, probs, cells)
    assert set(out["per_cell_line"]) == {"GM12878", "K562"}
    assert out["per_cell_line"]["GM12878"]["n"] == 150
    assert math.isnan(out["per_cell_line"]["K562"]["aupr"])
    assert not math.isnan(out["pooled"]["aupr"])
    # threshold metrics too: with one class there is nothing to recall (they read a plain 0 or 1 before)
    assert all(math.isnan(out["per_cell_line"]["K562"][k]) for k in ("precision", "recall", "f1"))
    assert not any(math.isnan(out["pooled"][k]) for k in ("precision", "recall", "f1"))


def test_bad_probabilities_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_metrics([0, 1], [0.2, 1.5])


def test_per_cause_scores_each_cause_against_its_own_negatives(scored):
    labels, probs = scored
    causes = np.where(np.arange(300) % 3 == 0, "long_range", "diffuse")
    out = evaluate(labels, probs, causes=causes)
    for cause in ("long_range", "diffuse"):
        chosen = causes == cause
        assert out["per_cause"][cause]["auroc"] == pytest.approx(roc_auc_score(labels[chosen], probs[chosen]))
    assert evaluate(labels, probs)["per_cause"] == {}


def test_auroc_interval_brackets_the_estimate_and_is_seeded(scored, monkeypatch):
    labels, probs = scored
    low, high = auroc_interval(labels, probs)
    assert low < roc_auc_score(labels, probs) < high and high - low < 0.15
    assert auroc_interval(labels, probs) == (low, high)
    # drawn a few replicates at a time (memory bounded on large test sets), the interval is the same
    monkeypatch.setattr(metrics, "CHUNK_CELLS", 7 * labels.size)
    assert auroc_interval(labels, probs) == (low, high)
    # each replicate weights the sorted scores by its draw's counts: the interval of sorting every resample
    pos_rng, neg_rng = np.random.default_rng(0).spawn(2)
    pos, neg = probs[labels == 1], probs[labels == 0]
    pos_draw = pos[pos_rng.integers(0, pos.size, (1000, pos.size))]
    neg_draw = neg[neg_rng.integers(0, neg.size, (1000, neg.size))]
    aucs = [roc_auc_score(np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[p, n]) for p, n in zip(pos_draw, neg_draw)]
    assert (low, high) == pytest.approx(tuple(np.quantile(aucs, [0.025, 0.975])), abs=1e-12)
    for bad, message in (({"probs": np.r_[probs[:-1], np.nan]}, "auroc_interval: probabilities must lie in"),
                         ({"probs": probs[:-1]}, "must be 1-D and equally long"), ({"n_boot": 0}, "n_boot 0"),
                         ({"level": 1.5}, "level 1.5")):  # NaN was ranked as a score of its own
        with pytest.raises(ValueError, match=message):
            auroc_interval(**{"labels": labels, "probs": probs, **bad})
    ranked = RankedScores(labels, probs)
    for weights in (np.ones((2, labels.size + 1)), np.ones(labels.size), -np.ones((1, labels.size))):
        with pytest.raises(ValueError, match="RankedScores.scores: weights of shape"):  # extra columns were dropped
            ranked.scores(weights, "auroc")


def test_auroc_interval_holds_one_chunk_of_draws_not_all_of_them(monkeypatch):
    """All 1000 replicates' draws were held at once: [1000, n] indices per class, 1.6 GB at 100,000 test pairs."""
    import tracemalloc

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 20_000)
    probs = np.clip(0.5 + 0.2 * (labels - 0.5) + rng.normal(0, 0.2, labels.size), 0, 1)
    monkeypatch.setattr(metrics, "CHUNK_CELLS", 200_000)  # 10 replicates a chunk
    tracemalloc.start()
    try:
        auroc_interval(labels, probs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # all draws at once: 160 MB of indices alone


def test_learnt_guard():
    rng = np.random.default_rng(1)
    labels = np.tile([0, 1], 200)
    good = learnt(labels, np.clip(0.4 * labels + rng.uniform(0, 0.6, 400), 0, 1))
    assert good["learnt"] and good["reason"] == "" and good["auroc_low"] > 0.5
    noise = learnt(labels, rng.uniform(0, 1, 400))
    assert not noise["learnt"] and "includes 0.5" in noise["reason"]
    # ranks well but calls every pair positive: a one-class predictor is not learnt either
    one_class = learnt(labels, 0.9 + 0.09 * labels + rng.uniform(0, 0.01, 400))
    assert one_class["auroc_low"] > 0.9 and not one_class["learnt"]
    assert "predicts positive for 100% of test pairs" in one_class["reason"]
    # 1:20 data: predicting negative for 95 % of pairs is what a good model does
    rare = (np.arange(400) % 20 == 0).astype(int)
    assert learnt(rare, np.clip(0.6 * rare + rng.uniform(0, 0.45, 400), 0, 1))["learnt"]


def test_learnt_guard_with_few_test_positives_needs_the_exact_test():
    """Two positives ranked above three quarters of the negatives: every bootstrap resample of them keeps AUROC
    above 0.5, so the interval alone called this learnt; the exact Mann-Whitney test does not reject chance."""
    labels = np.r_[np.ones(2), np.zeros(120)].astype(int)
    probs = np.r_[0.75, 0.80, np.linspace(0.0, 0.999, 120)]
    guard = learnt(labels, probs)
    assert guard["auroc_low"] > 0.5 and not guard["learnt"]
    assert guard["reason"].startswith("only 2 test positives: rank permutation p ")
    top = learnt(labels, np.r_[0.9995, 0.9999, np.linspace(0.0, 0.999, 120)])  # both above every negative
    assert top["learnt"], top["reason"]
    # one positive above 30 tied negatives: 1 split in 31 ranks it that high, p = 1/31 > 0.025 (scipy's
    # mannwhitneyu takes the normal approximation under ties and gave 6e-8)
    tied = learnt(np.r_[np.zeros(30), 1].astype(int), np.r_[np.full(30, 0.1), 0.9])
    assert not tied["learnt"] and "rank permutation p 0.032" in tied["reason"]


def test_nan_or_misshapen_probabilities_get_one_clear_line():
    labels = np.tile([0, 1], 50)
    probs = np.linspace(0.01, 0.99, 100)
    probs[3] = np.nan
    for call in (lambda: learnt(labels, probs), lambda: expected_calibration_error(labels, probs)):
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\] and contain no NaN"):
            call()
    with pytest.raises(ValueError, match=r"labels \(100,\) and probabilities \(60,\) must be 1-D and equally long"):
        learnt(labels, probs[:60])

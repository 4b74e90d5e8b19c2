"""Effects with intervals that hold their level: least squares over runs, widened by test-pair resampling.

One interval method serves twin pairs and designed sweeps (``fit_effects``): each run is scored once on the
shared test pairs; a linear model over runs (the factors' coded levels, plus one block per seed for a twin
pair, i.e. a paired t-test) gives each effect and its ordinary least-squares variance, which carries the
seed-to-seed spread with ``n_runs - n_parameters`` degrees of freedom; a bootstrap over test pairs (one
resample shared by every run) refits the same model and adds the test-sampling variance. The interval is
``effect +- t(df) * sqrt(var_runs + var_pairs)``.

Why not the earlier paired bootstrap (``paired_bootstrap``, kept for comparison): with 3 seeds, resampling
seeds with replacement puts the interval near the range of the three paired differences, so it excludes 0
whenever all three share a sign -- 25 % of A/A comparisons under the null (measured in
``benchmarks/bench_calibration.py``). The t quantile with 2 degrees of freedom is what keeps the level.

A variant "beats" or "trails" the baseline only when the interval excludes zero; otherwise the verdict is
"no clear difference". Across several hypotheses, ``adjust`` controls multiplicity (Holm by default).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata, t as student_t
from statsmodels.regression.linear_model import OLS  # not statsmodels.api: 0.6 s less per process
from statsmodels.stats.multitest import multipletests

from cbat import rundir
from cbat.metrics import (CHUNK_CELLS, DEFAULT_THRESHOLD, RankedScores, check_probabilities, draw_counts,
                          expected_calibration_error)

LOWER_IS_BETTER = {"ece"}
UNORDERED = {"drift"}  # a difference, not a gain or a loss: the mean probability's distance from the base rate
NO_INTERVAL = "no interval"  # one seed, or no spread at all: nothing measures the noise
RANKING = ("aupr", "auroc")  # metrics a verdict may rest on; threshold metrics only add colour
THRESHOLDED = ("f1", "precision", "recall")


# The bootstrap scores thousands of resamples, so the metrics are computed directly (same definitions as
# scikit-learn's average_precision_score, roc_auc_score and precision/recall/f1_score with zero_division=0;
# 20x faster for the ranking metrics, and recall in scikit-learn took half of an assessment's time; a test
# pins the agreement).
def _thresholded(metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def score(labels: np.ndarray, probs: np.ndarray) -> float:
        predicted = probs >= DEFAULT_THRESHOLD
        true_pos, n_predicted, n_pos = np.sum(predicted & (labels == 1)), np.sum(predicted), np.sum(labels == 1)
        numerator, denominator = {"precision": (true_pos, n_predicted), "recall": (true_pos, n_pos),
                                  "f1": (2 * true_pos, n_predicted + n_pos)}[metric]
        return float(numerator / denominator) if denominator else 0.0
    return score


def average_precision(labels: np.ndarray, probs: np.ndarray) -> float:
    """Sum over distinct thresholds of (recall step) x precision, as ``sklearn.metrics.average_precision_score``."""
    order = np.argsort(-probs, kind="mergesort")
    labels, probs = labels[order], probs[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(probs)), labels.size - 1]
    true_pos = np.cumsum(labels)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties, as ``sklearn.metrics.roc_auc_score``."""
    ranks = rankdata(probs)
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "aupr": average_precision,
    "auroc": roc_auc,
    "f1": _thresholded("f1"),
    "precision": _thresholded("precision"),
    "recall": _thresholded("recall"),
    "ece": expected_calibration_error,
    "drift": lambda labels, probs: float(np.mean(probs) - np.mean(labels)),  # mean probability - base rate
}


def _score(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    if metric in ("aupr", "auroc") and (labels.min() == labels.max()):
        return np.nan  # a resample with one class has no ranking metric
    return float(METRICS[metric](labels, probs))


def paired_bootstrap(labels: np.ndarray, baseline: np.ndarray, variant: np.ndarray, metric: str = "aupr",
                     n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean paired difference (variant - baseline) across seeds with a two-level bootstrap interval.

    The earlier method, kept as the "before" of ``benchmarks/bench_calibration.py``: it resamples seeds and
    test pairs, and with 3 seeds its 95 % interval excludes 0 in far more than 5 % of A/A comparisons. Use
    ``paired_effect``.

    Parameters
    ----------
    labels : [n_pairs] test labels (the same pairs for every seed).
    baseline, variant : [n_seeds, n_pairs] predicted probabilities; row s of both comes from seed s.
    metric : a key of ``METRICS``.
    n_boot, level, seed : bootstrap replicates, interval level and the bootstrap's own RNG seed.

    Returns
    -------
    dict
        ``mean_diff``, ``ci_low``, ``ci_high``, ``baseline_mean``, ``variant_mean``, ``n_seeds``, ``n_pairs``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}; expected one of {sorted(METRICS)}")
    labels = np.asarray(labels).astype(int)
    baseline, variant = np.atleast_2d(baseline).astype(float), np.atleast_2d(variant).astype(float)
    if baseline.shape != variant.shape or baseline.shape[1] != labels.size:
        raise ValueError(f"baseline {baseline.shape} and variant {variant.shape} must both be "
                         f"[n_seeds, {labels.size}]")
    n_seeds, n_pairs = baseline.shape
    base_scores, var_scores = run_scores(labels, baseline, metric), run_scores(labels, variant, metric)
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        seeds = rng.integers(0, n_seeds, n_seeds)
        pairs = rng.integers(0, n_pairs, n_pairs)
        y = labels[pairs]
        diffs = [_score(metric, y, variant[s, pairs]) - _score(metric, y, baseline[s, pairs]) for s in seeds]
        replicates[b] = np.nanmean(diffs) if not np.all(np.isnan(diffs)) else np.nan
    tail = (1 - level) / 2
    low, high = np.nanquantile(replicates, [tail, 1 - tail])
    return {"mean_diff": float(np.mean(var_scores - base_scores)), "ci_low": float(low), "ci_high": float(high),
            "baseline_mean": float(np.mean(base_scores)), "variant_mean": float(np.mean(var_scores)),
            "n_seeds": n_seeds, "n_pairs": n_pairs}


def verdict(metric: str, ci_low: float, ci_high: float) -> str:
    """"beats" / "trails" when the interval excludes zero (direction by metric), else "no clear difference";
    "higher" / "lower" for a metric with no better side (``UNORDERED``: drift above the base rate is no gain);
    ``NO_INTERVAL`` when there is none (one seed, or no spread over runs and test pairs)."""
    if np.isnan(ci_low) or np.isnan(ci_high):
        return NO_INTERVAL
    if not (ci_low > 0 or ci_high < 0):
        return "no clear difference"
    if metric in UNORDERED:
        return "higher" if ci_low > 0 else "lower"
    better = ci_low > 0 if metric not in LOWER_IS_BETTER else ci_high < 0
    return "beats" if better else "trails"


def run_scores(labels: np.ndarray, probs: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of each run (rows of ``probs``, [n_runs, n_pairs]) on the shared test pairs."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}; expected one of {sorted(METRICS)}")
    for i, row in enumerate(np.atleast_2d(probs)):
        check_probabilities(labels, row, f"probabilities of run {i}")
    return _checked_scores(np.asarray(labels).astype(int), np.atleast_2d(probs), metric)


def _checked_scores(labels: np.ndarray, probs: np.ndarray, metric: str) -> np.ndarray:
    """``run_scores`` on int labels and [n_runs, n_pairs] probabilities already checked (bootstrap resamples)."""
    return np.array([_score(metric, labels, row) for row in probs])


@dataclass(frozen=True)
class LinearEffects:
    """Least-squares effects over runs with their covariance (runs + test pairs) and degrees of freedom.

    ``estimate[j]`` is the coefficient of column ``names[j]``; with columns coded -0.5 / +0.5 it is the effect
    high - low. Columns the runs cannot separate from one another are not estimable (NaN), every column of such
    a group alike (the one least squares keeps would carry the whole group's effect); ``confounded`` names, per
    column, the columns these runs cannot tell it from.
    """

    names: tuple[str, ...]
    estimate: np.ndarray
    cov: np.ndarray
    df: int
    n_runs: int
    n_pairs: int
    level: float = 0.95
    confounded: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def contrast(self, weights: dict[str, float]) -> dict[str, float]:
        """``sum(w * coefficient)`` with its interval and two-sided p value (t with ``df``)."""
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise ValueError(f"contrast names {unknown}; expected some of {list(self.names)}")
        w = np.array([weights.get(n, 0.0) for n in self.names])
        used = w != 0
        estimate = float(w[used] @ self.estimate[used])
        var = float(w[used] @ self.cov[np.ix_(used, used)] @ w[used])
        # no spread over runs and test pairs (e.g. two test pairs): nothing measures the noise, so no interval;
        # p 0 for a float-rounding difference of 1e-17 would read as the strongest claim
        se = float(np.sqrt(var)) if self.df > 0 and var > 0 else np.nan
        if np.isnan(se) or np.isnan(estimate):
            return {"estimate": estimate, "se": se, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
        half = student_t.ppf(0.5 + self.level / 2, self.df) * se
        p = 2 * student_t.sf(abs(estimate) / se, self.df)
        return {"estimate": estimate, "se": se, "ci_low": estimate - half, "ci_high": estimate + half,
                "p_value": float(p)}

    def table(self) -> pd.DataFrame:
        """One row per column: term, effect, se, ci_low, ci_high, p_value, df, n_runs, n_pairs."""
        rows = []
        for name in self.names:
            c = self.contrast({name: 1.0})
            rows.append({"term": name, "effect": c["estimate"], "se": c["se"], "ci_low": c["ci_low"],
                         "ci_high": c["ci_high"], "p_value": c["p_value"], "df": self.df, "n_runs": self.n_runs,
                         "n_pairs": self.n_pairs})
        return pd.DataFrame(rows)


def _estimable(X: np.ndarray) -> np.ndarray:
    """Columns that raise the rank of the columns before them (the intercept first)."""
    keep, rank = [], 0
    for j in range(X.shape[1]):
        trial = np.linalg.matrix_rank(X[:, keep + [j]])
        if trial > rank:
            keep.append(j)
            rank = trial
    mask = np.zeros(X.shape[1], dtype=bool)
    mask[keep] = True
    return mask


def fit_effects(columns: np.ndarray, names: Sequence[str], labels: Optional[np.ndarray] = None,
                probs: Optional[np.ndarray] = None, metric: str = "aupr", scores: Optional[np.ndarray] = None,
                blocks: Optional[Sequence] = None, n_boot: int = 500, level: float = 0.95,
                seed: int = 0) -> LinearEffects:
    """Least-squares effects of coded columns on a per-run metric, with an interval that holds seed variance.

    Parameters
    ----------
    columns : [n_runs, k] coded levels (-0.5 low, +0.5 high, 0 where a nested factor does not apply).
    names : the k column names.
    labels, probs : [n_pairs] test labels and [n_runs, n_pairs] probabilities; the metric of each run is
        computed from them and the test pairs are bootstrapped (one resample shared by every run).
    metric : a key of ``METRICS``.
    scores : [n_runs] per-run metric values instead of ``labels``/``probs`` (no pair bootstrap: the interval
        then holds the run-to-run variance only).
    blocks : [n_runs] block labels (e.g. the seed of a twin pair) entered as fixed effects.
    n_boot, level, seed : pair-bootstrap replicates, interval level and the bootstrap's RNG seed.

    Returns
    -------
    LinearEffects
        Degrees of freedom ``n_runs - rank``; with none left the intervals are NaN (more seeds needed).
    """
    if not 0 < level < 1:
        raise ValueError(f"fit_effects: level {level}; expected a confidence level in (0, 1), e.g. 0.95")
    columns = np.atleast_2d(np.asarray(columns, dtype=float))
    if columns.shape[1] != len(names):
        raise ValueError(f"columns has {columns.shape[1]} columns but {len(names)} names")
    if scores is None and (labels is None or probs is None):
        raise ValueError("fit_effects: give labels and probs, or scores")
    if probs is not None:  # checked and scored once here; the bootstrap resamples them unchecked
        probs = np.atleast_2d(np.asarray(probs, dtype=float))
        labels = np.asarray(labels).astype(int)
        if probs.shape != (columns.shape[0], labels.size):
            raise ValueError(f"probs {probs.shape}; expected [{columns.shape[0]} runs, {labels.size} pairs]")
        if labels.size == 0:
            raise ValueError("fit_effects: no test pairs; expected the runs' probabilities on shared test pairs")
        probs_scores = run_scores(labels, probs, metric)
        scores = probs_scores if scores is None else scores
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (columns.shape[0],):
        raise ValueError(f"scores {scores.shape}; expected one per run ({columns.shape[0]})")
    parts = [np.ones((columns.shape[0], 1)), columns]
    if blocks is not None:
        dummies = pd.get_dummies(pd.Series(list(blocks)).astype(str), drop_first=True, dtype=float).to_numpy()
        parts.append(dummies)
    X = np.hstack(parts)
    ok = ~np.isnan(scores)
    if not ok.any():
        raise ValueError(f"fit_effects: no run has a {metric} score" + (" (a ranking metric needs both classes "
                         "among the test labels)" if probs is not None else ""))
    X, scores = X[ok], scores[ok]
    keep = _estimable(X)
    Xk = X[:, keep]
    fit = OLS(scores, Xk).fit()
    df = int(round(fit.df_resid))
    cov = np.asarray(fit.cov_params()) if df > 0 else np.full((Xk.shape[1],) * 2, np.nan)
    n_pairs = 0 if probs is None else probs.shape[1]
    if probs is not None and n_boot > 0:
        y = _resampled_scores(labels, probs[ok], metric, n_boot, np.random.default_rng(seed))
        reps = y[~np.isnan(y).any(axis=1)] @ np.linalg.pinv(Xk).T
        if len(reps) > 1:
            cov = cov + np.cov(reps, rowvar=False).reshape(cov.shape)
    k = columns.shape[1]
    estimate = np.full(k, np.nan)
    full_cov = np.full((k, k), np.nan)
    index = np.flatnonzero(keep[1:1 + k])  # estimable factor columns among the kept ones
    position = np.cumsum(keep) - 1  # where each kept column of X sits in Xk
    rows = position[1 + index]
    estimate[index] = np.asarray(fit.params)[rows]
    full_cov[np.ix_(index, index)] = cov[np.ix_(rows, rows)]
    confounded = _confounded(X, keep, list(names))
    for name in confounded:  # a kept column of a confounded group carries the whole group's effect: not its own
        j = list(names).index(name)
        estimate[j], full_cov[j, :], full_cov[:, j] = np.nan, np.nan, np.nan
    return LinearEffects(tuple(names), estimate, full_cov, df, int(ok.sum()), n_pairs, level, confounded)


def _resampled_scores(labels: np.ndarray, probs: np.ndarray, metric: str, n_boot: int,
                      rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_runs]: each run's ``metric`` on ``n_boot`` resamples of the test pairs (one resample shared by
    every run). Ranking metrics weight each run's once-sorted scores by the draw's counts (``RankedScores``:
    the same numbers as scoring the resampled arrays, without a sort per replicate and run)."""
    n_pairs = labels.size
    draws = (rng.integers(0, n_pairs, n_pairs) for _ in range(n_boot))
    if metric not in RANKING:
        return np.array([_checked_scores(labels[idx], probs[:, idx], metric) for idx in draws])  # checked above
    ranked = [RankedScores(labels, row) for row in probs]
    chunk = max(1, CHUNK_CELLS // n_pairs)
    out = []
    while True:
        drawn = list(itertools.islice(draws, chunk))
        if not drawn:
            return np.concatenate(out) if out else np.empty((0, len(ranked)))
        weights = draw_counts(np.array(drawn), n_pairs)
        out.append(np.column_stack([r.scores(weights, metric) for r in ranked]))


def _confounded(X: np.ndarray, keep: np.ndarray, names: list[str]) -> dict[str, tuple[str, ...]]:
    """Each dropped factor column (X's columns 1..k) as a combination of the kept ones: the kept factor columns
    it loads on absorb its effect, and it is confounded with them (both ways round)."""
    kept = np.flatnonzero(keep)
    pairs: dict[str, list[str]] = {}
    for j in np.flatnonzero(~keep[1:1 + len(names)]) + 1:
        weights = np.linalg.lstsq(X[:, kept], X[:, j], rcond=None)[0]
        partners = [names[c - 1] for c, w in zip(kept, weights) if 1 <= c <= len(names) and abs(w) > 1e-9]
        pairs.setdefault(names[j - 1], []).extend(partners)
        for partner in partners:
            pairs.setdefault(partner, []).append(names[j - 1])
    return {name: tuple(dict.fromkeys(partners)) for name, partners in pairs.items()}


def runs_effect(labels: np.ndarray, reference: np.ndarray, treatment: np.ndarray, metric: str = "aupr",
                paired: bool = False, n_boot: int = 500, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """``treatment - reference`` over runs by ``fit_effects``: the difference of the two sides' mean metric, with
    a t interval on the run-to-run variance widened by a test-pair bootstrap.

    Parameters
    ----------
    labels : [n_pairs] test labels; reference : [n_ref, n_pairs], treatment : [n_treat, n_pairs] probabilities.
    paired : row s of both sides comes from seed s (equal counts): seed blocks, a paired t with n - 1 degrees of
        freedom. Unpaired (default): a two-sample t with n_ref + n_treat - 2, so each side may keep a different
        set of runs (e.g. only the runs that learnt).

    Returns
    -------
    dict
        ``mean_diff``, ``ci_low``, ``ci_high``, ``se``, ``df``, ``p_value``, ``baseline_mean`` (reference),
        ``variant_mean`` (treatment), ``n_seeds`` (runs on the smaller side), ``n_pairs``.
    """
    reference, treatment = np.atleast_2d(reference), np.atleast_2d(treatment)
    if paired and reference.shape != treatment.shape:
        raise ValueError(f"reference {reference.shape} and treatment {treatment.shape} must have the same shape")
    if reference.shape[1] != treatment.shape[1]:
        raise ValueError(f"reference {reference.shape} and treatment {treatment.shape} must share the test pairs")
    for side, rows in (("reference", reference), ("treatment", treatment)):
        for i, row in enumerate(rows):
            check_probabilities(labels, row, f"{side} probabilities (row {i})")
    n_ref, n_treat = reference.shape[0], treatment.shape[0]
    column = np.r_[np.full(n_ref, -0.5), np.full(n_treat, 0.5)][:, None]
    probs = np.vstack([reference, treatment])
    blocks = list(range(n_ref)) * 2 if paired else None
    fit = fit_effects(column, ["treatment"], labels, probs, metric, blocks=blocks, n_boot=n_boot, level=level,
                      seed=seed)
    c = fit.contrast({"treatment": 1.0})
    scores = run_scores(labels, probs, metric)
    return {"mean_diff": c["estimate"], "ci_low": c["ci_low"], "ci_high": c["ci_high"], "se": c["se"],
            "df": fit.df, "p_value": c["p_value"], "baseline_mean": float(np.nanmean(scores[:n_ref])),
            "variant_mean": float(np.nanmean(scores[n_ref:])), "n_seeds": min(n_ref, n_treat),
            "n_pairs": probs.shape[1]}


def paired_effect(labels: np.ndarray, reference: np.ndarray, treatment: np.ndarray, metric: str = "aupr",
                  n_boot: int = 500, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Twin pair ``treatment - reference`` over paired seeds (``runs_effect(paired=True)``: a paired t).

    reference, treatment : [n_seeds, n_pairs] probabilities, row s of both from seed s.
    """
    return runs_effect(labels, reference, treatment, metric, paired=True, n_boot=n_boot, level=level, seed=seed)


def adjust(p_values: Sequence[float], method: str = "holm", max_true: Optional[int] = None) -> np.ndarray:
    """Multiplicity-adjusted p values (``statsmodels.stats.multitest.multipletests``; NaNs stay NaN).

    ``method``: "holm" (family-wise error) or "fdr_bh" (Benjamini-Hochberg false discovery rate).
    ``max_true``: at most this many of the null hypotheses can be true at once (e.g. the verdicts' test for and
    test against each claim have disjoint nulls, so at most one per claim is true). Holm's step j then divides
    by ``min(max_true, m - j + 1)`` instead of ``m - j + 1`` (Shaffer's bound on the true nulls left), which
    keeps the family-wise error at the level. Benjamini-Hochberg needs no such bound and does not read it.
    """
    p = np.asarray(p_values, dtype=float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"adjust: p values must lie in [0, 1], got {p[(p < 0) | (p > 1)][:3].tolist()}")
    if max_true is not None and max_true < 1:
        raise ValueError(f"adjust: max_true={max_true}; at least one null hypothesis may be true (>= 1)")
    out = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if not finite.any():
        return out
    if max_true is None or method != "holm":
        out[finite] = multipletests(p[finite], method=method)[1]
        return out
    values = p[finite]
    order = np.argsort(values)
    m = values.size
    divisors = np.minimum(max_true, m - np.arange(m))
    stepped = np.minimum(1.0, np.maximum.accumulate(divisors * values[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out[finite] = adjusted
    return out


NOT_LEARNT = "not learnt"
NO_RUNS = "no paired runs"
NO_SHARED_SEED = "no shared seed"


def _predictions(sweep_dir: Path, records: list[dict]) -> dict[tuple, pd.DataFrame]:
    out = {}
    for rec in records:
        run_dir, named = rundir.run_dir(sweep_dir, rec["run_id"]), (rec.get("paths") or {}).get("predictions")
        path = run_dir / named if named else rundir.run_file(run_dir, "predictions")
        out[(rec["variant"], rec["split"], rec["seed"])] = rundir.read_parquet(path).set_index("pair_index")
    return out


def compare_to_baseline(sweep_dir: str | Path, baseline: str = "baseline",
                        metrics: Sequence[str] = ("aupr", "auroc", "f1", "ece"), n_boot: int = 500,
                        level: float = 0.95, seed: int = 0, method: str = "holm") -> pd.DataFrame:
    """Every variant of a sweep against ``baseline``, per split and metric (``paired_effect``).

    Returns
    -------
    DataFrame
        variant, split, metric, n_seeds, n_pairs, baseline_mean, variant_mean, mean_diff, ci_low, ci_high,
        verdict, se, df, p_value, p_adjusted (``adjust`` with ``method`` over the variants of one split and
        metric), not_learnt. Only seeds where both runs finished "ok" are paired; pairs are those all of them
        scored. When a paired run did not learn its task (``record["learnt"]``), the verdict reads "not learnt"
        and ``not_learnt`` names the runs and why: no "beats"/"trails" rests on a model at chance. A variant
        with no seed to pair on a split keeps a row per metric, so it is not silently missing: its verdict reads
        "no paired runs" (its runs or the baseline's failed or are not finished) or "no shared seed" (both
        finished, under different seeds). "no interval" marks a comparison with one paired seed, "higher" /
        "lower" a difference in drift (no side of it is better).
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir}: sweep directory not found")
    every = rundir.read_records(sweep_dir)
    records = [r for r in every if r["status"] == "ok"]
    if not any(r["variant"] == baseline for r in records):
        raise ValueError(f"{sweep_dir}: no finished run of the baseline variant {baseline!r}")
    predictions = _predictions(sweep_dir, records)
    unlearnt = {(r["variant"], r["split"], r["seed"]): f"{r['run_id']}: {r['learnt']['reason']}"
                for r in records if not r["learnt"]["learnt"]}
    rows = []
    # a designed sweep's rows are read together (diagnostics.effects), each under its own seed: not one by one
    design_rows = set(((rundir.read_spec(sweep_dir) or {}).get("design") or {}).get("rows", ()))
    variants = list(dict.fromkeys(r["variant"] for r in every if r["variant"] != baseline
                                  and r["variant"] not in design_rows))
    splits = list(dict.fromkeys(r["split"] for r in every))
    for variant in variants:
        for split in splits:
            seeds = sorted(s for (v, sp, s) in predictions if v == variant and sp == split
                           and (baseline, split, s) in predictions)
            if not seeds:
                finished = {v for (v, sp, _) in predictions if sp == split}
                missing = NO_SHARED_SEED if {variant, baseline} <= finished else NO_RUNS
                rows += [{"variant": variant, "split": split, "metric": metric, "n_seeds": 0, "n_pairs": 0,
                          "verdict": missing, "not_learnt": ""} for metric in metrics]
                continue
            frames = [predictions[(who, split, s)] for s in seeds for who in (baseline, variant)]
            common = frames[0].index
            for frame in frames[1:]:
                common = common.intersection(frame.index)
            labels = frames[0].loc[common, "label"].to_numpy()
            base = np.stack([predictions[(baseline, split, s)].loc[common, "prob"].to_numpy() for s in seeds])
            var = np.stack([predictions[(variant, split, s)].loc[common, "prob"].to_numpy() for s in seeds])
            at_chance = "; ".join(unlearnt[(who, split, s)] for s in seeds for who in (baseline, variant)
                                  if (who, split, s) in unlearnt)
            for metric in metrics:
                result = paired_effect(labels, base, var, metric, n_boot, level, seed)
                rows.append({"variant": variant, "split": split, "metric": metric, **result,
                             "verdict": NOT_LEARNT if at_chance else verdict(metric, result["ci_low"],
                                                                             result["ci_high"]),
                             "not_learnt": at_chance})
    columns = ["variant", "split", "metric", "n_seeds", "n_pairs", "baseline_mean", "variant_mean", "mean_diff",
               "ci_low", "ci_high", "verdict", "se", "df", "p_value", "p_adjusted", "not_learnt"]
    table = pd.DataFrame(rows, columns=columns)
    for _, group in table.groupby(["split", "metric"]):
        table.loc[group.index, "p_adjusted"] = adjust(group["p_value"], method)
    return table


def false_claim_rate(labels: np.ndarray, probs: np.ndarray, n_per_side: int = 3, n_reps: int = 200,
                     metric: str = "aupr", method: str = "paired_effect", n_boot: int = 200, level: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """A/A check: how often an interval excludes 0 between two groups of runs of the *same* config.

    Parameters
    ----------
    labels : [n_pairs] test labels; probs : [n_runs, n_pairs] test probabilities of one config under
        ``n_runs >= 2 * n_per_side`` seeds.
    n_per_side : seeds named "A" and, disjoint, seeds named "B" in each repetition (drawn at random).
    method : "paired_effect" (this module's paired interval), "runs_effect" (its two-sample form, what the
        verdicts use) or "paired_bootstrap" (the earlier one).

    Returns
    -------
    dict
        ``rate`` (share of repetitions claiming a difference), ``claims``, ``n_reps``; nominal is ``1 - level``.
    """
    methods = {"paired_effect": paired_effect, "runs_effect": runs_effect, "paired_bootstrap": paired_bootstrap}
    if method not in methods:
        raise ValueError(f"method {method!r}; expected one of {sorted(methods)}")
    probs = np.atleast_2d(probs)
    if probs.shape[0] < 2 * n_per_side:
        raise ValueError(f"{probs.shape[0]} runs; an A/A check with {n_per_side} per side needs {2 * n_per_side}")
    rng = np.random.default_rng(seed)
    claims = 0
    for rep in range(n_reps):
        chosen = rng.permutation(probs.shape[0])[: 2 * n_per_side]
        result = methods[method](labels, probs[chosen[:n_per_side]], probs[chosen[n_per_side:]], metric,
                                 n_boot=n_boot, level=level, seed=seed + rep)
        claims += int(result["ci_low"] > 0 or result["ci_high"] < 0)
    return {"rate": claims / n_reps, "claims": claims, "n_reps": n_reps}

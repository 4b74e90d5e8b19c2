"""Ablation statistics: effects with confidence intervals and the waterfall from baseline to cbat_v2.

An ``Effect`` is ``metric(treatment) - metric(reference)`` with its interval. A twin pair's comes from
``cbat.stats.runs_effect`` (a two-sample t over the runs that learnt, widened by a test-pair bootstrap); a
designed effect (``diagnostics.design``) from the same least-squares method over the design's runs, so both
read alike.
A run record may say the model did not learn (``record["learnt"]["learnt"] is False``); an effect resting on
such a run carries ``unlearnt`` and claims nothing. The waterfall follows the
variant names of ``cbat.ablations``: ``baseline+<factor>`` (add-one-in) and ``cbat_v2-<factor>``
(leave-one-out), one bar per factor of ``cbat.ablations.FACTORS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cbat import ablations, metrics, stats
from diagnostics.figures import mark_steps_not_learnt, not_learnt_title, styled
from diagnostics.io import Sweep, load_sweep

LABELS = {"aupr": "AUPR", "auroc": "AUROC", "recall": "recall", "precision": "precision", "f1": "F1", "ece": "ECE"}


@dataclass(frozen=True)
class Effect:
    """A paired difference ``treatment - reference`` with its bootstrap interval."""

    treatment: str
    reference: str
    metric: str
    task: str
    split: str
    mean_diff: float
    ci_low: float
    ci_high: float
    treatment_mean: float
    reference_mean: float
    n_seeds: int
    n_pairs: int
    run_ids: tuple[str, ...]
    se: float = np.nan
    df: int = 0
    p_value: float = np.nan
    source: str = "twin"  # "twin" (the runs of two variants) or "design" (a designed sweep's runs)
    aliases: tuple[str, ...] = ()
    unlearnt: tuple[str, ...] = ()  # "<run_id>: <reason>" of compared runs that did not learn (a side had none)
    excluded: tuple[str, ...] = ()  # "<run_id>: <reason>" of runs left out because they did not learn
    cause: str = ""  # the planted cause whose positives and matched negatives were scored ("" = all test pairs)

    @property
    def sign(self) -> int:
        """+1 / -1 when the interval lies above / below zero, 0 when it spans zero (or is unknown)."""
        return 1 if self.ci_low > 0 else -1 if self.ci_high < 0 else 0

    def text(self) -> str:
        label = LABELS.get(self.metric, self.metric)
        if self.source == "design":
            means = f"{self.n_seeds} runs of a designed sweep"
        else:
            means = f"{self.treatment_mean:.3f} vs {self.reference_mean:.3f}; {self.n_seeds} seeds"
        scope = f"{self.task}/{self.split}" + (f", cause {self.cause}" if self.cause else "")
        text = (f"Δ{label}({self.treatment} − {self.reference}) = {self.mean_diff:+.3f} "
                f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}], p {self.p_value:.3g} ({means}, {self.n_pairs} test "
                f"pairs, {scope})")
        if self.aliases:
            text += f"; aliased with {', '.join(self.aliases)}"
        if self.excluded:
            text += f"; runs that did not learn, left out: {'; '.join(self.excluded)}"
        return text


def unlearnt(sweep: Sweep, run_ids, cause: Optional[str] = None) -> tuple[str, ...]:
    """"<run_id>: <reason>" for each run whose record says it did not learn (none when records lack the
    ``learnt`` field, as older sweeps do).

    With ``cause`` (an effect scored on one planted cause), the guard is read on the run's test pairs outside
    that cause instead: a mechanism that costs a cause its positives would otherwise pull the pooled AUROC of
    exactly the runs that show the cost towards 0.5, and the guard would leave out the evidence it guards.
    Where the other pairs hold one class only (a single-cause probe), the record's pooled guard stays.
    """
    out = []
    for run_id in run_ids:
        guard = (_guard_outside(sweep, run_id, cause) if cause else None) or sweep.records[run_id].get("learnt")
        if isinstance(guard, dict) and guard.get("learnt") is False:
            out.append(f"{run_id}: {guard.get('reason') or 'not learnt'}")
    return tuple(out)


def _guard_outside(sweep: Sweep, run_id: str, cause: str) -> Optional[dict]:
    """``cbat.metrics.learnt`` on the run's test pairs outside ``cause``; None where they cannot tell. A
    bootstrap, so it runs once per run and cause of a sweep."""
    return sweep.cached((run_id, "learnt outside", cause), lambda: _compute_guard_outside(sweep, run_id, cause))


def _compute_guard_outside(sweep: Sweep, run_id: str, cause: str) -> Optional[dict]:
    predictions = sweep.predictions(run_id)
    if "cause" not in predictions:
        return None
    rest = predictions[predictions["cause"] != cause]
    if rest["label"].nunique() < 2:
        return None
    threshold = sweep.records[run_id].get("settings", {}).get("threshold", metrics.DEFAULT_THRESHOLD)
    guard = metrics.learnt(rest["label"].to_numpy(), rest["prob"].to_numpy(), threshold)
    if not guard["learnt"]:
        guard["reason"] = f"on the test pairs outside cause {cause}, {guard['reason']}"
    return guard


def _common_context(sweep: Sweep, treatment: str, reference: str, task: Optional[str],
                    split: Optional[str]) -> Optional[tuple[str, str, list[int]]]:
    """The (task, split) where both variants have the most paired finished seeds."""
    best = None
    treat, ref = sweep.ok(treatment, task, split), sweep.ok(reference, task, split)
    for (t, s), group in treat.groupby(["task", "split"]):
        seeds = sorted(set(group["seed"]) & set(ref[(ref["task"] == t) & (ref["split"] == s)]["seed"]))
        if seeds and (best is None or len(seeds) > len(best[2])):
            best = (t, s, seeds)
    return best


def effect(sweep: Sweep | str, treatment: str, reference: str, metric: str = "aupr", task: Optional[str] = None,
           split: Optional[str] = None, n_boot: int = 500, level: float = 0.95, seed: int = 0,
           cause: Optional[str] = None) -> Optional[Effect]:
    """Effect of ``treatment`` against ``reference`` on one metric (``cbat.stats.runs_effect``).

    ``cause`` scores only the test pairs of one planted cause (its positives and its matched negatives, the
    ``cause`` column the trainer writes into predictions of the synthetic benchmark).

    Each side keeps its runs that learnt (``cbat.metrics.learnt``) and the two sides are compared as two samples
    (a stalled seed on one side does not cost the other side its run); the runs left out are named in
    ``excluded``, so no difference rests on a model at chance. A side with no learnt run keeps all its runs and
    ``unlearnt`` names them, which the verdicts read as "not learnt". Two samples
    rather than seed pairs: a seed fixes the batch order but not the weights of two different architectures,
    so pairing bought little and cost a pair whenever either run stalled.

    Returns
    -------
    Effect or None
        None when the two variants share no finished (task, split, seed).
    """
    sweep = load_sweep(sweep)
    context = _common_context(sweep, treatment, reference, task, split)
    if context is None:
        return None
    task, split, _ = context
    run_ids = {who: sweep.ok(who, task, split)["run_id"].tolist() for who in (treatment, reference)}
    reasons = {r: unlearnt(sweep, [r], cause) for ids in run_ids.values() for r in ids}
    learnt_ids = {who: [r for r in ids if not reasons[r]] for who, ids in run_ids.items()}
    # a side keeps its learnt runs; a side with none keeps all (and the effect says "not learnt")
    excluded = tuple(reason for who in run_ids if learnt_ids[who] for r in run_ids[who] for reason in reasons[r])
    run_ids = {who: learnt_ids[who] or run_ids[who] for who in run_ids}
    frames = {who: [_of_cause(sweep.predictions(r), cause).set_index("pair_index") for r in ids]
              for who, ids in run_ids.items()}
    common = frames[reference][0].index
    for frame in frames[treatment] + frames[reference]:
        common = common.intersection(frame.index)
    labels = frames[reference][0].loc[common, "label"].to_numpy()
    probs = {who: np.stack([f.loc[common, "prob"].to_numpy() for f in fs]) for who, fs in frames.items()}
    result = stats.runs_effect(labels, probs[reference], probs[treatment], metric, n_boot=n_boot, level=level,
                               seed=seed)
    ids = tuple(run_ids[treatment] + run_ids[reference])
    return Effect(treatment, reference, metric, task, split, result["mean_diff"], result["ci_low"],
                  result["ci_high"], result["variant_mean"], result["baseline_mean"], result["n_seeds"],
                  result["n_pairs"], ids, se=result["se"], df=result["df"], p_value=result["p_value"],
                  unlearnt=tuple(reason for r in ids for reason in reasons[r]), excluded=excluded, cause=cause or "")


def _of_cause(predictions: pd.DataFrame, cause: Optional[str]) -> pd.DataFrame:
    if cause is None:
        return predictions
    if "cause" not in predictions:
        raise ValueError(f"predictions have no 'cause' column, so cause {cause!r} cannot be scored")
    return predictions[predictions["cause"] == cause]


def effects_frame(effects: list[Optional[Effect]]) -> pd.DataFrame:
    """Effects as a tidy table (Nones dropped)."""
    rows = [{k: v for k, v in e.__dict__.items()} for e in effects if e is not None]
    return pd.DataFrame(rows)


WATERFALL_COLUMNS = ["step", "kind", "add_one_in", "add_ci_low", "add_ci_high", "leave_one_out", "loo_ci_low",
                     "loo_ci_high", "n_seeds", "run_ids", "not_learnt"]


def waterfall(sweep: Sweep | str, metric: str = "aupr", **kwargs) -> pd.DataFrame:
    """Per factor of ``cbat.ablations.FACTORS`` present in the sweep: the add-one-in effect
    (``baseline+<f>`` − baseline) and the leave-one-out effect (cbat_v2 − ``cbat_v2-<f>``), each with its
    interval; plus rows ``baseline`` / ``cbat_v2`` holding the reference means, and ``interactions``,
    what the single-factor steps leave unexplained of cbat_v2 − baseline.

    Columns: step, kind ("absolute", "factor", "interactions", "total"), add_one_in, add_ci_low, add_ci_high,
    leave_one_out, loo_ci_low, loo_ci_high, n_seeds, run_ids, not_learnt (a side of the step's effect has no run
    that learnt: its bar is no effect; ``WATERFALL_COLUMNS``; no rows when the sweep holds no single-factor twin
    and not both references). ``kwargs`` go to ``effect``.
    """
    sweep = load_sweep(sweep)
    variants = set(sweep.runs["variant"])
    base, full = ablations.BASELINE, ablations.FULL
    rows = []
    for factor in ablations.FACTORS:
        add = effect(sweep, f"{base}+{factor}", base, metric, **kwargs) if f"{base}+{factor}" in variants else None
        loo = effect(sweep, full, f"{full}-{factor}", metric, **kwargs) if f"{full}-{factor}" in variants else None
        if add is None and loo is None:
            continue
        rows.append({"step": factor, "kind": "factor",
                     "add_one_in": add.mean_diff if add else np.nan, "add_ci_low": add.ci_low if add else np.nan,
                     "add_ci_high": add.ci_high if add else np.nan,
                     "leave_one_out": loo.mean_diff if loo else np.nan, "loo_ci_low": loo.ci_low if loo else np.nan,
                     "loo_ci_high": loo.ci_high if loo else np.nan,
                     "n_seeds": min(e.n_seeds for e in (add, loo) if e),
                     "run_ids": sorted({r for e in (add, loo) if e for r in e.run_ids}),
                     "not_learnt": any(bool(e.unlearnt) for e in (add, loo) if e)})
    total = effect(sweep, full, base, metric, **kwargs) if {base, full} <= variants else None
    if total is None:
        return pd.DataFrame(rows, columns=WATERFALL_COLUMNS)
    explained = sum(r["add_one_in"] for r in rows if not np.isnan(r["add_one_in"]))
    at_chance = bool(total.unlearnt)
    head = {"step": base, "kind": "absolute", "add_one_in": total.reference_mean, "not_learnt": at_chance}
    rest = [{"step": "interactions", "kind": "interactions", "add_one_in": total.mean_diff - explained,
             "not_learnt": at_chance or any(r["not_learnt"] for r in rows)},
            {"step": full, "kind": "total", "add_one_in": total.treatment_mean, "add_ci_low": total.ci_low,
             "add_ci_high": total.ci_high, "n_seeds": total.n_seeds, "run_ids": list(total.run_ids),
             "not_learnt": at_chance}]
    return pd.DataFrame([head] + rows + rest, columns=WATERFALL_COLUMNS)


def waterfall_figure(table: pd.DataFrame, metric: str = "aupr") -> go.Figure:
    """Waterfall from the baseline's mean to cbat_v2's: one bar per add-one-in effect (with its interval),
    the unexplained interactions, and cbat_v2; leave-one-out effects as diamonds with their intervals."""
    label = LABELS.get(metric, metric)
    measure = table["kind"].map({"absolute": "absolute", "factor": "relative", "interactions": "relative",
                                 "total": "total"})
    steps = table["step"].tolist()
    values = table["add_one_in"].fillna(0.0)
    fig = go.Figure(go.Waterfall(x=steps, y=np.where(measure == "total", 0.0, values), measure=measure,
                                 name=f"add-one-in Δ{label}", connector={"line": {"dash": "dot"}}))
    tops = np.cumsum(np.where(measure == "relative", values, 0.0) + np.where(measure == "absolute", values, 0.0))
    factors = (table["kind"] == "factor").to_numpy()
    if factors.any():
        fig.add_trace(go.Scatter(
            x=np.array(steps)[factors], y=tops[factors], mode="markers", marker={"size": 1}, showlegend=False,
            error_y={"type": "data", "symmetric": False,
                     "array": (table["add_ci_high"] - table["add_one_in"])[factors],
                     "arrayminus": (table["add_one_in"] - table["add_ci_low"])[factors]}, name="add-one-in CI"))
        loo = table[factors]
        fig.add_trace(go.Scatter(
            x=loo["step"], y=loo["leave_one_out"], mode="markers", marker={"symbol": "diamond", "size": 9},
            yaxis="y2", name=f"leave-one-out Δ{label} (cbat_v2 − without)",
            error_y={"type": "data", "symmetric": False, "array": loo["loo_ci_high"] - loo["leave_one_out"],
                     "arrayminus": loo["leave_one_out"] - loo["loo_ci_low"]}))
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": f"leave-one-out Δ{label}",
                                  "zeroline": True})
    flags = table["not_learnt"].fillna(False).astype(bool).tolist() if "not_learnt" in table else []
    mark_steps_not_learnt(fig, steps, flags)
    title = not_learnt_title(f"From baseline to cbat_v2: {label} per mechanism (95% CI)", flags)
    if table.empty:
        title += ": nothing to show, the sweep holds no single-factor twin (baseline+<factor>, cbat_v2-<factor>)"
    return styled(fig, title, "", label)


def forest_figure(effects: pd.DataFrame) -> go.Figure:
    """Effects with their intervals as a forest plot (output of ``effects_frame``)."""
    labels = effects["treatment"] + " − " + effects["reference"] + " (" + effects["metric"] + ")"
    fig = go.Figure(go.Scatter(
        x=effects["mean_diff"], y=labels, mode="markers",
        error_x={"type": "data", "symmetric": False, "array": effects["ci_high"] - effects["mean_diff"],
                 "arrayminus": effects["mean_diff"] - effects["ci_low"]}))
    fig.add_vline(x=0, line_dash="dot")
    return styled(fig, "Paired differences with 95% intervals (seeds and test pairs)", "difference", "")

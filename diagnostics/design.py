"""Designed effects: every factor's main effect from the runs of a designed sweep, with aliases and intervals.

``effects(sweep_dir, metric)`` fits one least-squares model over the runs (``cbat.stats.fit_effects``: the
coded levels of ``cbat.ablations.FACTORS``, -0.5 = baseline value, +0.5 = cbat_v2 value) and returns a tidy
table, one row per factor (and per cause where the run records have per-cause metrics). The interval holds the
run-to-run (seed) variance through the residual degrees of freedom, plus a bootstrap over the shared test pairs
for the pooled metric. Runs whose record says they did not learn are left out and named (the ``note``
column), as a twin pair's sides leave them out; only with none learnt are all kept and every effect reads "not
learnt". Which runs: the rows of the design stored in ``sweep.json`` ("design"); a sweep without
one uses every run whose config sits on a corner (each factor at the baseline's or cbat_v2's value, e.g.
presets, add-one-in and leave-one-out variants), and factors those runs cannot separate are "not estimable".

Aliases come from the design library (``cbat.ablations.alias_groups``): in a resolution III design a main
effect is aliased with two-factor interactions, and the table names them. With resolution >= 5 the two-factor
interactions are estimated as terms of their own. ``anchors`` is nested within ``joint_attn`` (concatenated
anchors need joint attention): its effect is the one within joint_attn on.
"""
from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cbat import ablations, stats
from diagnostics.ablation import LABELS, Effect, _of_cause, unlearnt
from diagnostics.figures import mark_not_learnt, mark_steps_not_learnt, not_learnt_title, styled
from diagnostics.io import Sweep, SweepError, load_sweep

EFFECT_COLUMNS = ["factor", "kind", "metric", "cause", "effect", "ci_low", "ci_high", "level", "se", "df", "p_value",
                  "n_runs", "n_pairs", "aliases", "note", "claim", "task", "split"]
NESTED_NOTE = {f: f"nested: the effect within {' and '.join(n)} on" for f, n in ablations.REQUIRES.items()}


@dataclass
class DesignFit:
    """The runs a designed effect rests on and their fitted model (pooled metric, or one planted cause's)."""

    fit: stats.LinearEffects
    run_ids: list[str]
    levels: np.ndarray
    task: str
    split: str
    design: Optional[ablations.Design]
    unlearnt: tuple[str, ...]  # every run, when none learnt: the fit rests on runs at chance
    cause: str = ""  # the planted cause scored ("" = all test pairs)
    excluded: tuple[str, ...] = ()  # runs that did not learn, left out of the fit (others did)

    def aliases(self, term: str) -> tuple[str, ...]:
        """Terms the design cannot tell apart from ``term`` (for a nested factor, also those of its product
        with what it needs, which its coding contains)."""
        if self.design is None:
            return () if not np.isnan(self.fit.estimate[self.fit.names.index(term)]) else ("not estimable",)
        order = list(ablations.FACTORS)
        wanted = {term}
        if term in ablations.REQUIRES:
            wanted.add(":".join(sorted([term, *ablations.REQUIRES[term]], key=order.index)))
        out = []
        for group in self.design.aliases:
            if wanted & set(group):
                out += [t for t in group if t not in wanted and t not in out]
        return tuple(out)


def _design(sweep: Sweep) -> Optional[ablations.Design]:
    stored = sweep.spec.get("design")
    if not stored:
        return None
    try:
        return ablations.Design.from_dict(stored)
    except (KeyError, TypeError, ValueError) as err:
        raise SweepError(f"{sweep.path / 'sweep.json'}: field 'design' is malformed ({err!r})") from None


def fittable_design(sweep: Sweep | str) -> Optional[ablations.Design]:
    """The sweep's design once some of its rows have finished (None without a design or before any row has: there
    is nothing to fit yet, and twin pairs are all a sweep can offer)."""
    sweep = load_sweep(sweep)
    d = _design(sweep)
    return d if d is not None and sweep.ok()["variant"].isin(d.names).any() else None


def _corner_runs(sweep: Sweep, design: Optional[ablations.Design], task: Optional[str],
                 split: Optional[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Finished runs the model is fitted on (one task and split: the one with most runs) and their levels."""
    runs = sweep.ok(task=task, split=split)
    if runs.empty:
        finished = sweep.ok()
        raise SweepError(f"{sweep.path}: no finished run with task={task!r}, split={split!r}; the sweep has tasks "
                         f"{sorted(finished['task'].unique())} and splits {sorted(finished['split'].unique())}")
    if design is not None:
        runs = runs[runs["variant"].isin(design.names)]
    levels = {r: ablations.levels_of(sweep.config(r)) for r in runs["run_id"]}
    runs = runs[np.array([levels[r] is not None for r in runs["run_id"]], dtype=bool)]
    # the same config, settings and seed under two variant names is one model trained twice: counted once, or the
    # interval would shrink with every copy
    identity = [json.dumps([{k: v for k, v in sweep.config(r).items() if k != "name"},
                            sweep.records[r].get("settings"), seed, split_], sort_keys=True, default=str)
                for r, seed, split_ in zip(runs["run_id"], runs["seed"], runs["split"])]
    runs = runs[~pd.Series(identity).duplicated().to_numpy()]
    if runs.empty:
        what = "rows of its design" if design is not None else "runs on the corners of the factor space"
        raise SweepError(f"{sweep.path}: no finished {what} (task={task}, split={split})")
    task_, split_ = runs.groupby(["task", "split"]).size().idxmax()
    runs = runs[(runs["task"] == task_) & (runs["split"] == split_)].reset_index(drop=True)
    matrix = np.array([[levels[r][f] for f in ablations.FACTORS] for r in runs["run_id"]], dtype=float)
    return runs, matrix


def _model(levels: np.ndarray, design: Optional[ablations.Design]) -> tuple[np.ndarray, list[str]]:
    """Main-effect columns, plus two-factor interactions when the design's resolution keeps them apart."""
    factors = list(ablations.FACTORS)
    columns, names = [ablations.coded(levels)], list(factors)
    if design is not None and design.resolution >= 5:
        nested = {(f, n) for f, needs in ablations.REQUIRES.items() for n in needs}
        for i, j in itertools.combinations(range(len(factors)), 2):
            if (factors[i], factors[j]) in nested or (factors[j], factors[i]) in nested:
                continue  # already inside the nested factor's coding
            columns.append((levels[:, i] * levels[:, j] / 2)[:, None])
            names.append(f"{factors[i]}:{factors[j]}")
    return np.hstack(columns), names


def _probs(sweep: Sweep, run_ids: Sequence[str], cause: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    frames = [_of_cause(sweep.predictions(r), cause).set_index("pair_index") for r in run_ids]
    common = frames[0].index
    for frame in frames[1:]:
        common = common.intersection(frame.index)
    return frames[0].loc[common, "label"].to_numpy(), np.stack([f.loc[common, "prob"].to_numpy() for f in frames])


def fit(sweep: Sweep | str, metric: str = "aupr", task: Optional[str] = None, split: Optional[str] = None,
        n_boot: int = 500, level: float = 0.95, seed: int = 0, cause: Optional[str] = None) -> DesignFit:
    """The least-squares fit of ``metric`` on the designed (or corner) runs of a sweep; see ``effects``.
    ``cause`` scores one planted cause's test pairs (its positives and matched negatives), with the "did it
    learn" guard read on the other pairs, as a twin pair's effect on a cause is."""
    sweep = load_sweep(sweep)
    design = _design(sweep)
    runs, levels = _corner_runs(sweep, design, task, split)
    finished_rows = len({tuple(row) for row in levels})
    if design is not None and finished_rows < len(design.matrix):
        warnings.warn(f"{sweep.path}: {finished_rows} of the design's {len(design.matrix)} rows have finished; "
                      "effects the finished rows cannot separate are not estimable, and the aliases are those of "
                      "the whole design", stacklevel=2)
    # As a twin pair's sides do (``diagnostics.ablation.effect``), the fit keeps the runs that learnt and names
    # those left out; with none learnt it keeps all, and every effect says "not learnt". Least squares needs no
    # balance, so a design short of a row still fits; what the rest cannot separate is "not estimable".
    reasons = [unlearnt(sweep, [r], cause) for r in runs["run_id"]]
    learnt = np.array([not reason for reason in reasons], dtype=bool)
    left_out = tuple(reason for run_reasons in reasons for reason in run_reasons)
    if learnt.any():
        runs, levels = runs[learnt].reset_index(drop=True), levels[learnt]
    columns, names = _model(levels, design)
    run_ids = runs["run_id"].tolist()
    labels, probs = _probs(sweep, run_ids, cause)
    result = stats.fit_effects(columns, names, labels, probs, metric, n_boot=n_boot, level=level, seed=seed)
    return DesignFit(result, run_ids, levels, runs["task"].iloc[0], runs["split"].iloc[0], design,
                     unlearnt=() if learnt.any() else left_out, cause=cause or "",
                     excluded=left_out if learnt.any() else ())


def claim(metric: str, ci_low: float, ci_high: float, not_learnt: Sequence[str] = ()) -> str:
    """"higher" / "lower" when the interval excludes 0, "no clear difference" otherwise, "not estimable" without
    an interval (too few finished runs to separate the effect or to measure the noise), and "not learnt: ..." when
    the estimate rests on runs that did not learn."""
    if not_learnt:
        return f"not learnt: {len(not_learnt)} run(s), e.g. {not_learnt[0]}"
    if np.isnan(ci_low) or np.isnan(ci_high):
        return "not estimable"
    if not (ci_low > 0 or ci_high < 0):
        return "no clear difference"
    return "higher" if ci_low > 0 else "lower"


def _rows(result: stats.LinearEffects, design_fit: DesignFit, metric: str, cause: str, level: float) -> list[dict]:
    rows = []
    for _, r in result.table().iterrows():
        kind = "interaction" if ":" in r.term else "main"
        rows.append({"factor": r.term, "kind": kind, "metric": metric, "cause": cause, "effect": r.effect,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "level": level, "se": r.se, "df": r.df,
                     "p_value": r.p_value, "n_runs": r.n_runs, "n_pairs": r.n_pairs,
                     # the design's aliases, then what these runs cannot separate (a partial design, a corner set)
                     "aliases": ", ".join(dict.fromkeys([*design_fit.aliases(r.term),
                                                         *result.confounded.get(r.term, ())])),
                     "note": "; ".join(filter(None, [NESTED_NOTE.get(r.term, ""), _left_out(design_fit)])),
                     "claim": claim(metric, r.ci_low, r.ci_high, design_fit.unlearnt),
                     "task": design_fit.task, "split": design_fit.split})
    return rows


def _left_out(design_fit: DesignFit) -> str:
    if not design_fit.excluded:
        return ""
    n = len(design_fit.excluded)
    return f"fitted without {n} run{'s' if n > 1 else ''} that did not learn: {'; '.join(design_fit.excluded)}"


def effects(sweep_dir: Sweep | str, metric: str = "aupr", task: Optional[str] = None, split: Optional[str] = None,
            causes: bool = True, n_boot: int = 500, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every factor's effect (high - low) on ``metric`` from the designed runs of a sweep.

    Parameters
    ----------
    sweep_dir : a sweep directory (or a loaded ``diagnostics.io.Sweep``).
    metric : a key of ``cbat.stats.METRICS`` (ranking metrics "aupr"/"auroc" for claims).
    task, split : restrict to one (default: the task/split with most designed runs).
    causes : also fit each cause of ``record["metrics"]["test"]["per_cause"]`` (record values, so the
        interval holds the run-to-run variance only; ``n_pairs`` is that cause's test pairs); a cause that some
        run cannot score (one class of it in that run's test split) is not fitted, since the design's balance
        needs every run.
    n_boot, level, seed : test-pair bootstrap replicates, interval level and RNG seed.

    Returns
    -------
    DataFrame
        Columns ``EFFECT_COLUMNS``: factor (or "a:b" interaction), kind, metric, cause ("all" pooled), effect,
        ci_low, ci_high, level (of the interval), se, df, p_value, n_runs, n_pairs, aliases (terms the design,
        or the finished runs, confound with it: an effect also carries those of the non-estimable terms named),
        note (nested factor; runs left out because they did not learn), claim ("higher" / "lower" / "no clear
        difference" / "not learnt: ..." when no run learnt), task, split.
    """
    sweep = load_sweep(sweep_dir)
    pooled = fit(sweep, metric, task, split, n_boot, level, seed)
    rows = _rows(pooled.fit, pooled, metric, "all", level)
    if causes:
        columns, names = _model(pooled.levels, pooled.design)
        per_cause = [((sweep.records[r]["metrics"].get("test") or {}).get("per_cause") or {})
                     for r in pooled.run_ids]
        for cause in sorted(set().union(*per_cause)):
            # a run whose test split holds one class of a cause has no score for it (None in the record)
            scores = np.array([np.nan if (value := (pc.get(cause) or {}).get(metric)) is None else float(value)
                               for pc in per_cause])
            if np.isnan(scores).any():  # the design's balance needs every run; such a cause is not fitted
                continue
            result = stats.fit_effects(columns, names, scores=scores, level=level)
            n_pairs = min(int(pc[cause].get("n", 0)) for pc in per_cause)  # the cause's test pairs (same split)
            rows += [{**row, "n_pairs": n_pairs} for row in _rows(result, pooled, metric, cause, level)]
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def designed_effect(design_fit: DesignFit, factors: Sequence[str], metric: str) -> Effect:
    """The effect of switching ``factors`` together from the baseline's values to cbat_v2's (the sum of their
    main effects), as an ``Effect`` that reads like a twin pair's."""
    c = design_fit.fit.contrast({f: 1.0 for f in factors})
    label = "+".join(factors)
    aliases = tuple(dict.fromkeys(a for f in factors for a in design_fit.aliases(f)))
    return Effect(f"{label} on", f"{label} off", metric, design_fit.task, design_fit.split, c["estimate"],
                  c["ci_low"], c["ci_high"], np.nan, np.nan, design_fit.fit.n_runs, design_fit.fit.n_pairs,
                  tuple(design_fit.run_ids), se=c["se"], df=design_fit.fit.df, p_value=c["p_value"],
                  source="design", aliases=aliases, unlearnt=design_fit.unlearnt, excluded=design_fit.excluded,
                  cause=design_fit.cause)


def forest_figure(table: pd.DataFrame) -> go.Figure:
    """Effects of ``effects`` (pooled rows) with their intervals; hover names the aliases."""
    rows = table[table["cause"] == "all"]
    metric = rows["metric"].iloc[0] if len(rows) else "aupr"
    level = rows["level"].iloc[0] if len(rows) else 0.95
    flags = rows["claim"].astype(str).str.startswith("not learnt").tolist()
    fig = go.Figure(go.Scatter(
        x=rows["effect"], y=mark_not_learnt(rows["factor"], flags), mode="markers",
        text=rows["aliases"].replace("", "none"),
        hovertemplate="%{y}: %{x:+.3f}<br>aliases: %{text}<extra></extra>",
        error_x={"type": "data", "symmetric": False, "array": rows["ci_high"] - rows["effect"],
                 "arrayminus": rows["effect"] - rows["ci_low"]}))
    fig.add_vline(x=0, line_dash="dot")
    label = LABELS.get(metric, metric)
    return styled(fig, not_learnt_title(f"Designed main effects on {label} (cbat_v2 value − baseline value, "
                                        f"{level:.0%} CI)", flags), f"Δ{label}", "")


def decomposition(sweep_dir: Sweep | str, table: pd.DataFrame) -> pd.DataFrame:
    """cbat_v2 − baseline split into the designed main effects plus "interactions and residual".

    The total is observed: mean metric of the sweep's runs with every factor high minus those with every
    factor low (same task and split as the table, and the same other config fields as the design's rows,
    e.g. ``cbat_v2`` and ``baseline`` variants of the same size). Without both, the total is the fitted model's
    prediction, the sum of main effects ("cbat_v2 − baseline (predicted)"), and the residual bar is left out; with
    a factor not estimable as well (runs that cannot separate it), there is no total to show.

    A nested factor (``REQUIRES``) moves by half a unit of its coding from baseline to cbat_v2 (its low level
    is coded 0 where what it needs is off), so its bar is half its effect, as in the fitted model.

    Returns
    -------
    DataFrame
        step, kind ("factor", "interactions", "total"), value, metric, not_learnt (the fit rests on runs that did
        not learn: the bars are no effects).
    """
    sweep = load_sweep(sweep_dir)
    main = table[(table["cause"] == "all") & (table["kind"] == "main")]
    n = len(ablations.FACTORS)
    weight = dict(zip(ablations.FACTORS, (ablations.coded(np.ones((1, n))) - ablations.coded(-np.ones((1, n))))[0]))
    at_chance = main["claim"].astype(str).str.startswith("not learnt").any()  # the fit rests on runs at chance
    rows = [{"step": r.factor, "kind": "factor", "value": weight[r.factor] * r.effect} for r in main.itertuples()]
    metric, task, split = main["metric"].iloc[0], main["task"].iloc[0], main["split"].iloc[0]
    runs = sweep.ok(task=task, split=split)
    d = _design(sweep)
    design_rows = runs[runs["variant"].isin(d.names)] if d is not None else runs.iloc[0:0]
    same = _other_fields(sweep.config(design_rows["run_id"].iloc[0])) if len(design_rows) else None
    corner = {"high": [], "low": []}
    for run in runs.itertuples():
        levels = ablations.levels_of(sweep.config(run.run_id))
        if same is not None and _other_fields(sweep.config(run.run_id)) != same:
            continue
        if levels and len(set(levels.values())) == 1:
            corner["high" if next(iter(levels.values())) > 0 else "low"].append(run.run_id)
    explained = float(np.nansum([row["value"] for row in rows]))  # a factor not estimable adds nothing
    if corner["high"] and corner["low"]:
        scores = {side: np.nanmean([getattr(r, metric) for r in runs.itertuples() if r.run_id in ids])
                  for side, ids in corner.items()}
        total = float(scores["high"] - scores["low"])
        rows.append({"step": "interactions and residual", "kind": "interactions", "value": total - explained})
        rows.append({"step": "cbat_v2 − baseline", "kind": "total", "value": total})
    elif not any(np.isnan(row["value"]) for row in rows):  # the fitted model's prediction, every factor in it
        rows.append({"step": "cbat_v2 − baseline (predicted)", "kind": "total", "value": explained})
    return pd.DataFrame(rows, columns=["step", "kind", "value"]).assign(metric=metric, not_learnt=bool(at_chance))


def _other_fields(config: dict) -> dict:
    """A config without its name and the fields of the factors."""
    factor_fields = {f for fields in ablations.FACTORS.values() for f in fields}
    return {k: v for k, v in config.items() if k not in factor_fields and k != "name"}


def decomposition_figure(steps: pd.DataFrame, metric: Optional[str] = None) -> go.Figure:
    """Waterfall of ``decomposition``: one bar per main effect, the interactions and residual, the total, in the
    steps' metric (``metric`` overrides it)."""
    metric = metric or (steps["metric"].iloc[0] if "metric" in steps and len(steps) else "aupr")
    measure = steps["kind"].map({"factor": "relative", "interactions": "relative", "total": "total"})
    fig = go.Figure(go.Waterfall(x=steps["step"], y=np.where(measure == "total", 0.0, steps["value"]),
                                 measure=measure, connector={"line": {"dash": "dot"}}))
    label = LABELS.get(metric, metric)
    flags = steps["not_learnt"].tolist() if "not_learnt" in steps else []
    mark_steps_not_learnt(fig, steps["step"], flags)
    rest = " + interactions and residual" if (steps["kind"] == "interactions").any() else \
        " (predicted: no cbat_v2 and baseline runs to observe the rest)"
    return styled(fig, not_learnt_title(f"cbat_v2 − baseline in {label}: designed main effects{rest}", flags), "",
                  f"Δ{label}")

"""A verdict per hypothesis of the log (DESIGN section 7): "supported", "not supported", "inconclusive" or
"not learnt", with the numbers as fields, the figures and the run ids behind it.

Each hypothesis is one declaration (``Hypothesis``: id, claim, the factors of ``cbat.ablations.FACTORS`` it
contrasts, the config predicates of its two sides, the probe task and planted cause where it should show,
the deciding metric, the mechanism statistic and the rule). One judge (``judge``) reads a twin pair or a
designed sweep alike:

- *evidence*: in a sweep with a design (``sweep.json`` "design") whose factor corners match the two sides,
  the designed effect (``diagnostics.design``); otherwise a twin pair -- two variants whose configs differ only
  in the hypothesis' fields -- on the preferred task, with >= ``min_seeds`` learnt runs on each side. Both come
  as an ``Effect`` with the same interval method (``cbat.stats.fit_effects``).
- *tests*: each claim gets two one-sided t tests on its effect (the effect's own standard error and degrees
  of freedom): *for* it (the effect lies in the claimed direction) and *against* it (the claimed effect is
  smaller than ``equivalence_margin``, TOST-style; for "no_gain" the two swap: a gain below the margin is for
  the claim, a gain above 0 against it). Their nulls are disjoint, so at most one per claim is true.
- *multiplicity*: all these p values of one ``assess`` call are adjusted together (Holm by default, dividing
  by at most the number of claims, ``cbat.stats.adjust(max_true=...)``); raw and adjusted values are in the
  table.
- *rule*: "effect" -- the adjusted effect's sign against the claimed sign, then the mechanism statistic may
  veto a "supported"; "no_gain" -- an equivalence claim (no gain beyond a margin); "statistic" -- the
  statistic decides, falling back to the effect where it cannot.
- a verdict rests on a ranking metric (AUPR/AUROC), a calibration quantity (drift) or a mechanism
  statistic; threshold metrics (recall, precision, F1 at 0.5) are shown as colour only; an effect scored on
  one planted cause's pairs is decided on AUROC (``CAUSE_METRIC``), with the declared metric beside it;
- a verdict resting on an effect from a run whose record says it did not learn is "not learnt" with the
  reason (a statistic of training dynamics that decides on its own, V1c's saturation or H6's loss shares,
  needs no learnt model).

Adding a hypothesis is one ``Hypothesis`` in ``HYPOTHESES`` (or passed to ``assess(declarations=...)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats as scipy_stats

from cbat import ablations, stats
from cbat.sweep import key_changes
from cbat.data.tasks import CAUSES, NO_CAUSE
from diagnostics import anchors, attention, calibration, design, gates, gradients, losses
from diagnostics.ablation import Effect, effect, effects_frame, forest_figure, unlearnt, waterfall, waterfall_figure
from diagnostics.io import Sweep, load_sweep

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_LEARNT = "supported", "not supported", "inconclusive", "not learnt"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_LEARNT)
RULES = ("effect", "no_gain", "statistic")
# The ranking metric that decides an effect scored on one planted cause's pairs. Their positive share is 0.6-0.8
# and differs by cause and split (the chromosome split draws them), so a chance ranker already scores that much
# AUPR and the room above it shrinks; AUROC holds a chance ranker at 0.5 whatever the share. The declared metric
# (AUPR) is then shown beside it.
CAUSE_METRIC = "auroc"
COLUMNS = ["id", "claim", "verdict", "tested", "evidence", "task", "run_ids", "cause", "source", "metric", "effect",
           "ci_low", "ci_high", "n", "p_value", "p_adjusted", "p_against", "statistic"]
# Reasons a hypothesis could not be judged on the sweep at all: its verdict is then "not tested", not a draw.
UNTESTED_REASONS = ("the sweep lacks", "the design leaves no residual")
SOFT = ("softmax", "temp_softmax")
AUX_WEIGHTS = ("sparsity_loss_weight", "immax_weight", "speculation_weight")


# --- declarations ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hypothesis:
    """One hypothesis as data.

    Attributes
    ----------
    id, claim : as in the log.
    factors : factors of ``cbat.ablations.FACTORS`` whose fields a twin pair may differ in.
    treated, untreated : config predicates of the mechanism's side and its reference.
    task : the probe task preferred for a twin pair ("" = any).
    cause : the planted cause (mixture task) this hypothesis should find, or "any".
    metric : the deciding metric (a ranking metric, or "drift"); never a threshold metric.
    expect : sign of ``metric(treated) - metric(untreated)`` the claim predicts.
    rule : one of ``RULES``.
    statistic : key of ``STATISTICS``, the mechanism statistic that explains (or vetoes) the effect.
    veto : the verdict when the statistic contradicts: "inconclusive" softens a "supported" only,
        "not supported" overrides any verdict.
    colour : metrics shown beside the deciding one, never deciding (threshold metrics).
    variants : a fixed (treated, reference) pair of variant names instead of a search (settings may rename).
    extra_fields : config fields outside ``factors`` a twin pair may also differ in (e.g. ``topk``).
    design_factors : factors whose designed main effects (summed) are the designed evidence; default
        ``factors``.
    needs : what the sweep must hold, for the message when it does not.
    """

    id: str
    claim: str
    factors: tuple[str, ...]
    treated: Callable[[dict], bool]
    untreated: Callable[[dict], bool]
    needs: str
    task: str = ""
    cause: str = "any"
    metric: str = "aupr"
    expect: int = -1
    rule: str = "effect"
    statistic: Optional[str] = None
    veto: str = INCONCLUSIVE
    colour: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    extra_fields: tuple[str, ...] = ()
    design_factors: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.factors + (self.design_factors or ())) - set(ablations.FACTORS))
        if unknown:
            raise ValueError(f"hypothesis {self.id}: factors {unknown} are not in cbat.ablations.FACTORS "
                             f"{list(ablations.FACTORS)}")
        if self.rule not in RULES:
            raise ValueError(f"hypothesis {self.id}: rule {self.rule!r}; expected one of {list(RULES)}")
        if self.metric in stats.THRESHOLDED:
            raise ValueError(f"hypothesis {self.id}: threshold metric {self.metric!r} cannot decide a verdict; "
                             f"use a ranking metric {list(stats.RANKING)} and put it in 'colour'")
        if self.statistic is not None and self.statistic not in STATISTICS:
            raise ValueError(f"hypothesis {self.id}: statistic {self.statistic!r}; expected one of "
                             f"{sorted(STATISTICS)}")
        if self.cause != "any" and self.cause not in CAUSES:  # a misspelt cause would fall back to every pair
            raise ValueError(f"hypothesis {self.id}: cause {self.cause!r}; expected 'any' or a planted cause "
                             f"{list(CAUSES)}")
        if isinstance(self.expect, bool) or self.expect not in (-1, 1):
            raise ValueError(f"hypothesis {self.id}: expect {self.expect!r}; expected -1 (the treatment lowers the "
                             "metric) or 1 (raises it)")

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for factor in self.factors for f in ablations.FACTORS[factor]) + self.extra_fields


@dataclass(frozen=True)
class Statistic:
    """A mechanism statistic's numbers (``values``), the text rendered from them, and what it says:
    ``holds`` (the mechanism is there: True/False, None = not measured) or a ``verdict`` of its own."""

    name: str
    values: dict
    template: str
    holds: Optional[bool] = None
    verdict: Optional[str] = None
    figures: dict = field(default_factory=dict, compare=False)

    @property
    def text(self) -> str:
        return self.template.format(**self.values)


@dataclass
class Verdict:
    """One judged hypothesis: the verdict, its numbers as fields, the figures and the runs."""

    id: str
    claim: str
    verdict: str
    effect: Optional[Effect] = None
    p_adjusted: float = np.nan  # adjusted one-sided p of the test for the claim
    p_against: float = np.nan  # adjusted one-sided p of the test against it (see the module docstring)
    p_value: float = np.nan  # raw one-sided p of the test for the claim
    margin: float = np.nan
    statistic: Optional[Statistic] = None
    colour: list[Effect] = field(default_factory=list)
    reason: str = ""
    task: str = ""
    cause: str = "any"
    run_ids: list[str] = field(default_factory=list)
    figures: dict[str, go.Figure] = field(default_factory=dict)

    @property
    def tested(self) -> bool:
        """False when the sweep could not judge the hypothesis at all (it lacks the variants it needs)."""
        return not self.reason.startswith(UNTESTED_REASONS)

    @property
    def evidence(self) -> str:
        """The text, rendered from the fields."""
        parts = [self.reason] if self.reason else []
        if self.effect is not None and np.isnan(self.p_value):  # no test was run: say why, not "p nan"
            why = "it rests on runs that did not learn" if self.effect.unlearnt else \
                "no interval: too few runs to measure the noise"
            parts.append(f"{self.effect.text()}; no test ({why})")
        elif self.effect is not None:
            parts.append(f"{self.effect.text()}; for the claim: one-sided p {self.p_value:.3g}, adjusted "
                         f"{self.p_adjusted:.3g}; against it (margin {self.margin:g}): adjusted p {self.p_against:.3g}")
        parts += [f"{c.text()} ({'threshold metric, ' if c.metric in stats.THRESHOLDED else ''}colour only)"
                  for c in self.colour]
        if self.statistic is not None and self.statistic.text:
            parts.append(self.statistic.text)
        if self.effect is not None and self.effect.unlearnt:
            parts.append("not learnt: " + "; ".join(self.effect.unlearnt))
        return "; ".join(parts)

    def row(self) -> dict:
        e = self.effect
        return {"id": self.id, "claim": self.claim, "verdict": self.verdict, "tested": self.tested,
                "evidence": self.evidence,
                "task": self.task, "run_ids": self.run_ids, "cause": self.cause,
                "source": e.source if e else "", "metric": e.metric if e else "",
                "effect": e.mean_diff if e else np.nan, "ci_low": e.ci_low if e else np.nan,
                "ci_high": e.ci_high if e else np.nan, "n": e.n_seeds if e else 0,
                "p_value": self.p_value, "p_adjusted": self.p_adjusted, "p_against": self.p_against,
                "statistic": dict(self.statistic.values) if self.statistic else {}}


@dataclass
class Assessment:
    """``table`` (columns ``COLUMNS``), ``figures`` keyed "<id>.<what>", and the ``verdicts`` themselves;
    unpacks as ``table, figures``."""

    table: pd.DataFrame
    figures: dict[str, go.Figure]
    verdicts: list[Verdict] = field(default_factory=list)

    def __iter__(self):
        return iter((self.table, self.figures))


# --- finding evidence -------------------------------------------------------------------------------
def contrasts(sweep: Sweep, fields: tuple[str, ...], treated: Callable[[dict], bool],
              untreated: Callable[[dict], bool], same_training: bool = True) -> list[tuple[str, str]]:
    """Variant pairs (treatment, reference) whose configs differ only in ``fields`` (and the name) and that
    train alike (``same_training``: equal training settings, else the settings would share the effect)."""
    configs = {v: sweep.variant_config(v) for v in sweep.ok()["variant"].unique()}
    ignore = set(fields) | {"name"}
    pairs = []
    for a, ca in configs.items():
        for b, cb in configs.items():
            if a != b and treated(ca) and untreated(cb) and \
                    all(ca.get(k) == cb.get(k) for k in set(ca) | set(cb) if k not in ignore) and \
                    (not same_training or not settings_difference(sweep, a, b)):
                pairs.append((a, b))
    return pairs


def settings_difference(sweep: Sweep, a: str, b: str) -> str:
    """The training settings in which variants ``a`` and ``b`` differ ("lr 0.0001 vs 0.003, ..."), else ""."""
    return ", ".join(key_changes(sweep.variant_settings(a), sweep.variant_settings(b)))


def _pick(sweep: Sweep, pairs: list[tuple[str, str]], task: str) -> tuple[Optional[tuple[str, str]], str]:
    """The contrast to judge: on the preferred task when the sweep has it, then most paired seeds."""
    def score(pair):
        treat, ref = sweep.ok(pair[0]), sweep.ok(pair[1])
        on_task = bool(task) and task in set(treat["task"]) and task in set(ref["task"])
        return on_task, len(set(treat["seed"]) & set(ref["seed"]))
    if not pairs:
        return None, ""
    best = max(pairs, key=score)
    return best, task if score(best)[0] else ""


def _designable(h: Hypothesis, d: Optional[ablations.Design]) -> bool:
    """Whether the design's low and high corners of the hypothesis' factors are its two sides."""
    if d is None:
        return False
    chosen = list(h.design_factors or h.factors)
    if not chosen:
        return False
    base, full = ablations.preset(ablations.BASELINE), ablations.preset(ablations.FULL)
    needs = [n for f in chosen for n in ablations.REQUIRES.get(f, ())]
    high = ablations._switch(base, full, chosen + needs, "high").to_dict()
    low = ablations._switch(base, full, needs, "low").to_dict()
    return h.treated(high) and h.untreated(low)


@dataclass
class Context:
    """What a mechanism statistic may read: the runs of each side and their labels in the text."""

    sweep: Sweep
    probe: "_Probe"
    settings: dict
    treated: list[str]
    reference: list[str]
    labels: tuple[str, str]
    effect: Optional[Effect] = None


# --- probes on checkpoints (forward/backward on a test batch) ----------------------------------------
class _Probe:
    """A small test batch of the sweep's own data and the runs' checkpoints; None where unavailable."""

    def __init__(self, sweep: Sweep, batch: int, enabled: bool) -> None:
        self.sweep, self.batch, self.reason = sweep, batch, "probes switched off"
        self.dataset, self._splits = None, {}
        if not enabled:
            return
        data = (sweep.spec.get("spec") or {}).get("data")
        if not data:
            self.reason = "sweep.json has no data spec to rebuild the test pairs"
            return
        try:
            from cbat.sweep import sweep_data
            self.dataset = sweep_data(sweep.path)
        except Exception as err:  # noqa: BLE001 - a probe is extra evidence; its absence is reported
            self.reason = f"data could not be rebuilt ({type(err).__name__}: {err})"

    def batch_of(self, run_id: str, positives: bool = True):
        """Test pairs of the run's split (positives first) as one-hot tensors, with their indices."""
        preds = self.sweep.predictions(run_id)
        index = preds.sort_values("label", ascending=not positives)["pair_index"].to_numpy()[: self.batch]
        return index, self.dataset.onehot(index)

    def model(self, run_id: str):
        from cbat.train import load_checkpoint
        path = self.sweep.file(run_id, "checkpoint")
        if path is None:
            raise FileNotFoundError(f"{run_id}: no checkpoint")
        return load_checkpoint(path)[0]


# --- mechanism statistics -----------------------------------------------------------------------------
def _traces(ctx: Context, run_ids: Sequence[str]) -> pd.DataFrame:
    """Stacked traces of the runs that have one (empty when none has a trace row)."""
    traces = ctx.sweep.traces([r for r in run_ids if ctx.sweep.file(r, "trace") is not None])
    return traces if "statistic" in traces.columns else traces.iloc[0:0]


def _mean_by_side(ctx: Context, table: pd.DataFrame, column: str) -> tuple[float, float]:
    """Mean of ``column`` over the treated runs and over the reference runs (NaN where absent)."""
    if table.empty or column not in table.columns:
        return np.nan, np.nan
    by_run = table.groupby("run_id")[column].mean()
    return (float(by_run.reindex(ctx.treated).mean()), float(by_run.reindex(ctx.reference).mean()))


def _sides(ctx: Context) -> dict:
    return {"treated": ctx.labels[0], "reference": ctx.labels[1]}


def gradient_cut(ctx: Context) -> Statistic:
    """V1a: gradient reaching keys outside the top-k, on a trained checkpoint of each side (probe)."""
    if ctx.probe.dataset is None:
        return Statistic("gradient_cut", {"reason": ctx.probe.reason}, "gradient probe skipped: {reason}")
    topk = ctx.sweep.config(ctx.treated[0])["topk"]
    tables, values = [], {**_sides(ctx), "topk": topk}
    for side, run_id in (("treated", ctx.treated[0]), ("reference", ctx.reference[0])):
        _, (enh, pro) = ctx.probe.batch_of(run_id)
        table = attention.unselected_gradient(ctx.probe.model(run_id), enh, pro, topk=topk)
        tables.append(table.assign(variant=ctx.labels[0 if side == "treated" else 1], run_id=run_id))
        out = table[~table["selected"]]
        values.update({f"{side}_mean": float(out["mean_grad"].mean()),
                       f"{side}_zero": float(out["frac_zero_grad"].mean()), f"{side}_slots": int(out["n"].sum())})
    return Statistic("gradient_cut", values,
                     "gradient to keys outside the top-{topk}: {treated} mean {treated_mean:.2e} (exactly zero in "
                     "{treated_zero:.0%} of {treated_slots} key slots), {reference} mean {reference_mean:.2e} "
                     "(zero in {reference_zero:.0%})",
                     holds=values["treated_zero"] >= 1.0 and values["reference_zero"] < 1.0,
                     figures={"gradient": attention.gradient_figure(pd.concat(tables, ignore_index=True))})


def grid_distance(ctx: Context) -> Statistic:
    """V1b: how far apart in 1-D the 2-D grid's vertical neighbours are."""
    if ctx.probe.dataset is None:
        return Statistic("grid_distance", {"reason": ctx.probe.reason}, "grid probe skipped: {reason}")
    from cbat.layers.local import grid_shape
    cfg = ctx.sweep.config(ctx.treated[0])
    tokens = ctx.probe.dataset.enhancer.shape[1] // cfg["stem_pool"]
    width = grid_shape(tokens)[1]
    return Statistic("grid_distance", {"tokens": tokens, "width": width, "bp": width * cfg["stem_pool"]},
                     "on the {tokens}-token enhancer grid, vertical neighbours are {width} tokens ({bp} bp) apart "
                     "in 1-D")


def late_saturation(ctx: Context) -> Statistic:
    """V1c: share of gate values < 0.05 or > 0.95 late in training, per seed of the treated (sigmoid) runs."""
    s, traces = ctx.settings, _traces(ctx, ctx.treated)
    table = gates.saturation(traces) if not traces.empty else pd.DataFrame()
    late = table.groupby("run_id")["late"].mean() if not table.empty else pd.Series(dtype=float)
    summary = {k: float(getattr(late, f)()) if late.size else np.nan
               for k, f in (("late", "mean"), ("late_min", "min"), ("late_max", "max"))}
    values = {"treated": ctx.labels[0], "n_seeds": int(late.size), "min_seeds": s["min_seeds"], **summary,
              "threshold": s["saturation_threshold"]}
    if late.size < s["min_seeds"]:
        return Statistic("late_saturation", values, "gate traces of {n_seeds} run(s), need {min_seeds}",
                         verdict=INCONCLUSIVE)
    verdict = (SUPPORTED if values["late_min"] >= values["threshold"]
               else NOT_SUPPORTED if values["late_max"] < values["threshold"] else INCONCLUSIVE)
    return Statistic("late_saturation", values,
                     "{treated}: late saturation {late:.2f} (runs {late_min:.2f}-{late_max:.2f}; threshold "
                     "{threshold:.2f} of values <0.05 or >0.95)", verdict=verdict,
                     figures={"saturation": gates.saturation_figure(traces),
                              "histogram": gates.histogram_figure(gates.histogram(traces))})


def reliability(ctx: Context) -> Statistic:
    """V1d: reliability curve and drift per run (figures; the drift itself is the deciding metric)."""
    runs = ctx.sweep.runs[ctx.sweep.runs["run_id"].isin(ctx.treated + ctx.reference)]
    drift = calibration.drift_table(runs)
    preds = ctx.sweep.all_predictions(ctx.treated + ctx.reference)
    up = drift.set_index("run_id")["drift"]
    return Statistic("reliability", {"treated_drift": float(up.reindex(ctx.treated).mean()),
                                     "reference_drift": float(up.reindex(ctx.reference).mean()), **_sides(ctx)},
                     "drift (mean prob − base rate): {treated} {treated_drift:+.3f}, "
                     "{reference} {reference_drift:+.3f}",
                     figures={"reliability": calibration.reliability_figure(calibration.reliability(preds)),
                              "drift": calibration.drift_figure(drift)})


def far_mass(ctx: Context) -> Statistic:
    """H1: the E<-P attention mass the global model puts beyond the window (probe), and the decisive distance."""
    cfg = ctx.sweep.config(ctx.treated[0])
    window_bp = cfg["window_size"] * cfg["stem_pool"]
    if ctx.probe.dataset is None:
        return Statistic("far_mass", {"window_bp": window_bp, "reason": ctx.probe.reason},
                         "window {window_bp} bp; distance probe skipped: {reason}")
    profiles, index = [], None
    for label, run_id in zip(ctx.labels, (ctx.treated[0], ctx.reference[0])):
        index, (enh, pro) = ctx.probe.batch_of(run_id)
        profile = attention.distance_profile(ctx.probe.model(run_id), enh, pro, names=("*cross_ep.attn.pattern",),
                                             bin_bp=ctx.settings["bin_bp"])
        profiles.append(profile.assign(variant=label))
    profile = pd.concat(profiles, ignore_index=True)
    glob = profile[profile["variant"] == ctx.labels[1]]
    beyond = float(glob.loc[glob["distance_bp"] >= window_bp, "mass"].sum() / max(glob["mass"].sum(), 1e-12))
    values = {"window_bp": window_bp, "beyond": beyond, "min_far_mass": ctx.settings["min_far_mass"]}
    template = "window {window_bp} bp; the global model puts {beyond:.0%} of its E<-P attention beyond the window"
    decisive = None
    if ctx.probe.dataset.truth is not None:
        decisive = float(attention.decisive_distance(ctx.probe.dataset.truth).reindex(index).median())
        if not np.isnan(decisive):
            values["decisive_bp"] = decisive
            template += "; median decisive distance {decisive_bp:.0f} bp"
    return Statistic("far_mass", values, template, holds=beyond >= values["min_far_mass"],
                     figures={"distance": attention.distance_figure(profile, window_bp, values.get("decisive_bp"))})


def effective_tokens(ctx: Context) -> Statistic:
    """H2: effective tokens per query of the cross attention, treated vs reference (traces)."""
    traces = _traces(ctx, ctx.treated + ctx.reference)
    table = attention.attention_table(traces) if not traces.empty else pd.DataFrame()
    cross = table[table["site"].isin(["cross_ep", "cross_pe"])] if not table.empty else table
    treated, reference = _mean_by_side(ctx, cross, "effective_tokens")
    if np.isnan(treated) or np.isnan(reference):
        return Statistic("effective_tokens", {}, "no attention traces for effective tokens")
    return Statistic("effective_tokens", {"treated_tokens": treated, "reference_tokens": reference, **_sides(ctx)},
                     "effective tokens per query {treated} {treated_tokens:.1f} vs {reference} {reference_tokens:.1f}",
                     holds=treated < reference, figures={"sparsity": attention.sparsity_figure(cross)})


def depth_trouble(ctx: Context) -> Statistic:
    """H3: gradient decay from the last block to the first, and early gate noise, per seed of the treated runs.

    Verdict: "not supported" when the treated side is both deep and gated, every treated run learnt its task and
    no seed (of >= ``min_seeds``) shows either trouble (the mechanism the claim names is absent); otherwise none,
    so the judge reads the AUPR cost (effect). A run that did not learn may be the trouble itself, and on labels
    independent of the sequences nothing is optimised, so the statistic then says nothing of its own.
    """
    traces = _traces(ctx, ctx.treated + ctx.reference)
    if traces.empty:
        return Statistic("depth_trouble", {}, "no traces for gradient decay or gate noise")
    s, cfg = ctx.settings, ctx.sweep.config(ctx.treated[0])
    decay = gradients.block_decay(traces).groupby("run_id")["first_to_last"].mean().reindex(ctx.treated)
    noise = gates.early_noise(traces).groupby("run_id")["early_sample_var"].mean().reindex(ctx.treated)
    troubled = (decay < s["decay_threshold"]) | (noise > s["gate_noise_threshold"])  # NaN (not measured): False
    measured = decay.notna() & noise.notna()
    values = {"decay": float(decay.mean()), "decay_min": float(decay.min()), "noise": float(noise.mean()),
              "noise_max": float(noise.max()), "troubled": int(troubled.sum()), "seeds": int(measured.sum()),
              "treated": ctx.labels[0], "n_blocks": cfg["n_blocks"]}
    deep_and_gated = cfg["n_blocks"] > 1 and cfg["gate"] != "none"
    verdict = (NOT_SUPPORTED if deep_and_gated and not unlearnt(ctx.sweep, ctx.treated)
               and values["seeds"] >= s["min_seeds"] and not troubled.any() else None)
    return Statistic("depth_trouble", values,
                     "{treated} ({n_blocks} blocks): gradient norm first/last block {decay:.2f} (lowest seed "
                     "{decay_min:.2f}), early gate noise (sample variance) {noise:.2e} (highest seed {noise_max:.2e}); "
                     "{troubled} of {seeds} runs troubled", holds=bool(troubled.any()), verdict=verdict,
                     figures={"depth": gradients.depth_figure(gradients.depth_profile(traces)),
                              "grad_norm": gradients.grad_norm_figure(traces)})


def attended_distance(ctx: Context) -> Statistic:
    """H4: mean attended distance, treated vs reference (traces)."""
    traces = _traces(ctx, ctx.treated + ctx.reference)
    table = attention.attention_table(traces) if not traces.empty else pd.DataFrame()
    treated, reference = _mean_by_side(ctx, table, "mean_distance_bp")
    if np.isnan(treated) or np.isnan(reference):
        return Statistic("attended_distance", {}, "no attention traces for the attended distance")
    return Statistic("attended_distance", {"treated_bp": treated, "reference_bp": reference, **_sides(ctx)},
                     "mean attended distance {treated} {treated_bp:.0f} bp vs {reference} {reference_bp:.0f} bp",
                     figures={"distance": attention.timeline_figure(traces, "mean_distance_bp")})


def anchor_usage(ctx: Context) -> Statistic:
    """H5: attention mass tokens put on the anchors relative to uniform, of the treated runs (traces)."""
    traces = _traces(ctx, ctx.treated)
    n_anchors = ctx.sweep.config(ctx.treated[0])["n_anchors"]
    table = anchors.anchor_table(traces, n_anchors) if not traces.empty else pd.DataFrame()
    usage = float(table["usage_ratio"].mean()) if "usage_ratio" in table else np.nan
    figures = {"usage": anchors.anchor_figure(table)} if not table.empty else {}
    # Unused = attention passes the anchors by (ratio < 1) or cannot be read; only >= 1 contradicts.
    return Statistic("anchor_usage", {"usage": usage, "treated": ctx.labels[0]},
                     "{treated}: anchor usage ratio {usage:.2f}", holds=not usage >= 1, figures=figures)


def loss_dominance(ctx: Context) -> Statistic:
    """H6: an auxiliary loss holding most of the objective early in every seed, with a gradient against BCE's.

    Verdict: "supported" when a dominant term also competes (cosine below ``competing_cosine`` in every
    seed); "not supported" when none dominates; otherwise none, so the judge reads the AUPR cost (effect).
    """
    s, traces = ctx.settings, _traces(ctx, ctx.treated)
    table = losses.shares(traces) if not traces.empty else pd.DataFrame()
    if not table.empty:
        table = table[~table["component"].isin([losses.MAIN, losses.TOTAL])]
    if table.empty or table["seed"].nunique() < s["min_seeds"]:
        return Statistic("loss_dominance", {"min_seeds": s["min_seeds"]},
                         "loss traces of fewer than {min_seeds} seeds", verdict=INCONCLUSIVE)
    table = table.assign(dominant=table["early_share"] >= s["share_threshold"],
                         conflict=table["grad_cosine"] < s["competing_cosine"])
    if ctx.effect is not None and ctx.effect.source == "design":  # each design row is its own variant with one
        table = table.assign(variant=ctx.labels[0])                # seed: the side's rows are the seeds
    per = table.groupby(["variant", "component"]).agg(
        share=("share", "mean"), early=("early_share", "mean"), cosine=("grad_cosine", "mean"),
        seeds=("seed", "nunique"), dominant=("dominant", "all"), any_dominant=("dominant", "any"),
        conflict=("conflict", "all")).reset_index()
    figures = {"shares": losses.share_figure(traces), "conflict": losses.conflict_figure(table)}
    dominant = per[per["dominant"] & (per["seeds"] >= s["min_seeds"])].sort_values("share")
    worst = (dominant if not dominant.empty else per.sort_values("share")).iloc[-1]
    values = {"variant": worst.variant, "component": worst.component, "share": float(worst.share),
              "early": float(worst.early), "cosine": float(worst.cosine), "seeds": int(worst.seeds),
              "share_threshold": s["share_threshold"], "competing_cosine": s["competing_cosine"],
              "dominant": not dominant.empty, "conflict": bool(worst.conflict)}
    template = ("{variant}/{component}: share {share:.2f} (first quarter of training {early:.2f}), cosine with "
                "BCE {cosine:+.2f} ({seeds} runs); dominant (>= {share_threshold} early in every run): {dominant}; "
                "competing (cosine < {competing_cosine} in every run): {conflict}")
    if dominant.empty:
        verdict = INCONCLUSIVE if per["any_dominant"].any() else NOT_SUPPORTED
    else:
        verdict = SUPPORTED if worst.conflict else None
    return Statistic("loss_dominance", values, template, holds=bool(values["dominant"] and values["conflict"]),
                     verdict=verdict, figures=figures)


STATISTICS: dict[str, Callable[[Context], Statistic]] = {
    "gradient_cut": gradient_cut, "grid_distance": grid_distance, "late_saturation": late_saturation,
    "reliability": reliability, "far_mass": far_mass, "effective_tokens": effective_tokens,
    "depth_trouble": depth_trouble, "attended_distance": attended_distance, "anchor_usage": anchor_usage,
    "loss_dominance": loss_dominance}
# Statistics that describe what a trained model does (where it attends, how it is calibrated): read off a model at
# chance they explain nothing, so a "not learnt" effect shows none. The others hold for any model of the
# architecture (the gradient top-k cuts, the 2-D grid's geometry) or read training dynamics (gates, losses, depth).
READS_A_LEARNT_MODEL = frozenset({"far_mass", "effective_tokens", "attended_distance", "anchor_usage", "reliability"})


def _strongly_sparse(c: dict) -> bool:
    return (c["sparsity"] in ("hard_topk", "sparsemax", "entmax15")
            or (c["sparsity"] == "temp_softmax" and c["temperature"] < 1) or c["sparsity_loss_weight"] > 0)


HYPOTHESES: dict[str, Hypothesis] = {h.id: h for h in [
    Hypothesis("V1a", "hard top-k cuts gradients and ranking", ("sparsity",),
               lambda c: c["sparsity"] == "hard_topk", lambda c: c["sparsity"] in SOFT,
               "a hard_topk variant and its soft (softmax/temp_softmax) twin", task="diffuse", cause="diffuse",
               colour=("auroc",), extra_fields=("topk",), statistic="gradient_cut", veto=NOT_SUPPORTED),
    Hypothesis("V1b", "2-D reshape invents neighbours", ("local",), lambda c: c["local"] == "reshape2d",
               lambda c: c["local"] in ("none", "ms_conv"), "a reshape2d variant and its 1-D twin (local none/ms_conv)",
               task="long_range", cause="long_range", statistic="grid_distance"),
    Hypothesis("V1c", "sigmoid gates saturate", ("gate",), lambda c: c["gate"] == "sigmoid",
               lambda c: c["gate"] != "sigmoid", "a variant with gate='sigmoid'", rule="statistic",
               statistic="late_saturation"),
    Hypothesis("V1d", "recall inflation = upward drift of predicted probabilities", (), lambda c: True,
               lambda c: True, "the cbat_v1 and baseline variants", metric="drift", expect=1,
               colour=("recall", "precision"), variants=("cbat_v1", ablations.BASELINE), statistic="reliability"),
    Hypothesis("H1", "locality (window) cuts long-range signal", ("window",), lambda c: c["window_size"] is not None,
               lambda c: c["window_size"] is None, "a variant with window_size set and its global (window_size=None) "
               "twin", task="long_range", cause="long_range", statistic="far_mass"),
    Hypothesis("H2", "forced sparsity drops diffuse weak signal", ("sparsity", "aux_sparsity"), _strongly_sparse,
               lambda c: c["sparsity"] == "softmax" and c["sparsity_loss_weight"] == 0,
               "a strongly sparse variant and its dense softmax twin", task="diffuse", cause="diffuse",
               colour=("recall",), extra_fields=("topk",), design_factors=("sparsity",),
               statistic="effective_tokens", veto=NOT_SUPPORTED),
    Hypothesis("H3", "deep gated stack is hard to optimise", ("depth", "gate"),
               lambda c: c["n_blocks"] > 1 or c["gate"] != "none", lambda c: c["n_blocks"] == 1 and c["gate"] == "none",
               "a deeper and/or gated variant and its shallow ungated twin", rule="statistic",
               statistic="depth_trouble"),
    Hypothesis("H4", "RoPE + position modulation conflict", ("pos_modulation",), lambda c: c["pos_modulation"],
               lambda c: not c["pos_modulation"], "a pos_modulation variant and its twin without it",
               task="long_range", cause="long_range", statistic="attended_distance"),
    Hypothesis("H5", "anchors are unused", ("anchors", "joint_attn"), lambda c: c["n_anchors"] > 0,
               lambda c: c["n_anchors"] == 0, "an anchor variant (n_anchors > 0) and its twin without anchors",
               rule="no_gain", design_factors=("anchors",), statistic="anchor_usage"),
    Hypothesis("H6", "auxiliary losses are overweighted", ("aux_sparsity", "aux_immax", "aux_speculation"),
               lambda c: any(c[w] > 0 for w in AUX_WEIGHTS), lambda c: all(c[w] == 0 for w in AUX_WEIGHTS),
               "a variant with an auxiliary loss weight > 0", rule="statistic", statistic="loss_dominance"),
]}
CLAIMS = {h.id: h.claim for h in HYPOTHESES.values()}


# --- the judge ------------------------------------------------------------------------------------------
@dataclass
class _Evidence:
    h: Hypothesis
    effect: Optional[Effect] = None
    colour: list = field(default_factory=list)
    ctx: Optional[Context] = None
    reason: str = ""
    task: str = ""


def _twin(sweep: Sweep, h: Hypothesis, s: dict) -> _Evidence:
    names = tuple(s["variant_names"].get(h.id, h.variants))
    if names:
        present = set(sweep.ok()["variant"])
        missing = [n for n in names if n not in present]
        if missing:
            return _Evidence(h, reason=f"the sweep lacks variant{'s' if len(missing) > 1 else ''} "
                                       + " and ".join(repr(m) for m in missing))
        differ = settings_difference(sweep, *names)
        if differ:
            return _Evidence(h, reason=f"{names[0]} and {names[1]} train with different settings ({differ}), "
                                       "which would share any effect")
        pair, task = names, ""
    else:
        pair, task = _pick(sweep, contrasts(sweep, h.fields, h.treated, h.untreated), h.task)
    if pair is None:
        if h.rule == "statistic":  # a statistic may stand on the treated runs alone (e.g. V1c, H6)
            treated = [v for v in sweep.ok()["variant"].unique() if h.treated(sweep.variant_config(v))]
            if treated:
                rows = sweep.ok()
                ids = rows[rows["variant"].isin(treated)]["run_id"].tolist()
                ctx = Context(sweep, None, s, ids, [], (", ".join(treated), ""))
                return _Evidence(h, ctx=ctx)
        confounded = contrasts(sweep, h.fields, h.treated, h.untreated, same_training=False)
        trained_apart = (f" trained alike: {confounded[0][0]} and {confounded[0][1]} also differ in training "
                         f"settings ({settings_difference(sweep, *confounded[0])})" if confounded else "")
        return _Evidence(h, reason=f"the sweep lacks {h.needs}{trained_apart}")
    cause, metric, shown = _scoring(sweep, h)
    eff = effect(sweep, pair[0], pair[1], metric, task=task or None, n_boot=s["n_boot"], seed=s["seed"],
                 cause=cause)
    if eff is None:
        return _Evidence(h, reason=f"{pair[0]} and {pair[1]} share no finished run", task=task)
    colour = [effect(sweep, pair[0], pair[1], m, task=eff.task, split=eff.split, n_boot=s["n_boot"], seed=s["seed"],
                     cause=cause) for m in shown]
    treated = [r for r in eff.run_ids if sweep.records[r]["variant"] == pair[0]]
    reference = [r for r in eff.run_ids if sweep.records[r]["variant"] == pair[1]]
    if h.rule == "statistic":  # training dynamics need no learnt model: read every finished treated run
        treated = sweep.ok(pair[0], task=eff.task or None, split=eff.split)["run_id"].tolist()
    ctx = Context(sweep, None, s, treated, reference, tuple(pair), eff)
    if eff.n_seeds < s["min_seeds"] and not eff.unlearnt:  # a side with no learnt run is "not learnt", not "few"
        return _Evidence(h, ctx=ctx, reason=f"only {eff.n_seeds} learnt run(s) on one side, need {s['min_seeds']}",
                         task=eff.task)
    return _Evidence(h, eff, colour, ctx, task=eff.task)


def _scoring(sweep: Sweep, h: Hypothesis) -> tuple[Optional[str], str, list[str]]:
    """What a hypothesis' effect is scored on, for a twin pair and a design alike: on data with planted causes,
    a hypothesis that names its cause is judged on that cause's pairs only, on AUROC (``CAUSE_METRIC``).
    Returns (cause or None, deciding metric, the other metrics shown beside it)."""
    cause = h.cause if h.cause in planted_causes(sweep) else None
    metric = CAUSE_METRIC if cause and h.metric in stats.RANKING else h.metric
    return cause, metric, [m for m in dict.fromkeys((*h.colour, h.metric)) if m != metric]


def planted_causes(sweep: Sweep) -> set[str]:
    """The planted causes the sweep's runs were scored on (per-cause test metrics; empty on user data)."""
    return {cause for record in sweep.records.values() if record["status"] == "ok"
            for cause in record["metrics"]["test"].get("per_cause", {})} - {NO_CAUSE}


def _designed(sweep: Sweep, h: Hypothesis, s: dict, fits: dict) -> _Evidence:
    chosen = tuple(h.design_factors or h.factors)
    cause, metric, shown = _scoring(sweep, h)

    def fitted_on(m: str) -> design.DesignFit:
        if (m, cause) not in fits:
            fits[m, cause] = design.fit(sweep, m, n_boot=s["n_boot"], seed=s["seed"], cause=cause)
        return fits[m, cause]

    fitted = fitted_on(metric)
    eff = design.designed_effect(fitted, chosen, metric)
    colour = [design.designed_effect(fitted_on(m), chosen, m) for m in shown]
    col = [list(ablations.FACTORS).index(f) for f in chosen]
    high = np.all(fitted.levels[:, col] > 0, axis=1)
    low = np.all(fitted.levels[:, col] < 0, axis=1)
    label = "+".join(chosen)
    ctx = Context(sweep, None, s, list(np.array(fitted.run_ids)[high]), list(np.array(fitted.run_ids)[low]),
                  (f"{label} on", f"{label} off"), eff)
    if fitted.fit.df < 1 and fitted.excluded:  # the rows that learnt are too few: not a gap in the sweep's design
        return _Evidence(h, ctx=ctx, reason=f"only {len(fitted.run_ids)} design run(s) learnt, too few to fit the "
                                            f"design ({len(fitted.excluded)} left out)", task=eff.task)
    if fitted.fit.df < 1:
        return _Evidence(h, ctx=ctx, reason="the design leaves no residual degrees of freedom (add seeds or a "
                                            "foldover)", task=eff.task)
    return _Evidence(h, eff, colour, ctx, task=eff.task)


def _gather(sweep: Sweep, h: Hypothesis, s: dict, fits: dict) -> _Evidence:
    if not h.variants and _designable(h, design.fittable_design(sweep)):
        return _designed(sweep, h, s, fits)
    return _twin(sweep, h, s)


def _one_sided(ev: _Evidence, margin: float) -> tuple[float, float]:
    """Raw one-sided p values (for the claim, against it) of the effect; NaN where there is no usable effect."""
    eff = ev.effect
    if eff is None or ev.reason or eff.unlearnt or not (eff.se > 0) or eff.df < 1:
        return np.nan, np.nan
    t, d = scipy_stats.t, eff.df
    if ev.h.rule == "no_gain":  # for: the gain is below the margin; against: there is a gain
        return float(t.cdf((eff.mean_diff - margin) / eff.se, d)), float(t.sf(eff.mean_diff / eff.se, d))
    signed = ev.h.expect * eff.mean_diff  # for: an effect in the claimed direction; against: below the margin
    return float(t.sf(signed / eff.se, d)), float(t.cdf((signed - margin) / eff.se, d))


def _decide(ev: _Evidence, statistic: Optional[Statistic], p_for: float, p_against: float, s: dict) -> str:
    h, eff = ev.h, ev.effect
    if h.rule == "statistic" and statistic is not None and statistic.verdict is not None:
        return statistic.verdict  # training dynamics (gate saturation, loss shares) need no learnt model
    if eff is not None and eff.unlearnt:
        return NOT_LEARNT
    if eff is None or ev.reason:
        return INCONCLUSIVE
    alpha = 1 - s["level"]
    claimed, refuted = p_for < alpha, p_against < alpha
    if h.rule == "no_gain":
        if refuted:
            return NOT_SUPPORTED
        return SUPPORTED if claimed and (statistic is None or statistic.holds is not False) else INCONCLUSIVE
    verdict = SUPPORTED if claimed else NOT_SUPPORTED if refuted else INCONCLUSIVE
    if h.rule == "statistic":
        return verdict
    if statistic is not None and statistic.holds is False:
        if h.veto == NOT_SUPPORTED or verdict == SUPPORTED:
            verdict = h.veto
    return verdict


def judge(sweep: Sweep | str, declarations: Sequence[Hypothesis], probes: bool = False, **settings) -> list[Verdict]:
    """Judge each declaration on one sweep (twin pair or designed effect), with multiplicity adjusted over
    them; ``settings`` as the keyword arguments of ``assess``."""
    sweep = load_sweep(sweep)
    s = {**DEFAULTS, **settings}
    probe = _Probe(sweep, s["probe_batch"], probes)
    fits: dict = {}
    gathered = [_gather(sweep, h, s, fits) for h in declarations]
    raw = [_one_sided(ev, s["equivalence_margin"]) for ev in gathered]
    p_for, p_against = [r[0] for r in raw], [r[1] for r in raw]
    claims = int(np.sum(~np.isnan(p_for)))
    # one family: every claim the table may make, for or against; at most one null per claim is true
    adjusted = stats.adjust(p_for + p_against, s["method"], max_true=claims or None)
    verdicts = []
    for ev, p_raw, p_adj, p_eq in zip(gathered, p_for, adjusted[:len(gathered)], adjusted[len(gathered):]):
        statistic = None
        # a statistic of what a trained model does says nothing of models at chance: not read when the effect rests
        # on one, or when no effect was estimated and the runs it would read include one
        at_chance = ev.h.statistic in READS_A_LEARNT_MODEL and (
            bool(ev.effect.unlearnt) if ev.effect is not None
            else ev.ctx is not None and bool(unlearnt(sweep, ev.ctx.treated + ev.ctx.reference)))
        if ev.ctx is not None and ev.h.statistic is not None and ev.ctx.treated and not at_chance:
            statistic = STATISTICS[ev.h.statistic](replace(ev.ctx, probe=probe))
            named = set(ev.effect.unlearnt) if ev.effect is not None else set()
            read_at_chance = [r for r in unlearnt(sweep, ev.ctx.treated) if r not in named]
            if statistic.verdict is not None and read_at_chance:  # training dynamics of runs at chance: say so
                statistic = replace(statistic, template=statistic.template + "; read also from runs that did not "
                                    "learn: {unlearnt_runs}", values={**statistic.values,
                                                                      "unlearnt_runs": "; ".join(read_at_chance)})
        effect_ = ev.effect if ev.effect is not None and not ev.reason else None
        verdict = _decide(ev, statistic, p_adj, p_eq, s)
        figures = dict(statistic.figures) if statistic else {}
        if effect_ is not None:
            figures["effect"] = forest_figure(effects_frame([effect_, *ev.colour]))
        run_ids = sorted(set(ev.ctx.treated + ev.ctx.reference) if ev.ctx else ())
        verdicts.append(Verdict(ev.h.id, ev.h.claim, verdict, effect_, p_adj, p_eq, p_raw, s["equivalence_margin"],
                                statistic,
                                [c for c in ev.colour if c is not None], ev.reason, ev.task, ev.h.cause, run_ids,
                                figures))
    return verdicts


DEFAULTS = dict(min_seeds=3, n_boot=500, seed=0, level=0.95, method="holm", probe_batch=32,
                saturation_threshold=0.2, share_threshold=0.5, competing_cosine=0.2, equivalence_margin=0.05,
                min_far_mass=0.05, decay_threshold=0.5, gate_noise_threshold=1e-3, bin_bp=50.0, variant_names={})


def assess(sweep_dir, hypotheses: Optional[list[str]] = None, probes: bool = True, min_seeds: int = 3,
           n_boot: int = 500, seed: int = 0, probe_batch: int = 32, saturation_threshold: float = 0.2,
           share_threshold: float = 0.5, competing_cosine: float = 0.2, equivalence_margin: float = 0.05,
           min_far_mass: float = 0.05, decay_threshold: float = 0.5, gate_noise_threshold: float = 1e-3,
           bin_bp: float = 50.0, v1_variant: str = "cbat_v1", baseline_variant: str = ablations.BASELINE,
           method: str = "holm", level: float = 0.95,
           declarations: Optional[Sequence[Hypothesis]] = None) -> Assessment:
    """Judge every hypothesis of the log on a sweep directory.

    Parameters
    ----------
    sweep_dir : a sweep directory (or a loaded ``diagnostics.io.Sweep``).
    hypotheses : ids to judge (default all of ``HYPOTHESES``, plus ``declarations``).
    probes : load checkpoints and rebuild the test pairs from ``sweep.json`` for the V1a gradient probe and
        the H1 distance profile (forward/backward on ``probe_batch`` test pairs; no training).
    min_seeds : learnt runs each side of a twin pair needs before any verdict other than "inconclusive".
    n_boot, seed : test-pair bootstrap replicates and its RNG seed (``cbat.stats.fit_effects``).
    saturation_threshold : V1c, share of gate values <0.05 or >0.95 late in training that counts as saturated.
    share_threshold, competing_cosine : H6, early share of the objective that counts as dominant; gradient
        cosine with BCE below which an auxiliary loss competes.
    equivalence_margin : the smallest effect (in the deciding metric, e.g. AUPR) worth a claim: a claimed effect the
        data bound below it reads "not supported", and H5 ("unused") is supported when the anchors' gain is
        bounded below it.
    min_far_mass : H1, attention mass the global model must put beyond the window for the window to matter.
    decay_threshold, gate_noise_threshold : H3, first/last block gradient ratio below which gradients count
        as decaying; early gate sample variance above which gates count as noisy.
    bin_bp : distance bin of the H1 attention-distance figure.
    v1_variant, baseline_variant : the variants V1d compares.
    method, level : multiplicity adjustment over the judged hypotheses ("holm" or "fdr_bh") and the
        interval level (an adjusted p below ``1 - level`` counts).
    declarations : further ``Hypothesis`` declarations to judge with the built-in ones.

    Returns
    -------
    Assessment
        ``table``: one row per hypothesis (``COLUMNS``); ``figures``: plotly figures keyed "<id>.<what>", plus
        "ablation.waterfall" when the sweep holds add-one-in / leave-one-out runs and "design.forest" /
        "design.decomposition" when it holds a design; ``verdicts``: the ``Verdict`` objects.
    """
    sweep = load_sweep(sweep_dir)
    known = {**HYPOTHESES, **{h.id: h for h in declarations or ()}}
    unknown = sorted(set(hypotheses or []) - set(known))
    if unknown:
        raise ValueError(f"unknown hypothesis id(s) {unknown}; expected some of {list(known)}")
    chosen = [known[h] for h in (hypotheses or known)]
    verdicts = judge(sweep, chosen, probes, min_seeds=min_seeds, n_boot=n_boot, seed=seed, probe_batch=probe_batch,
                     saturation_threshold=saturation_threshold, share_threshold=share_threshold,
                     competing_cosine=competing_cosine, equivalence_margin=equivalence_margin,
                     min_far_mass=min_far_mass, decay_threshold=decay_threshold,
                     gate_noise_threshold=gate_noise_threshold, bin_bp=bin_bp, method=method, level=level,
                     variant_names={"V1d": (v1_variant, baseline_variant)})
    table = pd.DataFrame([v.row() for v in verdicts], columns=COLUMNS)
    figures = {f"{v.id}.{name}": fig for v in verdicts for name, fig in v.figures.items()}
    steps = waterfall(sweep, n_boot=n_boot, seed=seed)
    if not steps.empty and {"factor", "total"} <= set(steps["kind"]):
        figures["ablation.waterfall"] = waterfall_figure(steps)
    if design.fittable_design(sweep) is not None:
        effects = design.effects(sweep, n_boot=n_boot, level=level, seed=seed, causes=False)
        figures["design.forest"] = design.forest_figure(effects)
        figures["design.decomposition"] = design.decomposition_figure(design.decomposition(sweep, effects))
    return Assessment(table, figures, verdicts)

"""A verdict per hypothesis of the log (DESIGN section 7): "supported", "not supported" or "inconclusive",
always with the numbers, the figures and the run ids behind it.

``assess(sweep_dir)`` is the one call. Each hypothesis needs a *contrast*: two variants of the sweep whose
configs differ only in the mechanism's fields (found by comparing configs, so presets, ``cbat.ablations``
names and hand-made variants all work), with finished runs on >= ``min_seeds`` shared seeds. The probe
task a hypothesis names is preferred when the sweep has it. What each needs:

====  ==========================================================================================
V1a   ``sparsity="hard_topk"`` vs a soft normaliser (softmax / temp_softmax), ranking = AUPR and AUROC;
      checkpoints for the gradient probe
V1b   ``local="reshape2d"`` vs ``none`` / ``ms_conv`` (long_range or a held-out cell line split preferred)
V1c   a ``gate="sigmoid"`` variant (a ``temp_sigmoid`` one is shown beside it when present)
V1d   ``cbat_v1`` and ``baseline`` (names configurable)
H1    ``window_size`` set vs ``None`` (long_range preferred); checkpoints + data for the distance figure
H2    a strongly sparse normaliser (hard_topk, sparsemax, entmax15, temp_softmax with T < 1 or a sparsity
      loss) vs plain softmax (diffuse preferred)
H3    more blocks and/or gates vs fewer / none
H4    ``pos_modulation`` on vs off (long_range preferred)
H5    ``n_anchors`` > 0 vs 0
H6    any variant with an auxiliary loss weight > 0; its twin without auxiliary losses measures the cost
====  ==========================================================================================

Decision rules (thresholds are keyword arguments of ``assess``): an effect counts only when its 95%
paired-bootstrap interval excludes zero; fewer than ``min_seeds`` paired seeds or an interval across zero
gives "inconclusive" with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cbat import ablations
from diagnostics import anchors, attention, calibration, gates, gradients, losses
from diagnostics.ablation import Effect, effect, effects_frame, forest_figure, waterfall, waterfall_figure
from diagnostics.io import Sweep, load_sweep

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
CLAIMS = {
    "V1a": "hard top-k cuts gradients and ranking",
    "V1b": "2-D reshape invents neighbours",
    "V1c": "sigmoid gates saturate",
    "V1d": "recall inflation = upward drift of predicted probabilities",
    "H1": "locality (window) cuts long-range signal",
    "H2": "forced sparsity drops diffuse weak signal",
    "H3": "deep gated stack is hard to optimise",
    "H4": "RoPE + position modulation conflict",
    "H5": "anchors are unused",
    "H6": "auxiliary losses are overweighted",
}
PREFERRED_TASK = {"V1b": "long_range", "H1": "long_range", "H2": "diffuse", "H4": "long_range"}
COLUMNS = ["id", "claim", "verdict", "evidence", "task", "run_ids"]
SOFT = ("softmax", "temp_softmax")
_AUX_FIELDS = ("sparsity_loss_weight", "sparsity_target", "immax_weight", "speculation_weight")


@dataclass
class Verdict:
    """One row of the verdict table plus its figures."""

    id: str
    verdict: str
    evidence: str
    task: str = ""
    run_ids: list[str] = field(default_factory=list)
    figures: dict[str, go.Figure] = field(default_factory=dict)

    @property
    def claim(self) -> str:
        return CLAIMS[self.id]


class Assessment(NamedTuple):
    """``table`` (columns id, claim, verdict, evidence, task, run_ids) and ``figures`` keyed "<id>.<what>"."""

    table: pd.DataFrame
    figures: dict[str, go.Figure]


# --- finding contrasts ------------------------------------------------------------------------------
def contrasts(sweep: Sweep, fields: tuple[str, ...], treated: Callable[[dict], bool],
              untreated: Callable[[dict], bool]) -> list[tuple[str, str]]:
    """Variant pairs (treatment, reference) whose configs differ only in ``fields`` (and the name)."""
    configs = {v: sweep.variant_config(v) for v in sweep.ok()["variant"].unique()}
    ignore = set(fields) | {"name"}
    pairs = []
    for a, ca in configs.items():
        for b, cb in configs.items():
            if a != b and treated(ca) and untreated(cb) and \
                    all(ca.get(k) == cb.get(k) for k in set(ca) | set(cb) if k not in ignore):
                pairs.append((a, b))
    return pairs


def _pick(sweep: Sweep, pairs: list[tuple[str, str]], task: Optional[str]) -> tuple[Optional[tuple[str, str]], str]:
    """The contrast to judge: on the preferred task when the sweep has it, then most paired seeds."""
    def score(pair):
        treat, ref = sweep.ok(pair[0]), sweep.ok(pair[1])
        on_task = task is not None and task in set(treat["task"]) and task in set(ref["task"])
        return on_task, len(set(treat["seed"]) & set(ref["seed"]))
    if not pairs:
        return None, ""
    best = max(pairs, key=score)
    return best, task if score(best)[0] else ""


def _effects(sweep: Sweep, pair: tuple[str, str], metrics: tuple[str, ...], task: str, settings: dict
             ) -> dict[str, Optional[Effect]]:
    return {m: effect(sweep, pair[0], pair[1], m, task=task or None, n_boot=settings["n_boot"],
                      seed=settings["seed"]) for m in metrics}


def _too_few(eff: Optional[Effect], min_seeds: int) -> Optional[str]:
    if eff is None:
        return "the two variants share no finished run"
    if eff.n_seeds < min_seeds:
        return f"only {eff.n_seeds} paired seed(s), need {min_seeds}"
    return None


def _missing(hid: str, what: str) -> Verdict:
    return Verdict(hid, INCONCLUSIVE, f"the sweep lacks {what}")


def _by_sign(eff: Effect, harmful: str, helpful: str) -> tuple[str, str]:
    """Map an effect's sign onto a verdict (negative effect = the mechanism hurts)."""
    if eff.sign < 0:
        return harmful, eff.text()
    if eff.sign > 0:
        return helpful, eff.text()
    return INCONCLUSIVE, eff.text() + "; the interval spans 0"


def _combine(effects: list[Effect]) -> tuple[str, str]:
    """Several metrics of one contrast: "supported" when some interval lies below 0 and none above,
    "not supported" when the reverse holds, else "inconclusive"."""
    signs = [e.sign for e in effects]
    text = "; ".join(e.text() for e in effects)
    if min(signs) < 0 and max(signs) <= 0:
        return SUPPORTED, text
    if max(signs) > 0 and min(signs) >= 0:
        return NOT_SUPPORTED, text
    return INCONCLUSIVE, text + ("; the intervals span 0" if max(signs) == 0 else "; the metrics disagree")


def _run_ids(*effects: Optional[Effect]) -> list[str]:
    return sorted({r for e in effects if e is not None for r in e.run_ids})


def _run_ids_of(sweep: Sweep, variants, task: str = "") -> list[str]:
    rows = sweep.ok(task=task or None)
    return rows[rows["variant"].isin(list(variants))]["run_id"].tolist()


def _traces(sweep: Sweep, run_ids: list[str]) -> pd.DataFrame:
    return sweep.traces([r for r in run_ids if sweep.file(r, "trace") is not None])


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
            from cbat.sweep import load_data
            self.dataset = load_data(data)
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


# --- one judge per hypothesis -------------------------------------------------------------------------
def judge_v1a(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    pairs = contrasts(sweep, ("sparsity", "temperature", "topk"), lambda c: c["sparsity"] == "hard_topk",
                      lambda c: c["sparsity"] in SOFT)
    pair, task = _pick(sweep, pairs, None)
    if pair is None:
        return _missing("V1a", "a hard_topk variant and its soft (softmax/temp_softmax) twin")
    effs = _effects(sweep, pair, ("aupr", "auroc"), task, s)
    eff = effs["aupr"]
    if (reason := _too_few(eff, s["min_seeds"])):
        return Verdict("V1a", INCONCLUSIVE, reason, task, _run_ids(eff))
    grads, note = [], ""
    if probe.dataset is None:
        note = f"gradient probe skipped: {probe.reason}"
    else:
        for variant in pair:
            run_id = sweep.ok(variant, eff.task, eff.split)["run_id"].iloc[0]
            _, (enh, pro) = probe.batch_of(run_id)
            table = attention.unselected_gradient(probe.model(run_id), enh, pro,
                                                  topk=sweep.variant_config(pair[0])["topk"])
            grads.append(table.assign(variant=variant, run_id=run_id))
    verdict, text = _combine(list(effs.values()))
    figures = {"ranking": forest_figure(effects_frame(list(effs.values())))}
    if grads:
        table = pd.concat(grads, ignore_index=True)
        out = table[~table["selected"]].set_index("variant")
        hard, soft = out.loc[pair[0]], out.loc[pair[1]]
        note = (f"gradient to keys outside the top-{sweep.variant_config(pair[0])['topk']}: {pair[0]} mean "
                f"{hard.mean_grad:.2e} (exactly zero in {hard.frac_zero_grad:.0%} of {int(hard.n)} key slots), "
                f"{pair[1]} mean {soft.mean_grad:.2e} (zero in {soft.frac_zero_grad:.0%})")
        figures["gradient"] = attention.gradient_figure(table)
        if hard.frac_zero_grad < 1.0 or soft.frac_zero_grad >= 1.0:
            verdict = NOT_SUPPORTED  # the gradient cut itself is not there
    return Verdict("V1a", verdict, f"{text}; {note}", eff.task, _run_ids(*effs.values()), figures)


def judge_v1b(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    pairs = contrasts(sweep, ("local", "ms_kernels"), lambda c: c["local"] == "reshape2d",
                      lambda c: c["local"] in ("none", "ms_conv"))
    pair, task = _pick(sweep, pairs, PREFERRED_TASK["V1b"])
    if pair is None:
        return _missing("V1b", "a reshape2d variant and its 1-D twin (local none/ms_conv)")
    eff = _effects(sweep, pair, ("aupr",), task, s)["aupr"]
    if (reason := _too_few(eff, s["min_seeds"])):
        return Verdict("V1b", INCONCLUSIVE, reason, task, _run_ids(eff))
    verdict, text = _by_sign(eff, SUPPORTED, NOT_SUPPORTED)
    if probe.dataset is not None:
        from cbat.layers.local import grid_shape
        cfg = sweep.variant_config(pair[0])
        tokens = probe.dataset.enhancer.shape[1] // cfg["stem_pool"]
        width = grid_shape(tokens)[1]
        text += (f"; on the {tokens}-token enhancer grid, vertical neighbours are {width} tokens "
                 f"({width * cfg['stem_pool']} bp) apart in 1-D")
    return Verdict("V1b", verdict, text, eff.task, _run_ids(eff), {"ranking": forest_figure(effects_frame([eff]))})


def judge_v1c(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    kinds = {v: sweep.variant_config(v)["gate"] for v in sweep.ok()["variant"].unique()}
    sigmoid = [v for v, k in kinds.items() if k == "sigmoid"]
    if not sigmoid:
        return _missing("V1c", "a variant with gate='sigmoid'")
    shown = sigmoid + [v for v, k in kinds.items() if k == "temp_sigmoid"]
    run_ids = _run_ids_of(sweep, shown)
    traces = _traces(sweep, run_ids)
    table = gates.compare_kinds(gates.saturation(traces), kinds) if not traces.empty else pd.DataFrame()
    rows = table[table["variant"].isin(sigmoid)] if not table.empty else table
    if rows.empty or rows["n_seeds"].max() < s["min_seeds"]:
        return Verdict("V1c", INCONCLUSIVE, f"gate traces of fewer than {s['min_seeds']} seeds", "", run_ids)
    row = rows.sort_values("n_seeds").iloc[-1]
    threshold = s["saturation_threshold"]
    text = "; ".join(f"{r.variant} ({r.gate_kind}): late saturation {r.late:.2f} (seeds {r.late_min:.2f}-"
                     f"{r.late_max:.2f})" for r in table.itertuples())
    if row.late_min >= threshold:
        verdict = SUPPORTED
    elif row.late_max < threshold:
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Verdict("V1c", verdict, f"{text}; threshold {threshold:.2f} of values <0.05 or >0.95", "", run_ids,
                   {"saturation": gates.saturation_figure(traces),
                    "histogram": gates.histogram_figure(gates.histogram(traces))})


def judge_v1d(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    treat, ref = s["v1_variant"], s["baseline_variant"]
    variants = set(sweep.ok()["variant"])
    if not {treat, ref} <= variants:
        return _missing("V1d", f"variants {treat!r} and {ref!r}")
    effs = _effects(sweep, (treat, ref), ("recall", "precision"), "", s)
    if (reason := _too_few(effs["recall"], s["min_seeds"])):
        return Verdict("V1d", INCONCLUSIVE, reason, "", _run_ids(effs["recall"]))
    recall, precision = effs["recall"], effs["precision"]
    drift = calibration.drift_table(sweep.runs[sweep.runs["run_id"].isin(recall.run_ids)])
    per_seed = drift.pivot_table(index="seed", columns="variant", values="drift")
    up = per_seed[treat] - per_seed[ref]
    text = (f"drift (mean prob − base rate): {treat} {per_seed[treat].mean():+.3f}, "
            f"{ref} {per_seed[ref].mean():+.3f} "
            f"(higher in {int((up > 0).sum())}/{len(up)} seeds); {recall.text()}; {precision.text()}")
    if recall.sign > 0 and (up > 0).all():
        verdict = SUPPORTED
    elif recall.sign < 0 or (up <= 0).all():
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
    preds = sweep.all_predictions(list(recall.run_ids))
    return Verdict("V1d", verdict, text, recall.task, _run_ids(recall, precision),
                   {"reliability": calibration.reliability_figure(calibration.reliability(preds)),
                    "drift": calibration.drift_figure(drift)})


def judge_h1(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    pairs = contrasts(sweep, ("window_size", "mask_kind"), lambda c: c["window_size"] is not None,
                      lambda c: c["window_size"] is None)
    pair, task = _pick(sweep, pairs, PREFERRED_TASK["H1"])
    if pair is None:
        return _missing("H1", "a variant with window_size set and its global (window_size=None) twin")
    eff = _effects(sweep, pair, ("aupr",), task, s)["aupr"]
    if (reason := _too_few(eff, s["min_seeds"])):
        return Verdict("H1", INCONCLUSIVE, reason, task, _run_ids(eff))
    verdict, text = _by_sign(eff, SUPPORTED, NOT_SUPPORTED)
    cfg = sweep.variant_config(pair[0])
    window_bp = cfg["window_size"] * cfg["stem_pool"]
    figures = {"effect": forest_figure(effects_frame([eff]))}
    if probe.dataset is None:
        return Verdict("H1", verdict, f"{text}; window {window_bp} bp; distance probe skipped: {probe.reason}",
                       eff.task, _run_ids(eff), figures)
    profiles = []
    for variant in pair:
        run_id = sweep.ok(variant, eff.task, eff.split)["run_id"].iloc[0]
        index, (enh, pro) = probe.batch_of(run_id)
        profile = attention.distance_profile(probe.model(run_id), enh, pro, names=("*cross_ep.attn.pattern",),
                                             bin_bp=s["bin_bp"])
        profiles.append(profile.assign(variant=variant))
    profile = pd.concat(profiles, ignore_index=True)
    decisive = np.nan
    if probe.dataset.truth is not None:
        gaps = attention.decisive_distance(probe.dataset.truth)
        decisive = float(gaps.reindex(index).median())
    glob = profile[profile["variant"] == pair[1]]
    beyond = float(glob.loc[glob["distance_bp"] >= window_bp, "mass"].sum() / max(glob["mass"].sum(), 1e-12))
    text += (f"; window {window_bp} bp, median decisive distance {decisive:.0f} bp; the global model puts "
             f"{beyond:.0%} of its E<-P attention beyond the window")
    if verdict == SUPPORTED and beyond < s["min_far_mass"]:
        verdict = INCONCLUSIVE  # the deficit is there but the global model does not look that far
    figures["distance"] = attention.distance_figure(profile, window_bp, None if np.isnan(decisive) else decisive)
    return Verdict("H1", verdict, text, eff.task, _run_ids(eff), figures)


def _strongly_sparse(c: dict) -> bool:
    return (c["sparsity"] in ("hard_topk", "sparsemax", "entmax15")
            or (c["sparsity"] == "temp_softmax" and c["temperature"] < 1) or c["sparsity_loss_weight"] > 0)


def judge_h2(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    pairs = contrasts(sweep, ("sparsity", "temperature", "topk", "sparsity_loss_weight", "sparsity_target"),
                      _strongly_sparse, lambda c: c["sparsity"] == "softmax" and c["sparsity_loss_weight"] == 0)
    pair, task = _pick(sweep, pairs, PREFERRED_TASK["H2"])
    if pair is None:
        return _missing("H2", "a strongly sparse variant and its dense softmax twin")
    effs = _effects(sweep, pair, ("recall", "aupr"), task, s)
    if (reason := _too_few(effs["aupr"], s["min_seeds"])):
        return Verdict("H2", INCONCLUSIVE, reason, task, _run_ids(effs["aupr"]))
    recall, aupr = effs["recall"], effs["aupr"]
    traces = _traces(sweep, list(aupr.run_ids))
    table = attention.attention_table(traces)
    cross = table[table["site"].isin(["cross_ep", "cross_pe"])]
    tokens = cross.groupby("variant")["effective_tokens"].mean()
    sparser = tokens.get(pair[0], np.nan) < tokens.get(pair[1], np.nan)
    verdict, text = _combine([recall, aupr])
    text += (f"; effective tokens per query {pair[0]} {tokens.get(pair[0], np.nan):.1f} vs {pair[1]} "
             f"{tokens.get(pair[1], np.nan):.1f}")
    if not sparser:
        verdict, text = NOT_SUPPORTED, text + " (the variant is not sparser)"
    return Verdict("H2", verdict, text, aupr.task, _run_ids(recall, aupr),
                   {"effect": forest_figure(effects_frame([recall, aupr])),
                    "sparsity": attention.sparsity_figure(cross)})


def _deeper(c: dict, other: dict) -> bool:
    return (c["n_blocks"] >= other["n_blocks"] and (c["gate"] != "none" or other["gate"] == "none")
            and (c["n_blocks"] > other["n_blocks"] or (c["gate"] != "none" and other["gate"] == "none")))


def judge_h3(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    fields = ("n_blocks", "gate", "gate_min_temperature", "gate_residual")
    configs = {v: sweep.variant_config(v) for v in sweep.ok()["variant"].unique()}
    pairs = [(a, b) for a, b in contrasts(sweep, fields, lambda c: True, lambda c: True)
             if _deeper(configs[a], configs[b])]
    pair, task = _pick(sweep, pairs, None)
    if pair is None:
        return _missing("H3", "a deeper and/or gated variant and its shallower / ungated twin")
    eff = _effects(sweep, pair, ("aupr",), task, s)["aupr"]
    if (reason := _too_few(eff, s["min_seeds"])):
        return Verdict("H3", INCONCLUSIVE, reason, task, _run_ids(eff))
    traces = _traces(sweep, list(eff.run_ids))
    decay = gradients.block_decay(traces).groupby("variant")["first_to_last"].median()
    noise = gates.early_noise(traces)
    early = noise.groupby("variant")["early_sample_var"].mean() if not noise.empty else pd.Series(dtype=float)
    deep_decay = decay.get(pair[0], np.nan)
    text = (f"{eff.text()}; gradient norm first/last block: {pair[0]} {deep_decay:.2f}, "
            f"{pair[1]} {decay.get(pair[1], np.nan):.2f}; early gate noise (sample variance) "
            f"{early.get(pair[0], np.nan):.2e}")
    verdict, _ = _by_sign(eff, SUPPORTED, NOT_SUPPORTED)
    troubled = deep_decay < s["decay_threshold"] or early.get(pair[0], 0.0) > s["gate_noise_threshold"]
    if verdict == SUPPORTED and not troubled:
        verdict, text = INCONCLUSIVE, text + "; the deficit shows no gradient decay or early gate noise"
    elif verdict == INCONCLUSIVE:
        text += "; the interval spans 0"
    return Verdict("H3", verdict, text, eff.task, _run_ids(eff),
                   {"depth": gradients.depth_figure(gradients.depth_profile(traces)),
                    "grad_norm": gradients.grad_norm_figure(traces)})


def judge_h4(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    pairs = contrasts(sweep, ("pos_modulation", "pos_modulation_freqs"), lambda c: c["pos_modulation"],
                      lambda c: not c["pos_modulation"])
    pair, task = _pick(sweep, pairs, PREFERRED_TASK["H4"])
    if pair is None:
        return _missing("H4", "a pos_modulation variant and its twin without it")
    eff = _effects(sweep, pair, ("aupr",), task, s)["aupr"]
    if (reason := _too_few(eff, s["min_seeds"])):
        return Verdict("H4", INCONCLUSIVE, reason, task, _run_ids(eff))
    verdict, text = _by_sign(eff, SUPPORTED, NOT_SUPPORTED)
    traces = _traces(sweep, list(eff.run_ids))
    distance = attention.attention_table(traces).groupby("variant")["mean_distance_bp"].mean()
    text += (f"; mean attended distance {pair[0]} {distance.get(pair[0], np.nan):.0f} bp vs "
             f"{pair[1]} {distance.get(pair[1], np.nan):.0f} bp")
    return Verdict("H4", verdict, text, eff.task, _run_ids(eff),
                   {"effect": forest_figure(effects_frame([eff])),
                    "distance": attention.timeline_figure(traces, "mean_distance_bp")})


def judge_h5(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    pairs = contrasts(sweep, ("n_anchors", "anchor_mode", "block_recipe"), lambda c: c["n_anchors"] > 0,
                      lambda c: c["n_anchors"] == 0)
    pair, task = _pick(sweep, pairs, None)
    if pair is None:
        return _missing("H5", "an anchor variant (n_anchors > 0) and its twin without anchors")
    eff = _effects(sweep, pair, ("aupr",), task, s)["aupr"]
    if (reason := _too_few(eff, s["min_seeds"])):
        return Verdict("H5", INCONCLUSIVE, reason, task, _run_ids(eff))
    anchored = [v for v in sweep.ok()["variant"].unique() if sweep.variant_config(v)["n_anchors"] > 0]
    run_ids = _run_ids_of(sweep, anchored, eff.task)
    traces = _traces(sweep, run_ids)
    table = anchors.anchor_table(traces, {v: sweep.variant_config(v)["n_anchors"] for v in anchored})
    modes = anchors.compare_modes(table, {v: sweep.variant_config(v)["anchor_mode"] for v in anchored})
    usage = modes.set_index("variant")["usage_ratio"].get(pair[0], np.nan)
    text = eff.text() + "; " + "; ".join(
        f"{r.variant} ({r.anchor_mode}): usage ratio {r.usage_ratio:.2f}, anchor-state variance "
        f"{r.var_across_anchors:.2e}" for r in modes.itertuples())
    if eff.sign > 0:
        verdict = NOT_SUPPORTED
    elif eff.ci_high < s["equivalence_margin"] and not (usage >= 1):
        verdict = SUPPORTED  # no measurable gain and attention passes the anchors by (or cannot be read)
    else:
        verdict = INCONCLUSIVE
    return Verdict("H5", verdict, f"{text}; equivalence margin {s['equivalence_margin']}", eff.task,
                   sorted(set(_run_ids(eff)) | set(run_ids)),
                   {"effect": forest_figure(effects_frame([eff])), "usage": anchors.anchor_figure(table)})


def judge_h6(sweep: Sweep, probe: _Probe, s: dict) -> Verdict:
    weights = ("sparsity_loss_weight", "immax_weight", "speculation_weight")
    aux = [v for v in sweep.ok()["variant"].unique() if any(sweep.variant_config(v)[f] > 0 for f in weights)]
    if not aux:
        return _missing("H6", "a variant with an auxiliary loss weight > 0")
    run_ids = _run_ids_of(sweep, aux)
    traces = _traces(sweep, run_ids)
    table = losses.shares(traces)
    table = table[~table["component"].isin([losses.MAIN, losses.TOTAL])]
    if table.empty or table.groupby("variant")["seed"].nunique().max() < s["min_seeds"]:
        return Verdict("H6", INCONCLUSIVE, f"loss traces of fewer than {s['min_seeds']} seeds", "", run_ids)
    # A dominant term whose gradient is orthogonal to or against BCE's spends the step on itself.
    table = table.assign(dominant=table["early_share"] >= s["share_threshold"],
                         conflict=table["grad_cosine"] < s["competing_cosine"])
    per = table.groupby(["variant", "component"]).agg(
        share=("share", "mean"), early=("early_share", "mean"), cosine=("grad_cosine", "mean"),
        seeds=("seed", "nunique"),
        dominant=("dominant", "all"), any_dominant=("dominant", "any"), conflict=("conflict", "all")).reset_index()
    text = "; ".join(f"{r.variant}/{r.component}: share {r.share:.2f} (first quarter of training {r.early:.2f}), "
                     f"cosine with BCE {r.cosine:+.2f} ({r.seeds} seeds)" for r in per.itertuples())
    figures = {"shares": losses.share_figure(traces), "conflict": losses.conflict_figure(table)}
    dominant = per[per["dominant"] & (per["seeds"] >= s["min_seeds"])].sort_values("share")
    if dominant.empty:
        verdict = INCONCLUSIVE if per["any_dominant"].any() else NOT_SUPPORTED
        return Verdict("H6", verdict, f"{text}; no auxiliary loss holds share >= {s['share_threshold']} early "
                       "in every seed", "", run_ids, figures)
    worst = dominant.iloc[-1]
    # The cost to the main task: the same config without auxiliary losses, when the sweep has it.
    twins = contrasts(sweep, _AUX_FIELDS, lambda c: True,
                      lambda c: all(c[f] == 0 for f in _AUX_FIELDS if f != "sparsity_target"))
    twin = next((p for p in twins if p[0] == worst.variant), None)
    eff = _effects(sweep, twin, ("aupr",), "", s)["aupr"] if twin else None
    cost = eff is not None and eff.n_seeds >= s["min_seeds"] and eff.sign < 0
    text += (f"; {worst.variant}/{worst.component} holds >= {s['share_threshold']} of the objective early in "
             "every seed"
             + (f"; {eff.text()}" if eff is not None else "; no twin without auxiliary losses"))
    if worst.conflict:
        text += f"; its gradient cosine with BCE stays below {s['competing_cosine']} (competing) in every seed"
    if worst.conflict or cost:
        verdict = SUPPORTED
    elif eff is not None and eff.sign > 0:
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
        text += "; dominant but neither a conflicting (competing) gradient nor a measured AUPR cost"
    return Verdict("H6", verdict, text, "", sorted(set(run_ids) | set(_run_ids(eff))), figures)


JUDGES: dict[str, Callable[[Sweep, _Probe, dict], Verdict]] = {
    "V1a": judge_v1a, "V1b": judge_v1b, "V1c": judge_v1c, "V1d": judge_v1d, "H1": judge_h1, "H2": judge_h2,
    "H3": judge_h3, "H4": judge_h4, "H5": judge_h5, "H6": judge_h6}


def assess(sweep_dir, hypotheses: Optional[list[str]] = None, probes: bool = True, min_seeds: int = 3,
           n_boot: int = 1000, seed: int = 0, probe_batch: int = 32, saturation_threshold: float = 0.2,
           share_threshold: float = 0.5, competing_cosine: float = 0.2, equivalence_margin: float = 0.01,
           min_far_mass: float = 0.05,
           decay_threshold: float = 0.5, gate_noise_threshold: float = 1e-3, bin_bp: float = 50.0,
           v1_variant: str = "cbat_v1", baseline_variant: str = ablations.BASELINE) -> Assessment:
    """Judge every hypothesis of the log on a sweep directory.

    Parameters
    ----------
    sweep_dir : a sweep directory (or a loaded ``diagnostics.io.Sweep``).
    hypotheses : ids to judge (default all of ``CLAIMS``).
    probes : load checkpoints and rebuild the test pairs from ``sweep.json`` for the V1a gradient probe and
        the H1 distance profile (forward/backward on ``probe_batch`` test pairs; no training).
    min_seeds : paired seeds a contrast needs before any verdict other than "inconclusive".
    n_boot, seed : bootstrap replicates and its RNG seed (``cbat.stats.paired_bootstrap``).
    saturation_threshold : V1c, share of gate values <0.05 or >0.95 late in training that counts as saturated.
    share_threshold, competing_cosine : H6, share of the objective in the first quarter of training that
        counts as dominant; "supported" also
        needs a gradient cosine with BCE below ``competing_cosine`` (orthogonal or opposed) in every seed, or an
        AUPR cost against the twin without auxiliary losses.
    equivalence_margin : H5, largest AUPR gain from anchors that still counts as "unused".
    min_far_mass : H1, attention mass the global model must put beyond the window for the window to matter.
    decay_threshold, gate_noise_threshold : H3, first/last block gradient ratio below which gradients count
        as decaying; early gate sample variance above which gates count as noisy.
    bin_bp : distance bin of the H1 attention-distance figure.
    v1_variant, baseline_variant : the variants V1d compares.

    Returns
    -------
    Assessment
        ``table``: one row per hypothesis (id, claim, verdict, evidence, task, run_ids); ``figures``: plotly
        figures keyed "<id>.<what>", plus "ablation.waterfall" when the sweep holds add-one-in /
        leave-one-out runs.
    """
    sweep = load_sweep(sweep_dir)
    unknown = sorted(set(hypotheses or []) - set(CLAIMS))
    if unknown:
        raise ValueError(f"unknown hypothesis id(s) {unknown}; expected some of {list(CLAIMS)}")
    settings = dict(min_seeds=min_seeds, n_boot=n_boot, seed=seed, saturation_threshold=saturation_threshold,
                    share_threshold=share_threshold, competing_cosine=competing_cosine,
                    equivalence_margin=equivalence_margin,
                    min_far_mass=min_far_mass, decay_threshold=decay_threshold,
                    gate_noise_threshold=gate_noise_threshold, bin_bp=bin_bp, v1_variant=v1_variant,
                    baseline_variant=baseline_variant)
    probe = _Probe(sweep, probe_batch, probes)
    verdicts = [JUDGES[h](sweep, probe, settings) for h in (hypotheses or CLAIMS)]
    table = pd.DataFrame([{"id": v.id, "claim": v.claim, "verdict": v.verdict, "evidence": v.evidence,
                           "task": v.task, "run_ids": v.run_ids} for v in verdicts], columns=COLUMNS)
    figures = {f"{v.id}.{name}": fig for v in verdicts for name, fig in v.figures.items()}
    steps = waterfall(sweep, n_boot=n_boot, seed=seed)
    if not steps.empty and {"factor", "total"} <= set(steps["kind"]):
        figures["ablation.waterfall"] = waterfall_figure(steps)
    return Assessment(table, figures)

"""Attention diagnostics (hypotheses V1a, H1, H2, H4).

From summary traces: entropy, effective number of tokens, top-k mass, mean attended distance (bp) and
mass beyond the window per block/head over training. From a model and a batch (forward-only capture, or one
forward+backward for the gradient probe): the attention-distance profile and the gradient that reaches keys
outside each query's top-k (exactly zero under hard top-k, the log's "cut gradients").
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from torch import nn

import cbat
from cbat.hooks import AttentionMeta
from diagnostics.figures import require_columns, run_keys, styled

ATTENTION_STATISTICS = ("entropy", "effective_tokens", "topk_mass", "zero_fraction", "anchor_mass",
                        "mean_distance_bp", "far_mass", "mass_beyond_window")


def attention_runs(sweep) -> list[str]:
    """Finished runs of a ``diagnostics.io.Sweep`` whose model has attention (the ``no_cross`` control has none),
    sorted by variant and seed (``Sweep.ok``)."""
    return [r for r in sweep.ok()["run_id"] if sweep.config(r).get("interaction") != "none"]


# --- from summary traces ---------------------------------------------------------------------------
def attention_timeline(trace: pd.DataFrame, per_head: bool = False) -> pd.DataFrame:
    """Wide per-step attention statistics per run and pattern hook (head -1 = mean over heads unless
    ``per_head``)."""
    require_columns(trace, ["name", "block", "kind", "site", "statistic", "head", "step", "value"],
                    "attention_timeline")
    rows = trace[(trace["kind"] == "attn") & trace["statistic"].isin(ATTENTION_STATISTICS)]
    rows = rows[rows["head"] >= 0] if per_head else rows[rows["head"] == -1]
    index = run_keys(rows) + ["name", "block", "site", "head", "step"]
    # groupby, not pivot_table(dropna=False), which builds every combination of the index values (a run's rows
    # for hooks it lacks, all NaN); a statistic that is NaN where it has no meaning stays a column
    return rows.groupby(index + ["statistic"])["value"].mean().unstack("statistic").reset_index() \
        .rename_axis(None, axis=1)


def attention_table(trace: pd.DataFrame, tail: float = 0.25, per_head: bool = False) -> pd.DataFrame:
    """Each attention statistic averaged over the last ``tail`` share of sampled steps (trained behaviour),
    one row per run and pattern hook (and head when ``per_head``)."""
    timeline = attention_timeline(trace, per_head)
    keys = run_keys(timeline) + ["name", "block", "site", "head"]
    last, first = (timeline.groupby(keys)["step"].transform(f) for f in ("max", "min"))
    late = timeline[timeline["step"] >= first + (1 - tail) * (last - first)]
    stats = [c for c in ATTENTION_STATISTICS if c in late.columns]
    return late.groupby(keys, as_index=False)[stats].mean()


def timeline_figure(trace: pd.DataFrame, statistic: str = "effective_tokens") -> go.Figure:
    """One attention statistic over training, per pattern hook (and variant when stacked)."""
    timeline = attention_timeline(trace)
    color = "variant" if "variant" in timeline.columns else "name"
    fig = px.line(timeline, x="step", y=statistic, color=color, line_dash="name" if color == "variant" else None,
                  line_group="run_id" if "run_id" in timeline.columns else None)
    return styled(fig, f"Attention {statistic.replace('_', ' ')} over training", "step", statistic)


def sparsity_figure(table: pd.DataFrame) -> go.Figure:
    """Effective number of attended tokens per variant and hook (output of ``attention_table``)."""
    color = "variant" if "variant" in table.columns else None
    fig = px.strip(table, x="name", y="effective_tokens", color=color, hover_data=["entropy", "topk_mass"])
    return styled(fig, "Effective number of attended tokens (exp entropy)", "hook", "effective tokens")


# --- probes on a model -------------------------------------------------------------------------------
def profile_from_pattern(pattern: torch.Tensor, meta: AttentionMeta, bin_bp: float = 100.0) -> pd.DataFrame:
    """Attention mass by query-key distance for one captured map [B, H, Lq, Lk].

    Only positioned (non-anchor) tokens count; mass is averaged over samples, heads and the queries that have
    keys (a window that reaches past the shorter sequence leaves some queries none), so the ``mass`` column sums
    to the share of attention that went to positioned keys.
    """
    q_keep, k_keep = ~meta.q_is_anchor.cpu(), ~meta.k_is_anchor.cpu()
    if not q_keep.any() or not k_keep.any():
        return pd.DataFrame(columns=["distance_bp", "mass"])
    p = pattern.float()[:, :, q_keep][..., k_keep]
    distance = (meta.q_pos_bp.cpu()[q_keep][:, None] - meta.k_pos_bp.cpu()[k_keep][None, :]).abs()
    bins = torch.div(distance, bin_bp, rounding_mode="floor").long()
    keyed = (p.sum(-1) > 0.5).sum(-1).clamp_min(1).float()  # [B, H]: queries with keys (rows sum to 1, else 0)
    mass_per_pair = (p / keyed[..., None, None]).mean((0, 1))  # [Lq, Lk]: each keyed query's row weighted 1 / n
    mass = torch.zeros(int(bins.max()) + 1).scatter_add_(0, bins.flatten(), mass_per_pair.flatten())
    return pd.DataFrame({"distance_bp": np.arange(len(mass)) * bin_bp, "mass": mass.numpy()})


def distance_profile(model: nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor,
                     names: tuple[str, ...] = ("*.pattern",), bin_bp: float = 100.0) -> pd.DataFrame:
    """Forward ``model`` on a batch with captured attention and return the mass-by-distance profile per
    pattern hook: columns name, distance_bp (bin start), mass."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), cbat.record(model, mode="capture", names=list(names),
                                          max_samples=enhancer.shape[0]) as trace:
            model(enhancer, promoter)
    finally:
        model.train(was_training)
    frames = [profile_from_pattern(trace.captured[name][0], trace.captured_meta[name], bin_bp).assign(name=name)
              for name in trace.captured if name in trace.captured_meta]
    if not frames:
        return pd.DataFrame(columns=["name", "distance_bp", "mass"])
    out = pd.concat(frames, ignore_index=True)
    return out[["name", "distance_bp", "mass"]]


def distance_figure(profile: pd.DataFrame, window_bp: float | None = None,
                    decisive_bp: float | None = None) -> go.Figure:
    """Attention mass by distance (output of ``distance_profile``, optionally stacked with a ``variant``
    column), with the window edge and the distance that decides the label as vertical lines."""
    color = "variant" if "variant" in profile.columns else "name"
    fig = px.line(profile, x="distance_bp", y="mass", color=color, line_dash="name" if color == "variant" else None,
                  markers=True)
    if window_bp is not None:
        fig.add_vline(x=window_bp, line_dash="dash", annotation_text=f"window {window_bp:.0f} bp")
    if decisive_bp is not None:
        fig.add_vline(x=decisive_bp, line_dash="dot", line_color="firebrick",
                      annotation_text=f"decisive distance {decisive_bp:.0f} bp")
    return styled(fig, "Attention mass by query-key distance", "distance (bp)", "attention mass")


def decisive_distance(truth: pd.DataFrame) -> pd.Series:
    """Per pair, the distance (bp, aligned frame) between its causal enhancer and promoter motifs:
    the gap a model must bridge; from an ``EPIDataset.truth`` table."""
    require_columns(truth, ["pair_index", "side", "start", "role"], "decisive_distance")
    causal = truth[truth["role"] == "causal"]
    enh = causal[causal["side"] == "enhancer"][["pair_index", "start"]]
    pro = causal[causal["side"] == "promoter"][["pair_index", "start"]]
    pairs = enh.merge(pro, on="pair_index", suffixes=("_e", "_p"))
    gaps = (pairs["start_e"] - pairs["start_p"]).abs()
    return gaps.groupby(pairs["pair_index"]).min().rename("decisive_bp")


def unselected_gradient(model: nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor,
                        layer: str = "blocks.0.cross_ep.attn", topk: int | None = None,
                        queries: int = 8) -> pd.DataFrame:
    """Gradient of the logit that reaches keys inside vs outside each query's top-k (hypothesis V1a).

    One forward with the layer's pattern captured, then for each of ``queries`` evenly spaced query
    positions the logit gradient flowing through that query's attention row is pulled back onto the
    layer's own key and value projections (tensor hooks on ``k_proj``/``v_proj``). A key counts as
    *unselected* for (sample, head, query) when it is outside the ``topk`` largest weights of that row;
    under hard top-k those weights are exactly zero and so, by design, is the gradient. Run it on a
    layer without a window mask (keys outside a window would also count as unselected).

    Returns
    -------
    DataFrame with one row per ``selected`` in (True, False): n (key slots), mean_weight,
    mean_grad (L2 norm of the K and V gradient per head and key), max_grad, frac_zero_grad.
    """
    try:
        core = model.get_submodule(layer)
    except AttributeError:
        layers = [n for n, _ in model.named_modules() if n.endswith((".cross_ep.attn", ".cross_pe.attn"))]
        raise ValueError(f"unselected_gradient: the model has no layer {layer!r}; its cross-attention layers: "
                         f"{layers or 'none (e.g. the no_cross control)'}") from None
    k = topk or core.topk
    store: dict[str, torch.Tensor] = {}
    handles = [core.k_proj.register_forward_hook(lambda m, i, o: store.__setitem__("k", o)),
               core.v_proj.register_forward_hook(lambda m, i, o: store.__setitem__("v", o)),
               core.register_forward_hook(lambda m, i, o: store.__setitem__("out", o))]
    was_training = model.training
    model.eval()
    try:
        with cbat.record(model, mode="capture", names=[f"{layer}.pattern"], max_samples=enhancer.shape[0]) as trace:
            logits = model(enhancer, promoter)
        weights = trace.captured[f"{layer}.pattern"][0]  # [B, H, Lq, Lk]
        (g_out,) = torch.autograd.grad(logits.sum(), store["out"], retain_graph=True)
        batch, heads, n_q, n_k = weights.shape
        rows = []
        for i in np.unique(np.linspace(0, n_q - 1, min(queries, n_q)).round().astype(int)):
            g_k, g_v = torch.autograd.grad((store["out"][:, i] * g_out[:, i]).sum(), [store["k"], store["v"]],
                                           retain_graph=True)
            per_head = torch.cat([g.view(batch, n_k, heads, -1) for g in (g_k, g_v)], dim=-1).norm(dim=-1)
            row = weights[:, :, i]  # [B, H, Lk]
            selected = torch.zeros_like(row, dtype=torch.bool).scatter(-1, row.topk(min(k, n_k), -1).indices, True)
            rows.append(pd.DataFrame({"selected": selected.flatten().numpy(), "weight": row.flatten().numpy(),
                                      "grad": per_head.transpose(1, 2).detach().flatten().cpu().numpy()}))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    keys = pd.concat(rows, ignore_index=True)
    keys["zero_grad"] = keys["grad"] == 0
    return (keys.groupby("selected").agg(n=("grad", "size"), mean_weight=("weight", "mean"),
                                         mean_grad=("grad", "mean"), max_grad=("grad", "max"),
                                         frac_zero_grad=("zero_grad", "mean"))
            .reset_index().sort_values("selected", ascending=False).reset_index(drop=True))


def gradient_figure(table: pd.DataFrame) -> go.Figure:
    """Mean gradient reaching selected vs unselected keys (output of ``unselected_gradient``, stacked with
    a ``variant`` column)."""
    frame = table.assign(keys=np.where(table["selected"], "in top-k", "outside top-k"))
    fig = px.bar(frame, x="variant" if "variant" in frame.columns else "keys", y="mean_grad", color="keys",
                 barmode="group", hover_data=["frac_zero_grad", "mean_weight"])
    return styled(fig, "Gradient reaching keys inside vs outside each query's top-k", "", "mean |gradient|")

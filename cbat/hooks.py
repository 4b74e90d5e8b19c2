"""Hook points with stable dotted names, recorded in three modes: off, summary, capture.

A ``HookPoint`` is an identity module placed where a quantity is worth reading; its name is its module
path (TransformerLens style), e.g. ``blocks.0.cross_ep.pattern``. ``record`` registers forward hooks on
the chosen points for the life of a ``with`` block and always removes them, also on exceptions.
Attention modules consult ``HookPoint.active`` so that nothing is materialised when nobody listens.
"""
from __future__ import annotations

import fnmatch
import math
from contextlib import contextmanager
from functools import lru_cache
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import pandas as pd
import torch
from torch import nn

SATURATION_LOW, SATURATION_HIGH = 0.05, 0.95
MODES = ("off", "summary", "capture")
GATE_HIST_BINS = 10


@dataclass
class AttentionMeta:
    """Where queries and keys sit, so attention statistics can speak in base pairs.

    Positions are bp coordinates in the frame in which the mask and RoPE are applied (aligned indices for
    cross attention, the concatenated [promoter, anchors, enhancer] index for joint attention). Anchor
    tokens have no position and are excluded from distance statistics.
    """

    q_pos_bp: torch.Tensor  # [Lq] float
    k_pos_bp: torch.Tensor  # [Lk] float
    q_is_anchor: torch.Tensor  # [Lq] bool
    k_is_anchor: torch.Tensor  # [Lk] bool
    window_bp: Optional[float] = None
    topk: int = 8


class HookPoint(nn.Module):
    """Identity module; ``kind`` tells the recorder which statistics apply ("pattern", "gate", "state")."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.active = False

    def forward(self, x: torch.Tensor, meta: Optional[AttentionMeta] = None) -> torch.Tensor:
        return x


def hook_points(model: nn.Module) -> list[tuple[str, HookPoint]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, HookPoint)]


def grad_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Parameters grouped by prefix: ``blocks.<i>`` per block, else the top-level module name."""
    groups: dict[str, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        parts = name.split(".")
        prefix = ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]
        groups.setdefault(prefix, []).append(param)
    return groups


TRACE_KINDS = {"pattern": "attn", "gate": "gate", "state": "anchors"}  # HookPoint.kind -> trace ``kind``


@lru_cache(maxsize=None)
def trace_site(name: str, kind: str) -> str:
    """Where a trace row was read, without the block prefix (the ``block`` column holds it).

    attn: the attention module ("cross_ep", "cross_pe", "joint", "anchors.gather", "anchors.broadcast");
    gate: the gated step ("attn", "joint", "ffn"); anchors: "anchors"; grad: the parameter group
    ("blocks.0", "head", "stem_e", ...); loss: the component ("bce", "sparsity", "total", ...).
    """
    if kind == "grad":
        return name.removesuffix(".grad_norm")
    parts = name.split(".")
    if kind == "loss":
        return ".".join(parts[1:])
    inner = parts[2:-1] if parts[0] == "blocks" and len(parts) > 2 else parts[:-1]
    if kind == "attn" and inner and inner[-1] == "attn":  # the AttentionCore inside the named module
        inner = inner[:-1]
    if kind == "gate" and inner:
        inner[-1] = inner[-1].removeprefix("gate_")
    return ".".join(inner)


def hook_names(model: nn.Module) -> list[str]:
    """All recordable names in stable order: hook points in module order, then gradient-norm groups."""
    return [name for name, _ in hook_points(model)] + [f"{g}.grad_norm" for g in grad_groups(model)]


# --- statistics ----------------------------------------------------------------------------------
def attention_stats(pattern: torch.Tensor, meta: AttentionMeta, far_bp: float) -> dict[str, torch.Tensor]:
    """Per-head statistics of an attention map [B, H, Lq, Lk] (rows sum to 1).

    Returns tensors of shape [H]: entropy (nats), effective_tokens (exp entropy), topk_mass,
    zero_fraction, anchor_mass, and over positioned query/key pairs mean_distance_bp, far_mass
    (mass beyond ``far_bp``) and mass_beyond_window.
    """
    p = pattern.detach().float()
    q_anchor, k_anchor = meta.q_is_anchor.to(p.device), meta.k_is_anchor.to(p.device)
    # Anchor queries (when there are token queries too) are left out: the statistics describe tokens.
    q_keep = ~q_anchor if (~q_anchor).any() else torch.ones_like(q_anchor)
    rows = p[:, :, q_keep]
    plogp = torch.where(rows > 0, rows * rows.clamp_min(1e-30).log(), torch.zeros_like(rows))
    entropy = -plogp.sum(-1)  # [B, H, Lq]
    k = min(meta.topk, rows.shape[-1])
    n_heads = p.shape[1]
    nan = torch.full((n_heads,), float("nan"), device=p.device)
    stats = {
        "entropy": entropy.mean((0, 2)),
        "effective_tokens": entropy.exp().mean((0, 2)),
        "topk_mass": rows.topk(k, dim=-1).values.sum(-1).mean((0, 2)),
        "zero_fraction": (rows == 0).float().mean((0, 2, 3)),
        "anchor_mass": rows[..., k_anchor].sum(-1).mean((0, 2)) if k_anchor.any() else torch.zeros_like(nan),
    }
    positioned = rows[..., ~k_anchor]
    if q_anchor.all() or k_anchor.all():  # anchor exchange: no token-to-token distances exist
        stats.update(mean_distance_bp=nan, far_mass=nan, mass_beyond_window=nan)
        return stats
    distance = (meta.q_pos_bp.to(p.device)[q_keep][:, None] - meta.k_pos_bp.to(p.device)[~k_anchor][None, :]).abs()
    mass = positioned.sum(-1).clamp_min(1e-12)  # normalise by the mass that sits on positioned keys
    stats["mean_distance_bp"] = ((positioned * distance).sum(-1) / mass).mean((0, 2))
    stats["far_mass"] = (positioned * (distance > far_bp)).sum(-1).mean((0, 2))
    stats["mass_beyond_window"] = nan if meta.window_bp is None else \
        (positioned * (distance > meta.window_bp)).sum(-1).mean((0, 2))
    return stats


def gate_stats(value: torch.Tensor) -> dict[str, float]:
    """Gate mean/std, fraction saturated (<0.05 or >0.95), variance of per-sample means (early gate noise)
    and the share of values in each tenth of [0, 1] (``hist_00`` .. ``hist_09``)."""
    v = value.detach().float()
    per_sample = v.flatten(1).mean(1)
    stats = {
        "mean": v.mean().item(),
        "std": v.std().item() if v.numel() > 1 else 0.0,
        "frac_saturated": ((v < SATURATION_LOW) | (v > SATURATION_HIGH)).float().mean().item(),
        "frac_low": (v < SATURATION_LOW).float().mean().item(),
        "frac_high": (v > SATURATION_HIGH).float().mean().item(),
        "sample_var": per_sample.var().item() if per_sample.numel() > 1 else 0.0,
    }
    # A 10-bin histogram over [0, 1] so the value distribution can be followed over training.
    counts = torch.histc(v, bins=GATE_HIST_BINS, min=0.0, max=1.0) / max(v.numel(), 1)
    stats.update({f"hist_{i:02d}": c for i, c in enumerate(counts.tolist())})
    return stats


def state_stats(value: torch.Tensor) -> dict[str, float]:
    """For anchor states [B, A, D]: norm and variance across anchors (0 means the anchors are all alike)."""
    v = value.detach().float()
    return {"norm": v.norm(dim=-1).mean().item(), "var_across_anchors": v.var(dim=1).mean().item()}


# --- the recorder --------------------------------------------------------------------------------
class Trace:
    """What one ``record`` context saw. ``summary()`` is a tidy DataFrame; ``captured`` holds tensors."""

    COLUMNS = ["name", "block", "kind", "site", "statistic", "head", "step", "value"]

    def __init__(self, model: nn.Module, mode: str, names: Optional[Sequence[str]], every: int,
                 max_samples: int, far_bp: float) -> None:
        if mode not in MODES:
            raise ValueError(f"record mode {mode!r}; expected one of {list(MODES)}")
        if every < 1:
            raise ValueError(f"record every={every}; expected a positive integer")
        self.model, self.mode, self.every = model, mode, every
        self.max_samples, self.far_bp = max_samples, far_bp
        self.step = 0
        self._rows: list[tuple] = []
        self._grad_sq: dict[str, float] = {}
        self.captured: dict[str, list[torch.Tensor]] = {}
        self.captured_meta: dict[str, AttentionMeta] = {}
        self._handles: list = []
        self._points: list[tuple[str, HookPoint]] = []
        self._grad_groups: dict[str, list[nn.Parameter]] = {}
        self.names: list[str] = []
        if mode == "off":
            return
        all_names = hook_names(model)
        patterns = list(names) if names else ["*"]
        unknown = [p for p in patterns if not any(fnmatch.fnmatch(n, p) for n in all_names)]
        if unknown:
            raise ValueError(f"record names {unknown} match no hook point; available: {all_names}")
        self.names = [n for n in all_names if any(fnmatch.fnmatch(n, p) for p in patterns)]
        chosen = set(self.names)
        self._points = [(n, m) for n, m in hook_points(model) if n in chosen]
        self._grad_groups = {g: ps for g, ps in grad_groups(model).items() if f"{g}.grad_norm" in chosen}

    # lifecycle
    def _attach(self) -> None:
        for name, point in self._points:
            self._handles.append(point.register_forward_hook(self._make_hook(name), with_kwargs=True))
        for group, params in self._grad_groups.items():
            for param in params:
                self._handles.append(param.register_post_accumulate_grad_hook(self._make_grad_hook(group)))
        self._set_active()

    def _detach(self) -> None:
        self._flush_grads()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for _, point in self._points:
            point.active = False

    @property
    def sampled(self) -> bool:
        """Whether the current step is recorded (every ``every``-th step)."""
        return self.step % self.every == 0

    def _set_active(self) -> None:
        for _, point in self._points:
            point.active = self.sampled

    def next_step(self) -> None:
        """Advance the step counter (call once per optimisation step); sampling follows ``every``."""
        self._flush_grads()
        self.step += 1
        self._set_active()

    # recording
    def _block_of(self, name: str) -> int:
        parts = name.split(".")
        return int(parts[1]) if parts[0] == "blocks" and len(parts) > 1 and parts[1].isdigit() else -1

    def _add(self, name: str, kind: str, statistic: str, value: float, head: int = -1) -> None:
        self._rows.append((name, self._block_of(name), kind, trace_site(name, kind), statistic, head, self.step,
                           float(value)))

    def _make_hook(self, name: str):
        def hook(module: HookPoint, args, kwargs, output):
            if not self.sampled:
                return None
            tensor = args[0]
            meta = kwargs.get("meta")
            if self.mode == "capture":
                self.captured.setdefault(name, []).append(tensor.detach()[: self.max_samples].float().cpu())
                if meta is not None:
                    self.captured_meta[name] = meta
            kind = TRACE_KINDS[module.kind]
            if module.kind == "pattern":
                for stat, per_head in attention_stats(tensor, meta, self.far_bp).items():
                    self._add(name, kind, stat, per_head.nanmean().item())
                    for h, v in enumerate(per_head.tolist()):
                        self._add(name, kind, stat, v, head=h)
            elif module.kind == "gate":
                for stat, v in gate_stats(tensor).items():
                    self._add(name, kind, stat, v)
            elif module.kind == "state":
                for stat, v in state_stats(tensor).items():
                    self._add(name, kind, stat, v)
            return None
        return hook

    def _make_grad_hook(self, group: str):
        def hook(param: torch.Tensor) -> None:
            if self.sampled and param.grad is not None:
                self._grad_sq[group] = self._grad_sq.get(group, 0.0) + float(param.grad.detach().float().pow(2).sum())
        return hook

    def _flush_grads(self) -> None:
        for group, sq in self._grad_sq.items():
            self._add(f"{group}.grad_norm", "grad", "l2", math.sqrt(sq))
        self._grad_sq.clear()

    def log_scalar(self, name: str, value: float, statistic: str = "value", kind: str = "loss") -> None:
        """Record a scalar that is not a module output, e.g. ``loss.bce`` (sampled like the hooks)."""
        if self.mode != "off" and self.sampled:
            self._add(name, kind, statistic, float(value))

    def summary(self) -> pd.DataFrame:
        """One row per (name, statistic, head, step); head -1 is the mean over heads.

        ``kind`` ("attn", "gate", "anchors", "grad", "loss") and ``site`` (see ``trace_site``) say what
        and where each row measured, so readers select rows by column instead of parsing ``name``.
        """
        self._flush_grads()
        return pd.DataFrame(self._rows, columns=self.COLUMNS)


@contextmanager
def record(model: nn.Module, mode: str = "summary", names: Optional[Sequence[str]] = None, every: int = 1,
           max_samples: int = 4, far_bp: float = 500.0) -> Iterator[Trace]:
    """Record hook points of ``model`` inside a ``with`` block.

    Parameters
    ----------
    mode : "off" registers nothing; "summary" reduces every hooked tensor to small statistics on the
        fly; "capture" also keeps the first ``max_samples`` samples of each chosen tensor on the CPU.
    names : glob patterns (``fnmatch``) over ``hook_names(model)``; default all.
    every : record only every ``every``-th step (``trace.next_step()`` advances the step); unsampled
        steps run the model's fast paths.
    far_bp : distance in bp beyond which attention mass counts as "far".
    """
    trace = Trace(model, mode, names, every, max_samples, far_bp)
    trace._attach()
    try:
        yield trace
    finally:
        trace._detach()

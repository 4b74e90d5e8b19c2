"""Hook points with stable dotted names, recorded in three modes: off, summary, capture.

A ``HookPoint`` is an identity module placed where a quantity is worth reading; its name is its module
path (TransformerLens style), e.g. ``blocks.0.cross_ep.attn.pattern``. ``record`` registers forward hooks on
the chosen points for the life of a ``with`` block and always removes them, also on exceptions.
Attention modules consult ``HookPoint.active`` so that nothing is materialised when nobody listens.
"""
from __future__ import annotations

import fnmatch
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
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
    # Tensors derived from the positions (distance matrices, masks) by ``attention_stats``, per device.
    cache: dict = field(default_factory=dict, repr=False, compare=False)


class HookPoint(nn.Module):
    """Identity module; ``kind`` tells the recorder which statistics apply ("pattern", "gate", "state")."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.active = False
        # (pairs, query_stride) of an attention map the recorder needs, set by ``record(sample=...)``; None: all
        self.sample: Optional[tuple[int, int]] = None
        self.owner: Optional[int] = None  # id of the open record context using this point (one at a time)

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
ATTENTION_STATS = ("entropy", "effective_tokens", "topk_mass", "zero_fraction", "anchor_mass", "mean_distance_bp",
                   "far_mass", "mass_beyond_window")
GATE_STATS = ("mean", "std", "frac_saturated", "frac_low", "frac_high", "sample_var") + tuple(
    f"hist_{i:02d}" for i in range(GATE_HIST_BINS))
STATE_STATS = ("norm", "var_across_anchors")


@dataclass
class _Layout:
    """What ``attention_stats`` derives from an ``AttentionMeta`` alone (built once per meta, device, far_bp)."""

    q_index: Optional[torch.Tensor]  # token queries to keep; None keeps all
    k_anchor: Optional[torch.Tensor]  # [Lk] float, 1 on anchor keys; None when there are none
    k_positioned: torch.Tensor  # [Lk] float, 1 on positioned keys
    weights: Optional[torch.Tensor]  # [S, Lq', Lk]: distance, beyond far_bp, beyond the window (positioned keys)
    has_window: bool


def _layout(meta: AttentionMeta, device: torch.device, far_bp: float) -> _Layout:
    key = (str(device), float(far_bp))
    cached = meta.cache.get(key)
    if cached is not None:
        return cached
    # The only host reads of the statistics happen here, once per meta (attention modules reuse their metas).
    q_anchor, k_anchor = meta.q_is_anchor.to(device), meta.k_is_anchor.to(device)
    # Anchor queries (when there are token queries too) are left out: the statistics describe tokens.
    q_index = None if not q_anchor.any() or q_anchor.all() else (~q_anchor).nonzero().squeeze(1)
    q_pos = meta.q_pos_bp.to(device).float()
    q_pos = q_pos if q_index is None else q_pos[q_index]
    positioned = (~k_anchor).float()
    weights = None
    if not (q_anchor.all() or k_anchor.all()):  # anchor exchange: no token-to-token distances exist
        distance = (q_pos[:, None] - meta.k_pos_bp.to(device).float()[None, :]).abs() * positioned
        beyond = [distance > far_bp] + ([] if meta.window_bp is None else [distance > meta.window_bp])
        weights = torch.stack([distance] + [b.float() * positioned for b in beyond])
    layout = _Layout(q_index, k_anchor.float() if k_anchor.any() else None, positioned, weights,
                     meta.window_bp is not None)
    meta.cache[key] = layout
    return layout


def attention_stats_tensor(pattern: torch.Tensor, meta: AttentionMeta, far_bp: float) -> torch.Tensor:
    """``attention_stats`` as one [len(ATTENTION_STATS), H] tensor on the pattern's device, with no host sync
    (the layout derived from ``meta`` is cached on it)."""
    p = pattern.detach().float()
    layout = _layout(meta, p.device, far_bp)
    rows = p if layout.q_index is None else p.index_select(2, layout.q_index)
    n_heads, n_keys = rows.shape[1], rows.shape[3]
    # Averages over the queries that have keys: a window that reaches past the shorter sequence leaves some
    # queries none (their row is all zeros), which would count as one effective token and no mass.
    keyed = rows.sum(-1) > 0.5  # [B, H, Lq]
    per_query = keyed.sum((0, 2)).clamp_min(1).float()  # [H], on the device: no host sync
    entropy = -(rows * rows.clamp_min(1e-30).log()).sum(-1)  # [B, H, Lq]; 0 log 0 = 0 (faster than xlogy)
    k = min(meta.topk, n_keys)
    out = [entropy.sum((0, 2)) / per_query, (entropy.exp() * keyed).sum((0, 2)) / per_query,
           rows.topk(k, dim=-1, sorted=False).values.sum((0, 2, 3)) / per_query,
           1 - torch.count_nonzero(rows, dim=(0, 2, 3)).float() / (per_query * n_keys),
           (rows @ layout.k_anchor).sum((0, 2)) / per_query if layout.k_anchor is not None
           else p.new_zeros(n_heads)]
    nan = p.new_full((n_heads,), float("nan"))
    if layout.weights is None:
        out += [nan, nan, nan]
    else:
        # Mass on positioned keys, then mass times distance / beyond far_bp / beyond the window, in one pass.
        mass = (rows @ layout.k_positioned).clamp_min(1e-12)  # normalise by the mass on positioned keys
        weighted = torch.einsum("bhqk,sqk->sbhq", rows, layout.weights)
        out += [(weighted[0] / mass).sum((0, 2)) / per_query, weighted[1].sum((0, 2)) / per_query,
                weighted[2].sum((0, 2)) / per_query if layout.has_window else nan]
    return torch.stack(out)


def attention_stats(pattern: torch.Tensor, meta: AttentionMeta, far_bp: float) -> dict[str, torch.Tensor]:
    """Per-head statistics of an attention map [B, H, Lq, Lk] (rows sum to 1).

    Returns tensors of shape [H]: entropy (nats), effective_tokens (exp entropy), topk_mass,
    zero_fraction, anchor_mass, and over positioned query/key pairs mean_distance_bp, far_mass
    (mass beyond ``far_bp``) and mass_beyond_window.
    """
    return dict(zip(ATTENTION_STATS, attention_stats_tensor(pattern, meta, far_bp)))


def gate_stats_tensor(value: torch.Tensor) -> torch.Tensor:
    """``gate_stats`` as one [len(GATE_STATS)] tensor on the value's device, with no host sync."""
    v = value.detach().float()
    per_sample = v.flatten(1).mean(1)
    zero = v.new_zeros(())
    # A 10-bin histogram over [0, 1] so the value distribution can be followed over training.
    hist = torch.histc(v, bins=GATE_HIST_BINS, min=0.0, max=1.0) / max(v.numel(), 1)
    low, high = (v < SATURATION_LOW).float().mean(), (v > SATURATION_HIGH).float().mean()
    return torch.cat([torch.stack([v.mean(), v.std() if v.numel() > 1 else zero, low + high, low, high,
                                   per_sample.var() if per_sample.numel() > 1 else zero]), hist])


def gate_stats(value: torch.Tensor) -> dict[str, float]:
    """Gate mean/std, fraction saturated (<0.05 or >0.95), variance of per-sample means (early gate noise)
    and the share of values in each tenth of [0, 1] (``hist_00`` .. ``hist_09``)."""
    return dict(zip(GATE_STATS, gate_stats_tensor(value).tolist()))


def state_stats_tensor(value: torch.Tensor) -> torch.Tensor:
    """For anchor states [B, A, D]: norm and variance across anchors (0 means the anchors are all alike)."""
    v = value.detach().float()
    return torch.stack([v.norm(dim=-1).mean(), v.var(dim=1).mean()])


def state_stats(value: torch.Tensor) -> dict[str, float]:
    """``state_stats_tensor`` by name, as floats."""
    return dict(zip(STATE_STATS, state_stats_tensor(value).tolist()))


# --- the recorder --------------------------------------------------------------------------------
class Trace:
    """What one ``record`` context saw. ``summary()`` is a tidy DataFrame; ``captured`` holds tensors."""

    COLUMNS = ["name", "block", "kind", "site", "statistic", "head", "step", "value"]

    def __init__(self, model: nn.Module, mode: str, names: Optional[Sequence[str]], every: int,
                 max_samples: int, far_bp: float, sample: Optional[tuple[int, int]] = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"record: model is a {type(model).__name__}; expected a torch.nn.Module "
                            "(cbat.build_model(cfg))")
        if mode not in MODES:
            raise ValueError(f"record mode {mode!r}; expected one of {list(MODES)}")
        if every < 1:
            raise ValueError(f"record every={every}; expected a positive integer")
        if sample is not None and (not isinstance(sample, (tuple, list)) or len(sample) != 2 or min(sample) < 1):
            raise ValueError(f"record sample={sample!r}; expected (pairs, query_stride), both >= 1")
        if max_samples < 1:
            raise ValueError(f"record max_samples={max_samples!r}; expected a positive number of samples to keep")
        names = [names] if isinstance(names, str) else names  # one pattern, not its characters
        self.model, self.mode, self.every, self.sample = model, mode, every, sample
        self.max_samples, self.far_bp = max_samples, far_bp
        self.step = 0
        self._rows: list[tuple] = []
        # Statistics stay on the device until the step ends, then come back in one transfer.
        self._pending: list[tuple[str, str, tuple[str, ...], bool, torch.Tensor]] = []
        self._grad_sq: dict[str, torch.Tensor] = {}
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
        # One record per hook point at a time: the points' on/off and sampling state is shared, and an inner
        # record's exit switched an outer one's points off without a word.
        busy = [name for name, point in self._points if point.owner is not None]
        if busy:
            raise ValueError(f"record: hook point(s) {busy[:3]} are already recorded by an open record context; "
                             "nest records only on different hook points (names=...) or record once")
        for _, point in self._points:
            point.owner = id(self)  # an id, not the trace: a model saved or copied while recording stays plain
        for name, point in self._points:
            self._handles.append(point.register_forward_hook(self._make_hook(name), with_kwargs=True))
        for group, params in self._grad_groups.items():
            for param in params:
                self._handles.append(param.register_post_accumulate_grad_hook(self._make_grad_hook(group)))
        self._set_active()

    def _detach(self) -> None:
        self._flush()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for _, point in self._points:
            point.active, point.sample, point.owner = False, None, None

    @property
    def sampled(self) -> bool:
        """Whether the current step is recorded (every ``every``-th step)."""
        return self.step % self.every == 0

    def _set_active(self) -> None:
        for _, point in self._points:
            point.active = self.sampled
            point.sample = tuple(self.sample) if self.sample and point.kind == "pattern" else None

    def next_step(self) -> None:
        """Advance the step counter (call once per optimisation step); sampling follows ``every``."""
        self._flush()
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
            # the point's own flag (set from `sampled` each step), not the step counter: under torch.compile a
            # read of the counter is a guard on its value and recompiles every step, a bool flips two graphs
            if not module.active:
                return None
            tensor = args[0]
            meta = kwargs.get("meta")
            if self.mode == "capture":
                self.captured.setdefault(name, []).append(tensor.detach()[: self.max_samples].float().cpu())
                if meta is not None:
                    self.captured_meta[name] = meta
            kind = TRACE_KINDS[module.kind]
            if module.kind == "pattern":
                stats = attention_stats_tensor(tensor, meta, self.far_bp)
                self._pending.append((name, kind, ATTENTION_STATS, True, stats))
            elif module.kind in ("gate", "state"):  # a sample reads its first pairs here too
                value = tensor if self.sample is None else tensor[: self.sample[0]]
                statistic_names, summarise = ((GATE_STATS, gate_stats_tensor) if module.kind == "gate"
                                              else (STATE_STATS, state_stats_tensor))
                self._pending.append((name, kind, statistic_names, False, summarise(value)))
            return None
        return hook

    def _make_grad_hook(self, group: str):
        def hook(param: torch.Tensor) -> None:
            if self.sampled and param.grad is not None:
                sq = param.grad.detach().float().pow(2).sum()
                self._grad_sq[group] = sq if group not in self._grad_sq else self._grad_sq[group] + sq
        return hook

    def _flush(self) -> None:
        """Bring the step's device statistics back in one transfer and turn them into rows."""
        for group, sq in self._grad_sq.items():
            self._pending.append((f"{group}.grad_norm", "grad", ("l2",), False, sq.sqrt().reshape(1)))
        self._grad_sq.clear()
        if not self._pending:
            return
        values = torch.cat([t.reshape(-1) for *_, t in self._pending]).cpu().tolist()
        start = 0
        for name, kind, stats, per_head, tensor in self._pending:
            n_heads = tensor.shape[-1] if per_head else 1
            for stat in stats:
                chunk = values[start:start + n_heads]
                start += n_heads
                if not per_head:
                    self._add(name, kind, stat, chunk[0])
                    continue
                finite = [v for v in chunk if not math.isnan(v)]
                self._add(name, kind, stat, sum(finite) / len(finite) if finite else math.nan)  # head -1: nanmean
                for h, v in enumerate(chunk):
                    self._add(name, kind, stat, v, head=h)
        self._pending.clear()

    def log_scalar(self, name: str, value: float, statistic: str = "value", kind: str = "loss") -> None:
        """Record a scalar that is not a module output, e.g. ``loss.bce`` (sampled like the hooks)."""
        if self.mode != "off" and self.sampled:
            self._add(name, kind, statistic, float(value))

    def summary(self) -> pd.DataFrame:
        """One row per (name, statistic, head, step); head -1 is the mean over heads.

        ``kind`` ("attn", "gate", "anchors", "grad", "loss") and ``site`` (see ``trace_site``) say what
        and where each row measured, so readers select rows by column instead of parsing ``name``.
        """
        self._flush()
        return pd.DataFrame(self._rows, columns=self.COLUMNS)


@contextmanager
def record(model: nn.Module, mode: str = "summary", names: Optional[Sequence[str]] = None, every: int = 1,
           max_samples: int = 4, far_bp: float = 500.0, sample: Optional[tuple[int, int]] = None) -> Iterator[Trace]:
    """Record hook points of ``model`` inside a ``with`` block.

    Parameters
    ----------
    mode : "off" registers nothing; "summary" reduces every hooked tensor to small statistics on the
        fly; "capture" also keeps the first ``max_samples`` samples of each chosen tensor on the CPU.
    names : glob patterns (``fnmatch``) over ``hook_names(model)``; default all.
    every : record only every ``every``-th step (``trace.next_step()`` advances the step); unsampled
        steps run the model's fast paths.
    far_bp : distance in bp beyond which attention mass counts as "far".
    sample : (pairs, query_stride): statistics read only the first ``pairs`` pairs of a batch and, of attention
        maps, every ``query_stride``-th query (an unbiased sample of the same means). The model's own output is then the
        fused kernel's, as with recording off, and the sample's weights are computed apart, off the gradient
        path: this is what keeps recording on every step cheap (the trainer uses ``cbat.train.HOOK_SAMPLE``).
        None: every pair and query (the statistics of the whole batch).
    """
    trace = Trace(model, mode, names, every, max_samples, far_bp, sample)
    trace._attach()
    try:
        yield trace
    finally:
        trace._detach()

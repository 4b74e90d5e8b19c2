"""The notebook explorers' logic as plain classes: pick something, get a plotly figure.

``GateExplorer`` (run, block, training step -> gate histogram and saturation over training) reads a sweep
directory; ``AttentionExplorer`` (sample, hook, head -> attention map, entropy per query, distance
profile, anchor mass) captures attention on a fixed trained model and re-captures after a temperature
what-if (``cbat.layers.attention.temperature_override``: the model itself is never edited).
``widget()`` wires ipywidgets controls to ``select`` / ``set_temperature``; tests drive those methods
directly, so every widget callback is reachable without a browser. ``show()`` is what a notebook displays:
the widget in a live kernel, and in a batch run (``cbat.report.static_output()``, where a widget would
only print its repr and can stall nbclient, jupyter/nbclient#312) a plotly figure whose slider steps
through precomputed states, which works offline without a kernel.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

import cbat
from cbat.hooks import AttentionMeta, attention_stats
from cbat.layers.attention import AttentionCore, RoPE_AdaptAttention, temperature_override, tempered_cores
from cbat.report import captioned, static_output
from diagnostics import gates
from diagnostics.attention import attention_runs, profile_from_pattern
from diagnostics.figures import styled
from diagnostics.io import load_sweep

# Controls show their whole label (ipywidgets cuts descriptions at a fixed width by default).
_LABEL = {"description_width": "initial"}


def _nearest(value: int, choices: Sequence[int]) -> int:
    return int(min(choices, key=lambda c: abs(c - value)))


# --- gates ---------------------------------------------------------------------------------------------
class GateExplorer:
    """Gate values of the gated runs of a sweep: pick run, block and step.

    Parameters
    ----------
    sweep_dir : a sweep directory (see ``diagnostics.io.load_sweep``).

    Attributes
    ----------
    run_ids : finished runs whose config has gates.
    run_id, block, step : the current selection; ``figure`` is its figure.
    """

    def __init__(self, sweep_dir: str | Path) -> None:
        self.sweep = load_sweep(sweep_dir)
        self.run_ids = gates.gated_runs(self.sweep)
        if not self.run_ids:
            raise ValueError(f"{self.sweep.path}: no finished run has gates (config 'gate' is 'none' everywhere)")
        self.run_id, self.block, self.step = self.run_ids[0], None, None
        self.figure: Optional[go.Figure] = None
        self.controls: dict = {}

    def first_runs(self, variants: Sequence[str]) -> list[str]:
        """The lowest-seed gated run of each of ``variants`` that has one (order kept); when none of them has
        one (e.g. a designed sweep, or a gate twin without cbat_v1/cbat_v2), that of the first gated variants
        of the sweep instead, as many as ``variants`` names (at least one)."""
        ok = self.sweep.ok()
        chosen = ok[ok["run_id"].isin(self.run_ids)].drop_duplicates("variant").set_index("variant")["run_id"]
        named = [chosen[v] for v in variants if v in chosen.index]
        return named or chosen.tolist()[:max(len(variants), 1)]

    def saturation_by_variant(self) -> pd.DataFrame:
        """Late-training saturation per gated variant with its gate kind (``diagnostics.gates.compare_kinds``)."""
        table = gates.saturation(self.sweep.traces(self.run_ids))
        kinds = {v: self.sweep.variant_config(v).get("gate", "none") for v in table["variant"].unique()}
        return gates.compare_kinds(table, kinds)

    def gate_trace(self, run_id: str) -> pd.DataFrame:
        """The gate rows recorded while ``run_id`` trained."""
        return gates.gate_rows(self.sweep.trace(run_id))

    def blocks(self, run_id: str) -> list[int]:
        return sorted(int(b) for b in self.gate_trace(run_id)["block"].unique())

    def steps(self, run_id: str) -> list[int]:
        rows = self.gate_trace(run_id)
        return sorted(int(s) for s in rows.loc[rows["statistic"].str.startswith("hist_"), "step"].unique())

    def select(self, run_id: Optional[str] = None, block: Optional[int] = None,
               step: Optional[int] = None) -> go.Figure:
        """Change any part of the selection and return the new figure.

        A block the run lacks falls back to its first block; a step snaps to the nearest recorded one
        (default: the last), so switching runs never leaves an impossible selection.
        """
        if run_id is not None:
            if run_id not in self.run_ids:
                raise ValueError(f"run {run_id!r} is not a gated finished run; expected one of {self.run_ids}")
            self.run_id = run_id
        blocks, steps = self.blocks(self.run_id), self.steps(self.run_id)
        wanted_block = self.block if block is None else block
        self.block = wanted_block if wanted_block in blocks else blocks[0]
        wanted_step = self.step if step is None else step
        self.step = steps[-1] if wanted_step is None else _nearest(wanted_step, steps)
        self.figure = self._figure()
        return self.figure

    def _figure(self) -> go.Figure:
        rows = self.gate_trace(self.run_id)
        rows = rows[rows["block"] == self.block]
        hist = gates.histogram(rows, step=self.step)
        timeline = gates.gate_timeline(rows)
        fig = make_subplots(rows=1, cols=2, subplot_titles=(f"gate values at step {self.step}",
                                                            "fraction saturated over training"))
        for name, part in hist.groupby("name"):
            fig.add_trace(go.Bar(x=part["bin_start"] + 0.05, y=part["share"], name=name, legendgroup=name,
                                 width=0.1 / max(hist["name"].nunique(), 1)), row=1, col=1)
        for name, part in timeline.groupby("name"):
            fig.add_trace(go.Scatter(x=part["step"], y=part["frac_saturated"], mode="lines+markers", name=name,
                                     legendgroup=name, showlegend=False), row=1, col=2)
        fig.add_vline(x=self.step, line_dash="dot", row=1, col=2)
        fig.update_xaxes(title_text="gate value", range=[0, 1], row=1, col=1)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(title_text="share of values", row=1, col=1)
        fig.update_yaxes(title_text="fraction <0.05 or >0.95", range=[0, 1], row=1, col=2)
        return styled(fig, f"{self.run_id}: block {self.block} gates")

    def compare(self, run_ids: Sequence[str], block: int = 0) -> go.Figure:
        """Gate value histograms at each run's last step, side by side (e.g. v1 sigmoid vs v2 temperature)."""
        unknown = [r for r in run_ids if r not in self.run_ids]
        if unknown or not run_ids:
            raise ValueError(f"compare needs gated finished runs; {unknown or 'none'} not in {self.run_ids}")
        lacking = [r for r in run_ids if block not in self.blocks(r)]
        if lacking:  # an empty panel would read as "no gate values"
            raise ValueError(f"compare: block {block} is not a gated block of {lacking[0]} (its blocks: "
                             f"{self.blocks(lacking[0])})")
        fig = make_subplots(rows=1, cols=len(run_ids), shared_yaxes=True, subplot_titles=list(run_ids))
        for col, run_id in enumerate(run_ids, start=1):
            rows = self.gate_trace(run_id)
            hist = gates.histogram(rows[rows["block"] == block])
            for name, part in hist.groupby("name"):
                fig.add_trace(go.Bar(x=part["bin_start"] + 0.05, y=part["share"], name=f"{run_id}: {name}"),
                              row=1, col=col)
            fig.update_xaxes(title_text="gate value", range=[0, 1], row=1, col=col)
        fig.update_yaxes(title_text="share of values", row=1, col=1)
        return styled(fig, f"Gate values at the end of training, block {block}")

    def widget(self):
        """Dropdowns for run and block, a slider over recorded steps, and the figure below them."""
        import ipywidgets as w

        self.select()
        run = w.Dropdown(options=self.run_ids, value=self.run_id, description="run", style=_LABEL)
        block = w.Dropdown(options=self.blocks(self.run_id), value=self.block, description="block", style=_LABEL)
        step = w.SelectionSlider(options=self.steps(self.run_id), value=self.step, description="training step",
                                 style=_LABEL)
        output = w.Output()
        self.controls = {"run": run, "block": block, "step": step, "output": output}

        syncing = []  # new options reset a control's value first: that is no user's choice (it reset the step)

        def on_run(change):
            self.select(run_id=change["new"])  # keeps the block and snaps the step to the run's nearest one
            chosen = self.block, self.step
            syncing.append(True)
            try:
                block.options, step.options = self.blocks(self.run_id), self.steps(self.run_id)
                block.value, step.value = chosen
            finally:
                syncing.pop()
            _show(output, self.figure)

        run.observe(on_run, names="value")
        block.observe(lambda c: syncing or _show(output, self.select(block=c["new"])), names="value")
        step.observe(lambda c: syncing or _show(output, self.select(step=c["new"])), names="value")
        _show(output, self.figure)
        return w.VBox([w.HBox([run, block]), step, output])

    def static_figure(self) -> go.Figure:
        """The current run and block with a slider over the recorded steps (works without a kernel)."""
        self.select()
        current, states = self.step, []
        try:
            for step in self.steps(self.run_id):
                states.append((str(step), self.select(step=step)))
        finally:
            self.select(step=current)
        return slider_figure(states, active=self.steps(self.run_id).index(current), prefix="training step: ")

    def show(self):
        """The widget in a live kernel; in a batch run the static figure with its step slider."""
        return captioned(self.static_figure(), "Left: where the gate values sit at the chosen step (piles at 0 "
                         "or 1 mean saturated gates); right: how the saturated share grew over training.") \
            if static_output() else self.widget()


# --- attention -----------------------------------------------------------------------------------------
class AttentionExplorer:
    """Attention patterns of a fixed model on a few samples: pick sample, hook and head.

    Parameters
    ----------
    model : a trained ``PRISMBackbone`` (any model with ``*.pattern`` hook points).
    enhancer, promoter : float one-hot batches [B, 4, Le], [B, 4, Lp]; all B samples are captured.
    names : glob patterns of the pattern hooks to capture.

    Attributes
    ----------
    patterns, metas : captured maps [B, H, Lq, Lk] and their ``AttentionMeta`` by hook name.
    temperature : the what-if temperature of the soft-sparse cores (None: as trained).
    """

    def __init__(self, model: nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor,
                 names: Sequence[str] = ("*.pattern",)) -> None:
        self.model, self.enhancer, self.promoter, self.name_patterns = model, enhancer, promoter, list(names)
        self.run_id: Optional[str] = None
        self.temperature: Optional[float] = None
        self.patterns: dict[str, torch.Tensor] = {}
        self.metas: dict[str, AttentionMeta] = {}
        attention = [n for n in cbat.hook_names(model) if n.endswith(".pattern")]
        if not any(fnmatch.fnmatch(n, p) for n in attention for p in self.name_patterns):
            # found here, before the recorder's list of every other hook point
            raise ValueError(f"no attention pattern matched {self.name_patterns}"
                             + ("" if attention else "; this model has no attention (e.g. the no_cross control)"))
        self.capture()
        self.names = list(self.patterns)
        # Start on the first adaptive cross attention: the map the what-if acts on.
        self.name = next((n for n in self.names if ".cross_" in n), self.names[0])
        self.sample, self.head = 0, -1
        self.figure: Optional[go.Figure] = None
        self.controls: dict = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, enhancer: torch.Tensor, promoter: torch.Tensor,
                        names: Sequence[str] = ("*.pattern",)) -> "AttentionExplorer":
        """Load ``model.pt`` of a run (``cbat.train.load_checkpoint``) and explore it on the given batch."""
        from cbat.train import load_checkpoint

        model, _ = load_checkpoint(path)
        return cls(model, enhancer, promoter, names)

    @classmethod
    def from_run(cls, sweep_dir: str | Path, run_id: Optional[str] = None, n_samples: int = 4,
                 names: Sequence[str] = ("*.pattern",)) -> "AttentionExplorer":
        """Explore a run of a sweep on its ``n_samples`` top-scoring test pairs (its predicted loops).

        ``run_id`` None picks the first finished run whose model has attention. The pairs are rebuilt
        from the sweep's data spec (``cbat.sweep.sweep_data``), so nothing but the sweep folder is needed.
        """
        from cbat.sweep import sweep_data

        sweep = load_sweep(sweep_dir)
        with_attention = attention_runs(sweep)
        if run_id is None:
            if not with_attention:
                raise ValueError(f"{sweep.path}: no finished run has attention")
            run_id = with_attention[0]
        elif run_id not in with_attention:
            raise ValueError(f"run {run_id!r} is not a finished run with attention in {sweep.path}; "
                             f"expected one of {with_attention}")
        if n_samples < 1:
            raise ValueError(f"n_samples={n_samples}; expected a positive integer")
        dataset = sweep_data(sweep.path)
        top = sweep.predictions(run_id).nlargest(n_samples, "prob")["pair_index"].to_numpy()
        enhancer, promoter = dataset.onehot(top)
        explorer = cls.from_checkpoint(sweep.file(run_id, "checkpoint"), enhancer, promoter, names)
        explorer.run_id = run_id
        return explorer

    def tempered_cores(self) -> list[AttentionCore]:
        """The adaptive (soft-sparse) attention cores the temperature what-if acts on."""
        return tempered_cores(self.model)

    @property
    def trained_temperature(self) -> Optional[float]:
        """The temperature the adaptive cores were trained at (1 for a plain softmax); None for hard top-k."""
        cores = self.tempered_cores()
        if not cores:
            return None
        return 1.0 if cores[0].sparsity == "softmax" else float(cores[0].temperature)

    @property
    def temperature_applies(self) -> bool:
        """Whether the what-if can act: False for hard top-k models (their selection has no temperature) and for
        models without adaptive cross attention (the what-if acts on it only)."""
        return bool(self.tempered_cores())

    @property
    def no_temperature(self) -> str:
        """Why the what-if cannot act on this model ("" when it can)."""
        if self.temperature_applies:
            return ""
        if any(isinstance(m, RoPE_AdaptAttention) for m in self.model.modules()):
            return "hard top-k has no temperature"
        return "the what-if acts on adaptive cross attention, which this model lacks"

    def capture(self) -> None:
        """One eval forward at ``self.temperature`` with every chosen pattern captured (train/eval mode
        restored after; the temperature lives only inside the forward's override context)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), temperature_override(self.model, self.temperature), \
                    cbat.record(self.model, mode="capture", names=self.name_patterns,
                                max_samples=self.enhancer.shape[0]) as trace:
                self.model(self.enhancer, self.promoter)
        finally:
            self.model.train(was_training)
        self.patterns = {n: trace.captured[n][0] for n in trace.captured if n in trace.captured_meta}
        self.metas = {n: trace.captured_meta[n] for n in self.patterns}

    def set_temperature(self, temperature: Optional[float]) -> go.Figure:
        """What-if: run the soft-sparse cores at ``temperature`` (None: as trained), re-capture, redraw.

        Higher temperature flattens softmax-type maps (entropy up); lower sharpens them. The weights are
        untouched, so this isolates the normaliser's share of the attention pattern.
        """
        self._capture_at(temperature)
        return self.select()

    def _capture_at(self, temperature: Optional[float]) -> None:
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature {temperature!r}; expected a positive number")
        self.temperature = None if temperature is None else float(temperature)
        self.capture()

    def temperature_sweep(self, temperatures: Sequence[float]) -> pd.DataFrame:
        """Mean entropy and effective tokens of each adaptive cross-attention hook at each temperature.

        The selection and the current temperature are restored afterwards.
        """
        adaptive = [n for n in self.names if ".cross_" in n]
        current, rows = self.temperature, []
        try:
            for t in temperatures:
                self._capture_at(t)
                stats = self.statistics()
                stats = stats[(stats["head"] == -1) & stats["name"].isin(adaptive)]
                for name, part in stats.groupby("name"):
                    values = dict(zip(part["statistic"], part["value"]))
                    rows.append({"temperature": float(t), "name": name, "entropy": values["entropy"],
                                 "effective_tokens": values["effective_tokens"]})
        finally:
            self._capture_at(current)  # same selection and temperature: the figure stays valid
        return pd.DataFrame(rows, columns=["temperature", "name", "entropy", "effective_tokens"])

    def statistics(self) -> pd.DataFrame:
        """Per hook and head (head -1 = mean), the ``cbat.hooks.attention_stats`` of the captured batch."""
        rows = []
        for name, pattern in self.patterns.items():
            for stat, per_head in attention_stats(pattern, self.metas[name], far_bp=500.0).items():
                values = per_head.tolist()
                rows += [(name, stat, h, v) for h, v in enumerate(values)]
                rows.append((name, stat, -1, float(np.nanmean(values)) if not np.all(np.isnan(values)) else np.nan))
        return pd.DataFrame(rows, columns=["name", "statistic", "head", "value"])

    def select(self, sample: Optional[int] = None, name: Optional[str] = None,
               head: Optional[int] = None) -> go.Figure:
        """Change any part of the selection (head -1 = mean over heads) and return the new figure."""
        if name is not None:
            if name not in self.patterns:
                raise ValueError(f"hook {name!r} was not captured; expected one of {self.names}")
            self.name = name
        n_samples, n_heads = self.patterns[self.name].shape[:2]
        if sample is not None:
            if not 0 <= sample < n_samples:
                raise ValueError(f"sample {sample}; expected 0..{n_samples - 1}")
            self.sample = sample
        if head is not None:
            if not -1 <= head < n_heads:
                raise ValueError(f"head {head}; expected -1 (mean) or 0..{n_heads - 1}")
            self.head = head
        self.figure = self._figure()
        return self.figure

    def _map(self) -> torch.Tensor:
        """The selected map [Lq, Lk] (one sample, one head or the head mean)."""
        pattern = self.patterns[self.name][self.sample]
        return pattern.mean(0) if self.head == -1 else pattern[self.head]

    def _figure(self) -> go.Figure:
        meta, attn = self.metas[self.name], self._map()
        # per head, then averaged (as statistics() does): the head-averaged map's own entropy is higher
        heads = self.patterns[self.name][self.sample]
        heads = heads if self.head == -1 else heads[self.head:self.head + 1]
        entropy = -(torch.where(heads > 0, heads * heads.clamp_min(1e-30).log(), torch.zeros_like(heads))) \
            .sum(-1).mean(0)
        profile = profile_from_pattern(attn[None, None], meta)
        per_head = attention_stats(self.patterns[self.name][self.sample:self.sample + 1], meta, far_bp=500.0)
        head_label = "mean over heads" if self.head == -1 else f"head {self.head}"
        t_label = "as trained" if self.temperature is None else f"T = {self.temperature:g}"
        if self.temperature is not None and not self.temperature_applies:
            t_label += f" (no effect: {self.no_temperature})"
        fig = make_subplots(rows=2, cols=2, vertical_spacing=0.14,
                            subplot_titles=("attention map (query x key)", "entropy per query (nats)",
                                            "attention mass by distance", "mass on anchor tokens per head"))
        fig.add_trace(go.Heatmap(z=attn.numpy(), colorscale="Viridis", colorbar=dict(len=0.45, y=0.78),
                                 name="weight"), row=1, col=1)
        fig.add_trace(go.Scatter(y=entropy.numpy(), mode="lines", name="entropy"), row=1, col=2)
        fig.add_trace(go.Bar(x=profile["distance_bp"], y=profile["mass"], name="mass"), row=2, col=1)
        fig.add_trace(go.Bar(x=[f"h{h}" for h in range(len(per_head["anchor_mass"]))],
                             y=per_head["anchor_mass"].tolist(), name="anchor mass"), row=2, col=2)
        fig.update_xaxes(title_text="key token", row=1, col=1)
        fig.update_yaxes(title_text="query token", autorange="reversed", row=1, col=1)
        fig.update_xaxes(title_text="query token", row=1, col=2)
        fig.update_xaxes(title_text="distance (bp)", row=2, col=1)
        fig.update_yaxes(range=[0, 1], row=2, col=2)
        if not meta.k_is_anchor.any():  # the panel is the mass on anchor keys: say why there is none
            why = ("the anchors are this hook's queries: they gather from the tokens" if meta.q_is_anchor.any() else
                   "this model has no anchors" if ".joint." in self.name else
                   "anchors are keys only in the joint attention and in the anchors' broadcast")
            fig.add_annotation(text=f"no anchor keys in this hook<br>({why})", showarrow=False, xref="x4 domain",
                               yref="y4 domain", x=0.5, y=0.5)
        fig.update_layout(height=720, showlegend=False)
        return styled(fig, f"{self.name}, sample {self.sample}, {head_label}, {t_label}")

    def widget(self):
        """Controls for sample, hook, head and a log-scale temperature slider, with the figure below."""
        import ipywidgets as w

        self.select()
        n_samples, n_heads = self.patterns[self.name].shape[:2]
        sample = w.IntSlider(value=self.sample, min=0, max=n_samples - 1, description="sample", style=_LABEL)
        name = w.Dropdown(options=self.names, value=self.name, description="hook", style=_LABEL,
                          layout=w.Layout(width="auto"))
        head = w.Dropdown(options=[("mean", -1)] + [(f"head {h}", h) for h in range(n_heads)], value=self.head,
                          description="head", style=_LABEL)
        applies, trained = self.temperature_applies, self.trained_temperature or 1.0
        # starts where the model was trained (cbat_v2: 0.5), so the slider never reads 1 under an as-trained map
        temperature = w.FloatLogSlider(value=self.temperature or trained, base=10, min=-1, max=1, step=0.05,
                                       description="what-if temperature", style=_LABEL, disabled=not applies)
        reset = w.Button(description="as trained", disabled=not applies, tooltip=f"trained at T = {trained:g}")
        why = w.HTML("" if applies else f"<i>temperature disabled: {self.no_temperature}</i>")
        output = w.Output()
        self.controls = {"sample": sample, "name": name, "head": head, "temperature": temperature, "reset": reset,
                         "output": output}
        sample.observe(lambda c: _show(output, self.select(sample=c["new"])), names="value")
        name.observe(lambda c: _show(output, self.select(name=c["new"])), names="value")
        head.observe(lambda c: _show(output, self.select(head=c["new"])), names="value")
        temperature.observe(lambda c: _show(output, self.set_temperature(c["new"])), names="value")

        def as_trained(_) -> None:  # the log slider snaps to its steps, so the trained map comes from None
            temperature.value = trained
            _show(output, self.set_temperature(None))

        reset.on_click(as_trained)
        _show(output, self.figure)
        return w.VBox([w.HBox([sample, name, head]), w.HBox([temperature, reset, why]), output])

    def static_figure(self, temperatures: Sequence[float] = (0.5, 1.0, 2.0)) -> go.Figure:
        """The current selection with a slider over what-if temperatures (as trained first); a hard top-k
        model, where temperature cannot act, gets the as-trained figure alone. Works without a kernel."""
        current = self.temperature
        states = [("as trained", self.set_temperature(None))]
        try:
            if self.temperature_applies:
                states += [(f"T = {t:g}", self.set_temperature(t)) for t in temperatures]
        finally:
            self.set_temperature(current)
        return slider_figure(states, prefix="temperature: ")

    def show(self, temperatures: Sequence[float] = (0.5, 1.0, 2.0)):
        """The widget in a live kernel; in a batch run the static figure with its temperature slider."""
        if not static_output():
            return self.widget()
        note = ("the slider reruns the normaliser at each temperature on the same weights" if self.temperature_applies
                else f"{self.no_temperature}, so only the as-trained map is shown")
        return captioned(self.static_figure(temperatures),
                         f"Map, entropy per query, distance profile and anchor mass of {self.name}; {note}.")


def slider_figure(states: Sequence[tuple[str, go.Figure]], active: int = 0, prefix: str = "") -> go.Figure:
    """One figure holding several same-layout figures as states of a plotly slider (no kernel needed).

    Each state's traces are shown only while its step is active; the title, annotations and shapes
    (subplot titles, markers) follow the state. The first figure's layout is the base.
    """
    if not states:
        raise ValueError("slider_figure needs at least one (label, figure) state")
    combined = go.Figure(layout=states[active][1].layout)
    spans, steps = [], []
    for index, (_, figure) in enumerate(states):
        start = len(combined.data)
        combined.add_traces([trace.update(visible=index == active) for trace in figure.data])
        spans.append((start, len(combined.data)))
    for (label, figure), (start, stop) in zip(states, spans):
        visible = [start <= i < stop for i in range(len(combined.data))]
        layout = {"title.text": figure.layout.title.text, "annotations": figure.layout.annotations,
                  "shapes": figure.layout.shapes}
        steps.append({"label": label, "method": "update", "args": [{"visible": visible}, layout]})
    if len(states) > 1:
        combined.update_layout(sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": prefix},
                                         "pad": {"t": 40}}])
    return combined


def _show(output, figure: go.Figure) -> None:
    """Replace what an ipywidgets ``Output`` shows with ``figure``."""
    from IPython.display import display

    output.clear_output(wait=True)
    with output:
        display(figure)

"""Figures for loop attribution: plotly attribution tracks and sequence logos of seqlets.

Logos are drawn by ``logomaker`` (matplotlib, Agg backend) into a PNG that a plotly ``Image`` trace shows, so
both kinds of figure live in the same notebook output and in the same offline HTML page.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

SIDES = ("enhancer", "promoter")
NO_TRUTH = ("No planted truth in these data (your own data): the motifs below are what the model uses; nothing scores "
            "them against known causes.")
ROLE_COLOURS = {"causal": "rgba(214, 39, 40, 0.25)", "decoy": "rgba(127, 127, 127, 0.25)"}


def attribution_tracks(scores: dict[str, np.ndarray], seqlets: pd.DataFrame | None = None,
                       truth: pd.DataFrame | None = None, title: str = "") -> go.Figure:
    """Per-base attribution of one loop, enhancer above promoter.

    Parameters
    ----------
    scores : dict
        ``{"enhancer": [Le], "promoter": [Lp]}`` per-base attribution of one loop.
    seqlets : DataFrame, optional
        This loop's rows of the seqlet table; each seqlet is outlined and labelled with its best motif.
    truth : DataFrame, optional
        This pair's planted motifs (synthetic data): shaded red (causal) or grey (decoy).
    title : str

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = make_subplots(rows=2, cols=1, subplot_titles=[f"{side} (bp)" for side in SIDES], vertical_spacing=0.18)
    for row, side in enumerate(SIDES, start=1):
        track = np.asarray(scores[side])
        fig.add_trace(go.Bar(x=np.arange(len(track)), y=track, name=side, marker_color="#1f77b4",
                             marker_line_width=0, hovertemplate="bp %{x}<br>attribution %{y:.4f}<extra></extra>"),
                      row=row, col=1)
        if truth is not None:
            for site in truth[truth["side"] == side].itertuples():
                fig.add_vrect(x0=site.start - 0.5, x1=site.end - 0.5, fillcolor=ROLE_COLOURS.get(site.role, "#ddd"),
                              line_width=0, row=row, col=1, annotation_text=f"{site.motif_name} ({site.role})",
                              annotation_position="bottom left", annotation_font_size=9)
        if seqlets is not None:
            for seqlet in seqlets[seqlets["side"] == side].itertuples():
                label = seqlet.match_label if seqlet.matched else "unmatched"
                fig.add_vrect(x0=seqlet.start - 0.5, x1=seqlet.end - 0.5, line_color="#ff7f0e", line_width=1.5,
                              fillcolor="rgba(0,0,0,0)", row=row, col=1, annotation_text=label,
                              annotation_position="top left", annotation_font_size=9)
        fig.update_yaxes(title_text="attribution (logit)", row=row, col=1)
    fig.update_layout(title=title, showlegend=False, bargap=0, height=520, template="plotly_white")
    return fig


def logo_png(contributions: np.ndarray, title: str = "", width_in: float = 4.0, height_in: float = 1.6) -> bytes:
    """A sequence logo of a ``[4, width]`` contribution matrix (rows ACGT), as PNG bytes (logomaker)."""
    import logomaker
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    matrix = np.asarray(contributions, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != 4:
        raise ValueError(f"logo_png: expected a [4, width] contribution matrix, got shape {matrix.shape}")
    fig, ax = plt.subplots(figsize=(width_in, height_in))
    try:
        logomaker.Logo(pd.DataFrame(matrix.T, columns=list("ACGT")), ax=ax, color_scheme="classic")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.axhline(0, color="black", linewidth=0.5)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def seqlet_logos(seqlets: pd.DataFrame, contributions: dict[str, np.ndarray], loop_rows: dict[int, int],
                 top: int = 6, columns: int = 2) -> go.Figure:
    """Logos of the ``top`` strongest seqlets in a plotly grid (one PNG image per panel).

    Parameters
    ----------
    seqlets : DataFrame
        The seqlet table (``loop``, ``side``, ``start``, ``end``, ``score``, ``motif_name``, ``matched``).
    contributions : dict
        ``{"enhancer": [n, 4, Le], "promoter": [n, 4, Lp]}`` attribution projected on the observed bases.
    loop_rows : dict
        Pair index (``loop``) -> row in the contribution arrays.
    top, columns : int
        How many logos, and panels per row.
    """
    chosen = seqlets.loc[seqlets["score"].abs().sort_values(ascending=False).index].head(top)
    n_rows = max(1, -(-len(chosen) // columns))
    titles = [f"loop {s.loop} {s.side} {s.start}-{s.end}: {s.motif_name if s.matched else 'unmatched'}"
              for s in chosen.itertuples()]
    fig = make_subplots(rows=n_rows, cols=columns, subplot_titles=titles or ["no seqlets"])
    for k, seqlet in enumerate(chosen.itertuples()):
        matrix = contributions[seqlet.side][loop_rows[seqlet.loop]][:, seqlet.start:seqlet.end]
        uri = "data:image/png;base64," + base64.b64encode(logo_png(matrix)).decode("ascii")
        fig.add_trace(go.Image(source=uri, hoverinfo="skip"), row=k // columns + 1, col=k % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=220 * n_rows, template="plotly_white", margin=dict(t=40, b=10, l=10, r=10),
                      title="top seqlets (contribution of the observed base)")
    return fig


def write_html(path, sections: list[tuple[str, object]], title: str = "Loop attribution",
               plotly_js: bool | str = True) -> None:
    """One HTML page of figures and tables, written atomically; works offline.

    ``sections`` holds ``(heading, figure, DataFrame or text)`` pairs in page order. ``plotly_js`` True inlines
    plotly.js; a relative path to a local ``.js`` file loads that instead (a report's shared copy).
    """
    from cbat.rundir import write_text

    parts, with_js = [f"<h1>{title}</h1>"], plotly_js
    for heading, item in sections:
        parts.append(f"<h2>{heading}</h2>")
        if isinstance(item, go.Figure):
            parts.append(item.to_html(full_html=False, include_plotlyjs=with_js))
            with_js = False
        elif isinstance(item, str):
            parts.append(f"<p>{html.escape(item)}</p>")
        else:
            parts.append(pd.DataFrame(item).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + title + "</title><style>body{font-family:"
            "sans-serif;margin:2em} table{border-collapse:collapse;font-size:12px} td,th{padding:2px 8px;"
            "border-bottom:1px solid #ddd}</style></head><body>" + "\n".join(parts) + "</body></html>")
    write_text(path, page)


REPORT_TABLES = ("loops", "trust", "seqlets", "motif_summary", "motif_pairs", "ism_check", "recovery_groups")
REPORT_FILES = (*(f"{table}.{ext}" for table in REPORT_TABLES for ext in ("parquet", "csv")), "recovery.json",
                "attribution.npz", "report.html")


def check_report_folder(out_dir) -> Path:
    """``out_dir`` as a Path, or one line saying why a loop report cannot be written there (a file on its path, or
    a folder where the report writes a file): found before the attribution, not after it."""
    out_dir = Path(out_dir)
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == out_dir else f"{folder} is a file"
                raise ValueError(f"{out_dir}: {where}; expected a folder for the loop report")
            break
    blocked = [out_dir / name for name in REPORT_FILES if (out_dir / name).is_dir()]
    if blocked:
        raise ValueError(f"{blocked[0]}: is a folder where the loop report writes a file; choose another folder")
    return out_dir


def write_loop_report(report, out_dir, n_tracks: int = 4, n_logos: int = 6,
                      plotly_js: bool | str = True, warnings: Sequence[str] = ()) -> dict[str, str]:
    """Write a :class:`diagnostics.attribution.LoopReport` as files a user can open.

    Tables as Parquet and CSV (``loops``, ``trust``, ``seqlets``, ``motif_summary``, ``motif_pairs``,
    ``ism_check``, ``recovery_groups`` with a truth),
    ``recovery.json`` when the data carry a truth, ``attribution.npz`` (per-base scores and pair indices) and
    ``report.html`` (tracks of the ``n_tracks`` most confident loops, logos of the top seqlets, the tables;
    ``plotly_js`` as in ``write_html``), which opens with the ``warnings`` (e.g. "the run did not learn").
    The files are written into a private folder first and moved in together at the end, so a failure leaves
    the folder as it was; a file of an earlier report that this one does not write (``recovery.json`` of
    synthetic data, then data without truth) is removed, so the folder holds one report.

    Returns
    -------
    dict
        Name -> path of each file written.
    """
    import os
    import shutil
    import tempfile

    out_dir = check_report_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".loop-report.", dir=out_dir))
    try:
        written = _write_files(report, stage, n_tracks, n_logos, plotly_js, warnings)
        for name in REPORT_FILES:
            if (stage / name).exists():
                os.replace(stage / name, out_dir / name)
            else:
                (out_dir / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {key: str(out_dir / Path(path).name) for key, path in written.items()}


def _write_files(report, out_dir: Path, n_tracks: int, n_logos: int, plotly_js: bool | str,
                 warnings: Sequence[str]) -> dict[str, str]:
    from cbat.rundir import atomic_write, write_json, write_parquet

    written = {}
    tables = {"loops": report.loops, "trust": report.trust, "seqlets": report.seqlets,
              "motif_summary": report.motif_summary, "motif_pairs": report.motif_pairs, "ism_check": report.ism}
    if report.recovery_groups is not None:
        tables["recovery_groups"] = report.recovery_groups
    for name, table in tables.items():
        write_parquet(out_dir / f"{name}.parquet", table)
        atomic_write(out_dir / f"{name}.csv", lambda tmp, t=table: t.to_csv(tmp, index=False))
        written[name] = str(out_dir / f"{name}.parquet")
    if report.recovery is not None:
        write_json(out_dir / "recovery.json", report.recovery)
        written["recovery"] = str(out_dir / "recovery.json")
    scores = report.scores()

    def save_scores(tmp):
        with open(tmp, "wb") as handle:  # a file object, or numpy appends ".npz" to the temporary name
            np.savez_compressed(handle, pair_index=report.loops["pair_index"].to_numpy(), **scores)

    atomic_write(out_dir / "attribution.npz", save_scores)
    written["attribution"] = str(out_dir / "attribution.npz")
    sections: list[tuple[str, object]] = [("Warning", text) for text in warnings] + [
        ("How far to trust each loop and side: IG steps and convergence delta (flagged = not converged), "
         "Pearson of IG and of saliency with in-silico mutagenesis (ism_flag = IG disagrees where saliency "
         "agrees), strongest matched motif with its family", report.trust),
        ("Loops", report.loops)]
    if report.recovery is not None:
        sections.append(("Planted-motif recovery on true-positive loops (a family match counts as right; "
                         "motif_exact_fraction is the exact-id figure)", pd.DataFrame([report.recovery])))
    else:
        sections.append(("Planted-motif recovery", NO_TRUTH))
    if report.recovery_groups is not None:
        sections.append(("Recovery per planted cause (or task), with why a cause is not recovered",
                         report.recovery_groups))
    confident = report.loops.sort_values("logit", ascending=False, kind="stable").head(n_tracks)
    for row, loop in confident.iterrows():
        mine = report.seqlets[report.seqlets["loop"] == loop.pair_index]
        truth = report.truth[report.truth["pair_index"] == loop.pair_index] if report.truth is not None else None
        title = f"loop {loop.pair_index} ({loop.cell_line}, {loop.outcome}, p={loop.prob:.3f})"
        sections.append((title, attribution_tracks({side: scores[side][row] for side in SIDES}, mine, truth, title)))
    rows = {int(p): i for i, p in enumerate(report.loops["pair_index"])}
    sections += [("Top seqlets", seqlet_logos(report.seqlets, report.contributions(), rows, top=n_logos)),
                 ("Motifs per cell line and side", report.motif_summary),
                 ("Motif pairs across the two sides", report.motif_pairs),
                 ("Seqlets and JASPAR matches", report.seqlets),
                 ("Check against in-silico mutagenesis", report.ism)]
    write_html(out_dir / "report.html", sections, plotly_js=plotly_js)
    written["report"] = str(out_dir / "report.html")
    return written

"""Batch reports: papermill runs the parameterised notebooks, nbconvert renders them, an index links them.

The notebooks in ``notebooks/`` stay thin; this module holds what they share with the batch job:

- ``setup_notebook()`` makes plotly figures carry both the plotly mimetype (interactive in JupyterLab)
  and plain HTML without a plotly.js copy; ``render_html`` puts one inline plotly.js into each page, so
  the HTML works offline (no CDN for plotly, require.js, MathJax or mermaid);
- ``record(name, value)`` stores a JSON value in a notebook output (like scrapbook's ``glue``) and
  ``read_records(path)`` reads them back, so tests and the index can check what a notebook found;
- ``execute_notebook`` / ``render_html`` / ``write_index`` and ``build_report`` (sweep -> notebooks ->
  HTML -> index, timed per stage). A notebook that raises is marked failed with its error; the rest
  still run and render.
"""
from __future__ import annotations

import html
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from cbat.rundir import write_text

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "python3"
RECORD_MIME = "application/vnd.cbat.record+json"


# --- helpers called inside notebooks -----------------------------------------------------------------
def setup_notebook() -> None:
    """Select the ``cbat`` plotly renderer: plotly mimetype for JupyterLab plus script-free HTML for
    nbconvert (the page gets plotly.js once, from ``render_html``)."""
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class OfflineHtmlRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            html_text = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False,
                                    default_width="100%", default_height=480, validate=False)
            return {"application/vnd.plotly.v1+json": fig_dict, "text/html": html_text}

    pio.renderers["cbat"] = OfflineHtmlRenderer()
    pio.renderers.default = "cbat"


def record(name: str, value: Any) -> Any:
    """Store ``value`` (JSON-serialisable) under ``name`` in the current cell's outputs and return it.

    The output carries only a private mimetype, so it is invisible in JupyterLab and dropped from the
    rendered HTML; ``read_records`` finds it in the executed notebook.
    """
    from IPython.display import display

    json.dumps(value)  # fail here, with the name, rather than in the kernel's serialiser
    display({RECORD_MIME: {"name": name, "value": value}}, raw=True)
    return value


def read_records(notebook: str | Path | dict) -> dict[str, Any]:
    """All ``record`` values of an executed notebook (a path or its JSON), by name; a later record wins."""
    # Plain JSON: nbformat's import costs seconds (jsonschema), too much for a helper notebooks import.
    nb = notebook if isinstance(notebook, dict) else json.loads(Path(notebook).read_text(encoding="utf-8"))
    values: dict[str, Any] = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIME in data:
                values[data[RECORD_MIME]["name"]] = data[RECORD_MIME]["value"]
    return values


def metrics_table(metrics: dict[str, dict], part: str = "test") -> "pd.DataFrame":
    """Pooled metrics of several runs side by side, one row per name.

    Parameters
    ----------
    metrics : name -> a run's metrics (``TrainResult.metrics`` or a record's ``metrics``).
    part : "val" or "test".
    """
    import pandas as pd

    missing = [name for name, m in metrics.items() if "pooled" not in m.get(part, {})]
    if missing:
        raise ValueError(f"metrics_table: no {part!r} pooled metrics for {missing}")
    table = pd.DataFrame({name: m[part]["pooled"] for name, m in metrics.items()}).T
    return table.rename_axis("variant")


def show_verdicts(assessment) -> None:
    """Display each verdict of ``diagnostics.verdicts.assess`` as a heading with its evidence, then its
    figures (keys "<id>.<what>"), then figures that belong to no single hypothesis."""
    from IPython.display import Markdown, display

    shown = set()
    for row in assessment.table.itertuples():
        display(Markdown(f"### {row.id}: {row.claim} -- **{row.verdict}**\n\n{row.evidence}\n\n"
                         f"runs: {', '.join(row.run_ids) or 'none'}"))
        for key, figure in assessment.figures.items():
            if key.split(".", 1)[0] == row.id:
                display(figure)
                shown.add(key)
    for key, figure in assessment.figures.items():
        if key not in shown:
            display(Markdown(f"### {key}"))
            display(figure)


# --- one notebook: execute, render ---------------------------------------------------------------------
@dataclass
class NotebookJob:
    """One notebook run: ``source`` (a file in ``notebooks/``) executed with ``parameters`` as ``name``."""

    name: str
    source: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    title: str = ""


@dataclass
class NotebookResult:
    """What became of a ``NotebookJob``: status "ok" or "failed", the error line, paths and seconds."""

    name: str
    title: str
    status: str
    error: str = ""
    ipynb: Optional[Path] = None
    html: Optional[Path] = None
    seconds: float = 0.0
    records: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status, "error": self.error,
                "ipynb": None if self.ipynb is None else self.ipynb.name,
                "html": None if self.html is None else self.html.name,
                "seconds": round(self.seconds, 2), "records": self.records}


def declared_parameters(source: str | Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``; error if there is no such cell."""
    import papermill

    declared = papermill.inspect_notebook(str(source))
    if not declared:
        raise ValueError(f"{source}: no cell tagged 'parameters' (papermill needs one)")
    return set(declared)


def execute_notebook(job: NotebookJob, out_dir: str | Path, kernel: str = KERNEL,
                     timeout_s: Optional[float] = None) -> NotebookResult:
    """Execute ``job`` with papermill into ``out_dir/<name>.ipynb``; never raises for notebook errors.

    Only parameters the notebook declares are passed, so one pool of report parameters serves every
    notebook. A cell that raises gives status "failed" with ``"<exception>: <message>"`` as the error;
    the partly executed notebook is still written (it shows where it stopped).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{job.name}.ipynb"
    title = job.title or job.name
    start = time.perf_counter()
    try:
        wanted = declared_parameters(job.source)
        parameters = {k: v for k, v in job.parameters.items() if k in wanted}
        papermill.execute_notebook(str(job.source), str(target), parameters=parameters, kernel_name=kernel,
                                   cwd=str(out_dir), progress_bar=False, log_output=False,
                                   execution_timeout=timeout_s)
        status, error = "ok", ""
    except PapermillExecutionError as err:
        status, error = "failed", f"{err.ename}: {err.evalue}"
    except Exception as err:  # noqa: BLE001 - a missing kernel or a broken file fails this notebook only
        status, error = "failed", f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    records = read_records(target) if target.exists() else {}
    return NotebookResult(job.name, title, status, error, target if target.exists() else None, None, seconds,
                          records)


_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}<script>{{ resources.plotly_js }}</script>{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
"""


def render_html(ipynb: str | Path, html_path: str | Path) -> Path:
    """Render an executed notebook to a self-contained HTML page (lab template, plotly.js inline).

    ``record`` outputs are dropped; widget views (no saved state in a batch run) show their text form.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    nb = nbformat.read(str(ipynb), as_version=4)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if RECORD_MIME not in o.get("data", {})]
            for output in cell.outputs:
                output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
    exporter = HTMLExporter(template_name="lab", template_file="cbat_offline.html.j2",
                            extra_loaders=[jinja2.DictLoader({"cbat_offline.html.j2": _OFFLINE_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb, resources={"plotly_js": get_plotlyjs()})
    html_path = Path(html_path)
    write_text(html_path, body)
    return html_path


# --- the index ----------------------------------------------------------------------------------------
_INDEX_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
td.time{white-space:nowrap}.ok{color:#1a7f37;font-weight:bold}.failed{color:#cf222e;font-weight:bold}pre{white-space:pre-wrap;margin:0}"""


def write_index(out_dir: str | Path, results: Sequence[NotebookResult], stage_seconds: dict[str, float],
                parameters: dict[str, Any], title: str = "CBAT Lab report") -> Path:
    """Write ``index.html`` (every notebook with its status, time, links and error) and ``report.json``."""
    out_dir = Path(out_dir)
    rows = []
    for r in results:
        link = f'<a href="{html.escape(r.html.name)}">{html.escape(r.title)}</a>' if r.html else html.escape(r.title)
        source = f' (<a href="{html.escape(r.ipynb.name)}">ipynb</a>)' if r.ipynb else ""
        rows.append(f'<tr><td>{link}{source}</td><td class="{r.status}">{r.status}</td>'
                    f'<td class="time">{r.seconds:.1f} s</td><td><pre>{html.escape(r.error)}</pre></td></tr>')
    stages = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f} s</td></tr>" for k, v in stage_seconds.items())
    n_failed = sum(r.status == "failed" for r in results)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_INDEX_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(results)} notebooks, {n_failed} failed.</p>"
            "<table><tr><th>notebook</th><th>status</th><th>time</th><th>error</th></tr>"
            f'{"".join(rows)}</table><h2>Stages</h2><table>{stages}</table>'
            f"<h2>Parameters</h2><pre>{html.escape(json.dumps(parameters, indent=2, default=str))}</pre>"
            "</body></html>")
    index = out_dir / "index.html"
    write_text(index, page)
    summary = {"title": title, "parameters": parameters, "stage_seconds": stage_seconds,
               "notebooks": [r.to_dict() for r in results]}
    write_text(out_dir / "report.json", json.dumps(summary, indent=2, default=str))
    return index


def run_notebooks(jobs: Iterable[NotebookJob], out_dir: str | Path, kernel: str = KERNEL,
                  timeout_s: Optional[float] = None,
                  on_result: Optional[Callable[[NotebookResult], None]] = None) -> list[NotebookResult]:
    """Execute each job in turn (a failure never stops the next one)."""
    results = []
    for job in jobs:
        results.append(execute_notebook(job, out_dir, kernel=kernel, timeout_s=timeout_s))
        if on_result is not None:
            on_result(results[-1])
    return results


def render_all(results: Sequence[NotebookResult], out_dir: str | Path) -> None:
    """Render every executed notebook next to it; failed ones too (the page shows the error)."""
    for result in results:
        if result.ipynb is None:
            continue
        try:
            result.html = render_html(result.ipynb, Path(out_dir) / f"{result.name}.html")
        except Exception as err:  # noqa: BLE001 - an unrenderable notebook must not stop the others
            result.status = "failed"
            result.error = result.error or f"rendering failed: {type(err).__name__}: {err}"


def log(message: str) -> None:
    """Progress line on stderr (stdout stays free for results)."""
    print(message, file=sys.stderr, flush=True)


# --- the batch report ---------------------------------------------------------------------------------
@dataclass
class ReportParams:
    """What ``cbat report`` runs; from the CLI and/or a YAML file (``from_file``).

    Attributes
    ----------
    task : synthetic task of the sweep (``cbat.data.TASKS``).
    variants, seeds : the sweep's variants and seeds (None: the sweep's defaults).
    device : "auto", "cpu", "cuda" or "cuda:<i>", for the sweep and the notebooks.
    quick : the small CPU default (the quick sweep, small notebook sizes).
    sweep_dir : reuse this sweep directory (default ``<out>/sweep``; finished runs are never redone).
    workers : local sweep worker processes (None: 2, or 1 on a one-core machine).
    sweep : further ``cbat.sweep.SweepSpec`` fields, e.g. ``{"data": {...}, "settings": {"epochs": 2}}``.
    notebook_timeout_s : limit per notebook cell execution (None: no limit).
    notebooks : per-notebook parameter overrides, ``{notebook stem: {parameter: value}}``.
    """

    task: str = "grammar"
    variants: Optional[list[str]] = None
    seeds: Optional[list[int]] = None
    device: str = "auto"
    quick: bool = False
    sweep_dir: Optional[str] = None
    workers: Optional[int] = None
    sweep: dict[str, Any] = field(default_factory=dict)
    notebook_timeout_s: Optional[float] = None
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "ReportParams":
        """Read a YAML mapping of these fields; ``overrides`` (e.g. CLI flags that were given) win."""
        import yaml

        from cbat.config import check_keys

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: report parameters file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
        check_keys(cls, data, str(path), ValueError, noun="report parameter")
        if isinstance(data.get("notebooks"), dict) and not all(isinstance(v, dict) for v in data["notebooks"].values()):
            raise ValueError(f"{path}: field 'notebooks' must map notebook names to parameter mappings")
        for name in ("notebooks", "sweep"):
            if not isinstance(data.get(name, {}), dict):
                raise ValueError(f"{path}: field {name!r} must be a mapping")
        data.update(overrides)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)


def sweep_spec(params: ReportParams):
    """The ``SweepSpec`` of a report: the quick sweep (``--quick``) or the full default, with the task,
    variants, seeds, device and ``params.sweep`` fields applied."""
    from cbat.data import TASKS
    from cbat.sweep import SweepSpec, quick_sweep_spec

    if params.task not in TASKS:
        raise ValueError(f"report parameter 'task' is {params.task!r}; expected one of {list(TASKS)}")
    base = quick_sweep_spec() if params.quick else SweepSpec()
    fields_ = dict(params.sweep)
    user_data = fields_.pop("data", {})
    # The user's files (sweep.data.path) replace the synthetic task rather than merge with it.
    data = dict(user_data) if "path" in user_data else {**base.data, "task": params.task, **user_data}
    settings = {**base.settings, "device": params.device, "progress": False, **fields_.pop("settings", {})}
    chosen = {"variants": params.variants, "seeds": params.seeds}
    fields_.update({k: v for k, v in chosen.items() if v is not None})
    try:
        spec = SweepSpec(**{**base.to_dict(), **fields_, "data": data, "settings": settings})
    except TypeError as err:
        raise ValueError(f"report parameter 'sweep': {err}") from None
    spec.variant_table()  # unknown variant names fail here, before anything is written
    return spec


def run_sweep(params: ReportParams, sweep_dir: str | Path):
    """Run the report's sweep into ``sweep_dir``; finished runs there are reused, not retrained.

    Returns the results table (``cbat.sweep.run_sweep``)."""
    from cbat import sweep as sweeps

    workers = params.workers or min(2, os.cpu_count() or 1)
    return sweeps.run_sweep(sweep_spec(params), sweep_dir, workers=workers)


def ensure_sweep(sweep_dir: Optional[str | Path], output_dir: str | Path, **params: Any) -> Path:
    """``sweep_dir`` when given, else run the sweep of ``ReportParams(**params)`` into ``output_dir/sweep``
    (finished runs reused) and return that folder. For notebooks that either load or run a sweep."""
    if sweep_dir is not None:
        return Path(sweep_dir)
    target = Path(output_dir) / "sweep"
    run_sweep(ReportParams(**params), target)
    return target


# Notebook sizes for ``--quick`` (CPU minutes, not hours); the notebooks' own defaults suit interactive use.
QUICK_NOTEBOOK_PARAMETERS: dict[str, dict[str, Any]] = {
    "quickstart": {"n_pairs": 400, "epochs": 2},
    "attention_explorer": {"n_samples": 4},
    "ablation_report": {"n_boot": 300},
    "loop_attribution": {"n_loops": 4},
}
# Known notebooks in report order; any other notebook in the folder runs once after them.
NOTEBOOK_ORDER = ("quickstart", "ablation_report", "gate_explorer", "attention_explorer", "loop_attribution")
TITLES = {"quickstart": "Quickstart: baseline vs cbat_v2", "ablation_report": "Ablation report and verdicts",
          "gate_explorer": "Gate explorer", "attention_explorer": "Attention explorer",
          "loop_attribution": "Loop attribution"}


def plan_notebooks(params: ReportParams, sweep_dir: Path, out_dir: Path,
                   notebook_dir: Path = NOTEBOOK_DIR) -> list[NotebookJob]:
    """One job per notebook in ``notebook_dir``; the attention explorer once per variant with attention.

    Every job gets the same parameter pool (the notebook keeps the ones it declares), then the quick
    sizes, then the user's per-notebook overrides.
    """
    from diagnostics.io import load_sweep

    from cbat.train import TrainSettings

    sweep = load_sweep(sweep_dir)
    device = TrainSettings(device=params.device).resolved_device()  # notebooks get a concrete torch device
    # Notebooks run with their output folder as working directory, so paths they receive must be absolute.
    pool = {"sweep_dir": str(Path(sweep_dir).resolve()), "task": params.task, "device": device,
            "variants": params.variants, "seeds": params.seeds, "output_dir": str(Path(out_dir).resolve()),
            "quick": params.quick}
    pool = {k: v for k, v in pool.items() if v is not None}  # unset: the notebook's own default stands
    sources = sorted(notebook_dir.glob("*.ipynb"),
                     key=lambda p: (NOTEBOOK_ORDER.index(p.stem) if p.stem in NOTEBOOK_ORDER else len(NOTEBOOK_ORDER),
                                    p.stem))
    jobs = []
    for source in sources:
        parameters = {**pool, **(QUICK_NOTEBOOK_PARAMETERS.get(source.stem, {}) if params.quick else {}),
                      **params.notebooks.get(source.stem, {})}
        title = TITLES.get(source.stem, source.stem.replace("_", " ").capitalize())
        if source.stem == "attention_explorer":
            for run in _first_run_per_variant(sweep):
                jobs.append(NotebookJob(f"{source.stem}__{run['variant']}", source,
                                        {**parameters, "run_id": run["run_id"]}, f"{title}: {run['variant']}"))
        else:
            jobs.append(NotebookJob(source.stem, source, parameters, title))
    return jobs


def _first_run_per_variant(sweep) -> list[dict]:
    """The lowest-seed finished run of each variant that has attention (the no_cross control has none)."""
    runs = sweep.ok().drop_duplicates("variant")
    return [row for row in runs.to_dict("records") if sweep.config(row["run_id"]).get("interaction") != "none"]


def build_report(out: str | Path, params: ReportParams, notebook_dir: str | Path = NOTEBOOK_DIR,
                 kernel: str = KERNEL) -> list[NotebookResult]:
    """The whole batch: sweep (finished runs reused) -> notebooks -> HTML -> ``index.html``.

    Prints the time of each stage on stderr and records it in ``report.json``.

    Returns
    -------
    list of NotebookResult, in index order.
    """
    out, notebook_dir = Path(out), Path(notebook_dir)
    sweep_spec(params)  # bad parameters fail before anything is written
    if not any(notebook_dir.glob("*.ipynb")):
        raise ValueError(f"{notebook_dir}: no notebooks (*.ipynb); run from a source checkout (pip install -e .)")
    unknown = sorted(set(params.notebooks) - {p.stem for p in notebook_dir.glob("*.ipynb")})
    if unknown:
        raise ValueError(f"report parameter 'notebooks' names {unknown}, which are not notebooks in {notebook_dir}")
    out.mkdir(parents=True, exist_ok=True)
    stage_seconds: dict[str, float] = {}

    def timed(stage: str, work):
        log(f"[report] {stage} ...")
        start = time.perf_counter()
        value = work()
        stage_seconds[stage] = time.perf_counter() - start
        log(f"[report] {stage}: {stage_seconds[stage]:.1f} s")
        return value

    sweep_dir = Path(params.sweep_dir) if params.sweep_dir else out / "sweep"
    timed("sweep", lambda: run_sweep(params, sweep_dir))
    jobs = plan_notebooks(params, sweep_dir, out, notebook_dir)

    def report_one(result: NotebookResult) -> None:
        log(f"[report]   {result.name}: {result.status} ({result.seconds:.1f} s){'  ' + result.error if result.error else ''}")

    results = timed("execute", lambda: run_notebooks(jobs, out, kernel, params.notebook_timeout_s, report_one))
    timed("render", lambda: render_all(results, out))
    stage_seconds["total"] = sum(stage_seconds.values())
    index = write_index(out, results, stage_seconds, params.to_dict())
    log(f"[report] total: {stage_seconds['total']:.1f} s -> {index}")
    return results

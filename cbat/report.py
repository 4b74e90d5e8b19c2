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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "python3"
RECORD_MIME = "application/vnd.cbat.record+json"
STATUSES = ("ok", "failed")


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


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be shared
    os.replace(tmp, path)


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
    _write_atomic(html_path, body)
    return html_path


# --- the index ----------------------------------------------------------------------------------------
_INDEX_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.ok{color:#1a7f37;font-weight:bold}.failed{color:#cf222e;font-weight:bold}pre{white-space:pre-wrap;margin:0}"""


def write_index(out_dir: str | Path, results: Sequence[NotebookResult], stage_seconds: dict[str, float],
                parameters: dict[str, Any], title: str = "CBAT Lab report") -> Path:
    """Write ``index.html`` (every notebook with its status, time, links and error) and ``report.json``."""
    out_dir = Path(out_dir)
    rows = []
    for r in results:
        link = f'<a href="{html.escape(r.html.name)}">{html.escape(r.title)}</a>' if r.html else html.escape(r.title)
        source = f' (<a href="{html.escape(r.ipynb.name)}">ipynb</a>)' if r.ipynb else ""
        rows.append(f'<tr><td>{link}{source}</td><td class="{r.status}">{r.status}</td>'
                    f'<td>{r.seconds:.1f} s</td><td><pre>{html.escape(r.error)}</pre></td></tr>')
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
    _write_atomic(index, page)
    summary = {"title": title, "parameters": parameters, "stage_seconds": stage_seconds,
               "notebooks": [r.to_dict() for r in results]}
    _write_atomic(out_dir / "report.json", json.dumps(summary, indent=2, default=str))
    return index


def run_notebooks(jobs: Iterable[NotebookJob], out_dir: str | Path, kernel: str = KERNEL,
                  timeout_s: Optional[float] = None,
                  on_result: Optional[Callable[[NotebookResult], None]] = None) -> list[NotebookResult]:
    """Execute and render each job in turn; a failed notebook is rendered too (it shows the error)."""
    results = []
    for job in jobs:
        result = execute_notebook(job, out_dir, kernel=kernel, timeout_s=timeout_s)
        if result.ipynb is not None:
            try:
                result.html = render_html(result.ipynb, Path(out_dir) / f"{job.name}.html")
            except Exception as err:  # noqa: BLE001 - an unrenderable notebook must not stop the others
                result.status = "failed"
                result.error = result.error or f"rendering failed: {type(err).__name__}: {err}"
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def log(message: str) -> None:
    """Progress line on stderr (stdout stays free for results)."""
    print(message, file=sys.stderr, flush=True)

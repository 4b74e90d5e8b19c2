"""Batch reports: papermill runs the parameterised notebooks, nbconvert renders them, an index links them.

The notebooks in ``notebooks/`` stay thin; this module holds what they share with the batch job:

- ``setup_notebook()`` makes plotly figures carry both the plotly mimetype (interactive in JupyterLab)
  and plain HTML without a plotly.js copy (with the figure's ``captioned`` line under it), and lets
  tables show whole cells; ``render_html`` makes each page load the report's one local ``plotly.min.js``,
  so the HTML works offline (no CDN for plotly, require.js, MathJax or mermaid);
- ``glue(name, value)`` stores a JSON value in a notebook output (scrapbook's name for it) and
  ``read_glue(path)`` reads them back, so tests and the index can check what a notebook found;
- ``project_path`` / ``find_sweep`` resolve a notebook's default paths from wherever it runs (its own
  folder in JupyterLab, the repository root, the report folder under papermill);
- ``static_output()`` tells notebook code that it runs in a batch job (no frontend: widgets would only
  print their repr, and displaying them can stall nbclient, jupyter/nbclient#312);
- ``execute_notebook`` / ``render_html`` / ``write_index`` and ``build_report`` (sweep -> notebooks ->
  HTML -> index, timed per stage). A notebook that raises, times out or loses its kernel is marked failed
  with its error and cell; the rest still run and render, and its page opens with a banner saying so.
"""
from __future__ import annotations

import html
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from cbat import interrupts, rundir
from cbat.config import PRESETS
from cbat.rundir import write_text

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
KERNEL = "python3"
GLUE_MIME = "application/vnd.cbat.glue+json"
STATIC_ENV = "CBAT_STATIC_OUTPUT"  # set by execute_notebook in the kernel's environment
PLOTLY_JS = "plotly.min.js"  # one copy per report folder; every page loads it
PAGE_CSS = "report.css"  # JupyterLab's page style (240 kB), also once per report folder
CELL_TIMEOUT_S = 600.0  # default limit per notebook cell: the batch job always ends
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# --- helpers called inside notebooks -----------------------------------------------------------------
def setup_notebook() -> None:
    """Select the ``cbat`` plotly renderer (plotly mimetype for JupyterLab plus script-free HTML with the
    figure's caption for nbconvert; the page loads plotly.js from ``render_html``'s one local copy) and
    let tables show whole cells (pandas cuts text at 50 characters by default)."""
    import pandas as pd
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class OfflineHtmlRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            html_text = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False,
                                    default_width="100%", default_height=480, validate=False)
            caption = (fig_dict.get("layout", {}).get("meta") or {}).get("caption") \
                if isinstance(fig_dict.get("layout", {}).get("meta"), dict) else None
            if caption:
                html_text += f'<p class="cbat-caption">{html.escape(caption)}</p>'
            return {"application/vnd.plotly.v1+json": fig_dict, "text/html": html_text}

    pio.renderers["cbat"] = OfflineHtmlRenderer()
    pio.renderers.default = "cbat"
    pd.set_option("display.max_colwidth", None)


def captioned(figure, caption: str):
    """``figure`` (plotly) with a one-line ``caption`` saying what to look at; the report prints it under
    the figure. Returns the figure, so a cell can end with ``captioned(fig, "...")``."""
    meta = figure.layout.meta if isinstance(figure.layout.meta, dict) else {}
    figure.update_layout(meta={**meta, "caption": caption})
    return figure


def static_output() -> bool:
    """True inside a batch execution (``execute_notebook``): show figures, not widgets."""
    return os.environ.get(STATIC_ENV) == "1"


def project_path(path: str | Path) -> Path:
    """``path`` as given when it exists (absolute, or relative to the working directory), else relative to
    the project root, so a notebook's default ``"reports/default/sweep"`` resolves from ``notebooks/``
    and from the root alike. A path found nowhere comes back root-relative, for the caller's message."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return PROJECT_ROOT / path


def find_sweep(sweep_dir: Optional[str | Path], fallback_out: str | Path = "reports/notebooks",
               **params: Any) -> Path:
    """The sweep folder a notebook reads: ``sweep_dir`` resolved by ``project_path`` when it holds a sweep;
    else (None, or not there yet) the quick sweep of ``ReportParams(quick=True, **params)`` run into
    ``fallback_out/sweep`` (finished runs reused), with a message saying so."""
    if sweep_dir is not None:
        found = project_path(sweep_dir)
        if found.is_dir():
            return found
        print(f"{sweep_dir}: no sweep there (looked from {Path.cwd()} and {PROJECT_ROOT}; `make report` "
              "writes reports/default/sweep)")
    out = project_path(fallback_out)
    print(f"using the quick sweep in {out / 'sweep'}: training what is missing (CPU minutes the first time)")
    return ensure_sweep(None, out, **{"quick": True, **params})


def glue(name: str, value: Any) -> Any:
    """Store ``value`` (JSON-serialisable) under ``name`` in the current cell's outputs and return it.

    The output carries only a private mimetype, so it is invisible in JupyterLab and dropped from the
    rendered HTML; ``read_glue`` finds it in the executed notebook. NaN and infinities are stored as null: the
    kernel's serialiser is strict JSON and would print a warning into the page and store the string "nan".
    """
    from IPython.display import display

    stored = json_safe(value)
    json.dumps(stored, allow_nan=False)  # fail here, with the name, rather than in the kernel's serialiser
    display({GLUE_MIME: {"name": name, "value": stored}}, raw=True)
    return value


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, missing numbers of a table's records) replaced by None."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_glue(notebook: str | Path | dict) -> dict[str, Any]:
    """All ``glue`` values of an executed notebook (a path or its JSON), by name; a later value wins."""
    # Plain JSON: nbformat's import costs seconds (jsonschema), too much for a helper notebooks import.
    nb = notebook if isinstance(notebook, dict) else json.loads(Path(notebook).read_text(encoding="utf-8"))
    values: dict[str, Any] = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if GLUE_MIME in data:
                values[data[GLUE_MIME]["name"]] = data[GLUE_MIME]["value"]
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
                display(captioned(figure, f"The evidence behind {row.id}'s verdict ({key.split('.', 1)[-1]}): "
                                          f"{row.claim}"))
                shown.add(key)
    for key, figure in assessment.figures.items():
        if key not in shown:
            display(Markdown(f"### {key}"))
            display(captioned(figure, f"{key}: shared evidence for several hypotheses"))


# --- one notebook: execute, render ---------------------------------------------------------------------
@dataclass
class NotebookJob:
    """One notebook run: ``source`` (a file in ``notebooks/``) executed with ``parameters`` as ``name``, its
    kernel working in ``cwd`` (None: the output folder). ``cost`` ranks the expected run time: side by side,
    the costliest jobs start first so the short ones fill in beside them."""

    name: str
    source: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    cwd: Optional[Path] = None
    cost: float = 1.0


@dataclass
class NotebookResult:
    """What became of a ``NotebookJob``: status "ok" or "failed", the error line and the cell it came from
    (1-based index in the executed notebook, None when no cell ran), paths, seconds and glued values."""

    name: str
    title: str
    status: str
    error: str = ""
    ipynb: Optional[Path] = None
    html: Optional[Path] = None
    seconds: float = 0.0
    glued: dict[str, Any] = field(default_factory=dict)
    cell: Optional[int] = None
    cell_code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status, "error": self.error,
                "cell": self.cell, "cell_code": self.cell_code,
                "ipynb": None if self.ipynb is None else self.ipynb.name,
                "html": None if self.html is None else self.html.name,
                "html_bytes": self.html.stat().st_size if self.html is not None and self.html.exists() else None,
                "seconds": round(self.seconds, 2), "glued": self.glued}


def notebook_defaults(source: str | Path) -> dict[str, Any]:
    """Names assigned in the notebook's cell tagged ``parameters`` with their defaults (the literal's value, or
    its source text where the default is an expression); error if there is no such cell."""
    import ast

    import papermill

    declared = papermill.inspect_notebook(str(source))
    if not declared:
        raise ValueError(f"{source}: no cell tagged 'parameters' (papermill needs one)")
    defaults = {}
    for name, info in declared.items():
        try:
            defaults[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            defaults[name] = info["default"]
    return defaults


def declared_parameters(source: str | Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``; error if there is no such cell."""
    return set(notebook_defaults(source))


# The value kinds a default admits (a float default takes an integer too; a bool is never a number here).
_VALUE_KINDS = {bool: (bool,), int: (int,), float: (int, float), str: (str,), list: (list, tuple), dict: (dict,)}


def check_notebook_overrides(overrides: dict[str, dict[str, Any]], notebook_dir: str | Path) -> None:
    """Refuse, before any work, a per-notebook override that the notebook would ignore or choke on: a name its
    parameters cell does not assign (papermill would drop it silently), or a value of another kind than the
    default's (a word for a number, a number for a list). A None default admits any value."""
    for notebook, values in overrides.items():
        defaults = notebook_defaults(Path(notebook_dir) / f"{notebook}.ipynb")
        unknown = sorted(set(values) - set(defaults))
        if unknown:
            raise ValueError(f"report parameter 'notebooks.{notebook}': {unknown} not among the parameters of "
                             f"{notebook}.ipynb ({sorted(defaults)})")
        for name, value in values.items():
            kinds = _VALUE_KINDS.get(type(defaults[name]))
            if kinds is None or value is None:
                continue
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"report parameter 'notebooks.{notebook}.{name}': {value!r}; expected "
                                 f"{type(defaults[name]).__name__} (the notebook's default is {defaults[name]!r})")


def execute_notebook(job: NotebookJob, out_dir: str | Path, kernel: str = KERNEL,
                     timeout_s: Optional[float] = CELL_TIMEOUT_S, threads: Optional[int] = None) -> NotebookResult:
    """Execute ``job`` with papermill into ``out_dir/<name>.ipynb``; never raises for notebook errors.

    Only parameters the notebook declares are passed, so one pool of report parameters serves every
    notebook. The kernel runs in ``job.cwd`` (default ``out_dir``) with ``static_output()`` true. A cell that
    raises, runs past ``timeout_s`` (None: no limit) or loses its kernel gives status "failed" with
    ``"<exception>: <message>"`` and the cell; the partly executed notebook is still written (it shows
    where it stopped). Papermill runs in a child process under a watchdog (every cell's limit plus a
    minute), so even a hang outside a cell (kernel start or shutdown) cannot stall the caller. ``threads``
    caps the kernel's CPU threads (OpenMP/MKL, which torch follows; None: the kernel's own default).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{job.name}.ipynb"
    title = job.title or job.name
    start = time.perf_counter()
    try:
        wanted = declared_parameters(job.source)
        n_cells = sum(c["cell_type"] == "code" for c in json.loads(Path(job.source).read_text())["cells"])
    except Exception as err:  # noqa: BLE001 - a broken file fails this notebook only
        return NotebookResult(job.name, title, "failed", f"{type(err).__name__}: {err}")
    request = {"source": str(job.source), "target": str(target), "kernel": kernel, "timeout_s": timeout_s,
               "cwd": str(job.cwd or out_dir), "parameters": {k: v for k, v in job.parameters.items() if k in wanted}}
    wall_s = None if timeout_s is None else timeout_s * (n_cells + 1) + 60
    status, error = _execute_in_child(request, wall_s, threads)
    seconds = time.perf_counter() - start
    nb = json.loads(target.read_text(encoding="utf-8")) if target.exists() else None
    cell, code = (None, "") if nb is None or status == "ok" else _stopped_cell(nb)
    glued = read_glue(nb) if nb is not None else {}
    return NotebookResult(job.name, title, status, error, target if nb is not None else None, None, seconds,
                          glued, cell, code)


# Notebook children now running, so an interrupted report stops them instead of waiting for them to finish.
_RUNNING: set = set()
_RUNNING_LOCK = threading.Lock()
CHILD_STOP_S = 15.0  # a stopped child's time to shut its kernel down before it is killed


def _execute_in_child(request: dict[str, Any], wall_s: Optional[float],
                      threads: Optional[int] = None) -> tuple[str, str]:
    """Run ``_child_main`` on ``request`` in a fresh process; (status, error). Past ``wall_s`` the child
    gets SIGTERM (it shuts its kernel down), then SIGKILL after 15 s. The kernel inherits the child's
    environment, so ``threads`` reaches it as OMP_NUM_THREADS/MKL_NUM_THREADS."""
    env = {**os.environ, STATIC_ENV: "1"}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        answer = Path(tmp) / "answer.json"
        child = subprocess.Popen([sys.executable, "-c", "from cbat.report import _child_main; _child_main()",
                                  json.dumps(request, default=str), str(answer)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        with _RUNNING_LOCK:
            _RUNNING.add(child)
        try:
            _, stderr = child.communicate(timeout=wall_s)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGTERM)
            try:
                child.communicate(timeout=CHILD_STOP_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
            return "failed", f"Timeout: the notebook ran past its {wall_s:.0f} s limit and was stopped"
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(child)
        if answer.exists():
            reply = json.loads(answer.read_text())
            return reply["status"], reply["error"]
        last = (stderr or "").strip().splitlines()[-1:] or ["no message"]
        return "failed", f"the notebook process died (exit code {child.returncode}): {last[0]}"


def _child_main() -> None:
    """Body of the child process: papermill on the request in argv[1], (status, error) to argv[2]."""
    # jsonschema (under nbformat) imports rfc3987_syntax when it is installed, which builds a grammar for about
    # 2 s (python-jsonschema/jsonschema#1428); the notebook schema has no IRI format, so this child goes without.
    sys.modules.setdefault("rfc3987_syntax", None)
    import papermill
    from papermill.exceptions import PapermillExecutionError

    def stop(signum, frame):  # the watchdog's SIGTERM: unwind so nbclient shuts the kernel down
        raise TimeoutError("stopped by the report's watchdog")

    signal.signal(signal.SIGTERM, stop)
    request, answer = json.loads(sys.argv[1]), Path(sys.argv[2])
    try:
        papermill.execute_notebook(request["source"], request["target"], parameters=request["parameters"],
                                   kernel_name=request["kernel"], cwd=request["cwd"], progress_bar=False,
                                   log_output=False, execution_timeout=request["timeout_s"],
                                   # the cells have written everything; a torch kernel's own exit (interpreter
                                   # teardown) takes 2-3 s more per notebook
                                   shutdown_kernel="immediate")
        status, error = "ok", ""
    except PapermillExecutionError as err:
        status, error = "failed", f"{err.ename}: {err.evalue}"
    except TimeoutError as err:  # nbclient's CellTimeoutError is one; so is the watchdog's SIGTERM
        limit = request["timeout_s"]
        status = "failed"
        error = f"Timeout: a cell ran past the {limit:g} s cell limit" if limit else f"Timeout: {err}"
    except Exception as err:  # noqa: BLE001 - a dead kernel, a missing kernel: this notebook fails
        status, error = "failed", f"{type(err).__name__}: {err}"
    answer.write_text(json.dumps({"status": status, "error": error.strip().splitlines()[0] if error else ""}))


def _stopped_cell(nb: dict) -> tuple[Optional[int], str]:
    """Where execution stopped, as its 1-based index in the source notebook and its first line of code:
    the cell that raised (papermill marks it), is still running (watchdog) or started and never got the
    kernel's reply (timeout, dead kernel; nbclient records the reply's time when it comes)."""
    added = ("papermill-error-cell-tag", "injected-parameters")  # cells papermill adds to the source
    cells = [c for c in nb["cells"] if not set(added) & set(c.get("metadata", {}).get("tags", []))]
    for index, cell in enumerate(cells, start=1):
        mark, timing = cell.get("metadata", {}).get("papermill", {}), cell.get("metadata", {}).get("execution", {})
        unanswered = mark.get("start_time") and "shell.execute_reply" not in timing
        if mark.get("exception") or mark.get("status") in ("failed", "running") or unanswered:
            source = "".join(cell.get("source", ""))
            return index, next((line for line in source.splitlines() if line.strip()), "")
    return None, ""


_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}<script src="{{ resources.plotly_src }}" charset="utf-8"></script>{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block extra_css %}<style>{{ resources.cbat_css }}</style>{% endblock extra_css %}
{% block notebook_css %}<link rel="stylesheet" href="{{ resources.css_href }}">{% endblock notebook_css %}
{%- block body_header -%}{{ super() }}{{ resources.cbat_header }}{%- endblock body_header -%}
"""
# Report pages: tables wrap long text instead of cutting or scrolling it, captions sit under figures; the
# rest is what the lab template's notebook_css block adds to its style sheets.
_PAGE_CSS = """a.anchor-link{display:none}.jp-InputArea,.jp-InputArea-editor{overflow:hidden}.jp-Collapser{display:none}
.jp-OutputArea-output pre{line-height:inherit;font-family:inherit}
.jp-RenderedText pre{color:var(--jp-content-font-color1);font-size:var(--jp-code-font-size)}
.jp-RenderedHTMLCommon td,.jp-RenderedHTMLCommon th{white-space:normal;max-width:40em;text-align:left}
.cbat-caption{font-style:italic;color:#444;margin:.2em 0 1.2em}
.cbat-banner{border:2px solid #cf222e;background:#ffebe9;padding:.8em 1em;margin:1em 0;font-family:system-ui,sans-serif}
.cbat-source{font-family:system-ui,sans-serif;color:#555;margin:.5em 0 1em}"""
_WIDGET_NOTE = ("<p><i>Interactive controls: open the notebook in JupyterLab to use them; "
                "this page shows the figures they drive.</i></p>")


def write_plotly_js(folder: str | Path) -> Path:
    """The report's one local copy of plotly.js (``PLOTLY_JS``), written when missing or outdated."""
    from plotly.offline import get_plotlyjs

    path = Path(folder) / PLOTLY_JS
    text = get_plotlyjs()
    if not path.exists() or path.stat().st_size != len(text.encode("utf-8")):
        write_text(path, text)
    return path


def write_page_css(folder: str | Path) -> Path:
    """The report's one copy of the lab template's style sheets (``PAGE_CSS``), written when missing."""
    from nbconvert import HTMLExporter

    path = Path(folder) / PAGE_CSS
    if not path.exists():
        sheets = []
        for name in ("index.css", "theme-light.css"):
            found = next((Path(d) / "static" / name for d in HTMLExporter(template_name="lab").template_paths
                          if (Path(d) / "static" / name).is_file()), None)
            if found is None:
                raise FileNotFoundError(f"nbconvert's lab template has no static/{name}; reinstall nbconvert")
            sheets.append(found.read_text(encoding="utf-8"))
        write_text(path, "\n".join(sheets))
    return path


def render_html(ipynb: str | Path, html_path: str | Path, failure: Optional[NotebookResult] = None,
                show_code: bool = False) -> Path:
    """Render an executed notebook to an offline HTML page (lab template) that loads ``plotly.min.js``
    and ``report.css`` from its own folder (written there once).

    Input code is left out unless ``show_code`` (a line links the executed notebook instead); ``glue``
    outputs and papermill's own error cell are dropped; a widget output becomes a one-line note, never
    its text repr. With ``failure`` (a failed result) the page opens with a banner naming the error and
    the cell.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    ipynb, html_path = Path(ipynb), Path(html_path)
    nb = nbformat.read(str(ipynb), as_version=4)
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [_static_output(o) for o in cell.outputs if GLUE_MIME not in o.get("data", {})]
    header = "" if show_code else (f'<p class="cbat-source">Code hidden; the executed notebook: '
                                   f'<a href="{html.escape(ipynb.name)}">{html.escape(ipynb.name)}</a></p>')
    if failure is not None and failure.status == "failed":
        where = (f"in cell {failure.cell} (<code>{html.escape(failure.cell_code)}</code>)" if failure.cell
                 else "before any cell ran")
        header = (f'<div class="cbat-banner" role="alert"><b>This notebook failed {where}:</b> '
                  f"<code>{html.escape(failure.error)}</code>. What follows stops there.</div>") + header
    exporter = HTMLExporter(template_name="lab", template_file="cbat_offline.html.j2", exclude_input=not show_code,
                            exclude_input_prompt=not show_code, exclude_output_prompt=not show_code,
                            extra_loaders=[jinja2.DictLoader({"cbat_offline.html.j2": _OFFLINE_TEMPLATE})])
    plotly_js, css = write_plotly_js(html_path.parent), write_page_css(html_path.parent)
    body, _ = exporter.from_notebook_node(nb, resources={"plotly_src": plotly_js.name, "css_href": css.name,
                                                         "cbat_css": _PAGE_CSS, "cbat_header": header})
    write_text(html_path, body)
    return html_path


def _static_output(output):
    """A widget view (no saved state in a batch run) as a note instead of its ``VBox(...)`` repr."""
    data = output.get("data", {})
    if WIDGET_MIME in data:
        output["data"] = {"text/html": _WIDGET_NOTE}
    return output


# --- the index ----------------------------------------------------------------------------------------
_INDEX_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
td.time,td.size{white-space:nowrap}.ok{color:#1a7f37;font-weight:bold}.failed{color:#cf222e;font-weight:bold}pre{white-space:pre-wrap;margin:0}"""


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.0f} kB"


def folder_bytes(folder: str | Path, exclude: Sequence[str] = ("sweep",)) -> int:
    """Bytes of the report folder's files, without the sweep (run data, not the report)."""
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.rglob("*")
               if p.is_file() and p.relative_to(folder).parts[0] not in exclude)


def _at_a_glance(results: Sequence[NotebookResult]) -> str:
    """The first thing a reader sees: what was trained, which variants learnt, which kind of positive each
    variant finds (per-cause AUROC), how many planted causes the verdicts recovered and the verdicts (values the
    ablation report glued; empty if it did not run)."""
    glued = next((r.glued for r in results if "learnt_status" in r.glued), None)
    if glued is None:
        return ""
    rows = "".join(f"<tr><td>{html.escape(str(row['variant']))}</td><td>{html.escape(str(row['status']))}</td>"
                   f"<td>{_number(row['median_auroc'], 3)}</td></tr>" for row in glued["learnt_status"])
    parts = ["<h2>At a glance</h2>"]
    if "settings" in glued:
        spec = html.escape(json.dumps(glued["settings"], default=str))
        parts.append(f"<p>Trained: {html.escape(glued.get('settings_text', ''))}</p>"
                     f"<details><summary>the sweep's settings as stored</summary><code>{spec}</code></details>")
    parts.append("<table><tr><th>variant</th><th>did it learn?</th><th>median test AUROC</th></tr>"
                 f"{rows}</table>")
    if glued.get("cause_table"):
        # which kind of positive each variant finds or misses (a cause's positives against its matched negatives)
        causes = sorted({row["cause"] for row in glued["cause_table"]})
        by_variant: dict[str, dict[str, float]] = {}
        for row in glued["cause_table"]:
            by_variant.setdefault(row["variant"], {})[row["cause"]] = row["median_auroc"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in causes)
        unlearnt = {row["variant"] for row in glued["learnt_status"] if row["status"] == "not learnt"}
        body = "".join(f"<tr><td>{html.escape(v)}{' (not learnt)' if v in unlearnt else ''}</td>" + "".join(
            f"<td>{_number(values.get(c), 2)}</td>" for c in causes) + "</tr>" for v, values in by_variant.items())
        parts.append("<p>Median test AUROC per planted cause (its positives against its matched negatives):</p>"
                     f"<table><tr><th>variant</th>{head}</tr>{body}</table>")
        scored = {c: v for c, v in by_variant.get(NO_INTERACTION, {}).items() if _number(v, 2) != NO_NUMBER}
        if scored:
            parts.append(_no_interaction_note(scored))
    if "planted_recovered" in glued:
        found, tested = glued["planted_recovered"]
        rows = glued.get("expected_vs_found", [])
        if tested:
            parts.append(f"<p><b>{found} of {tested} planted causes recovered</b> by the verdicts (expected vs found "
                         f"in the ablation report){_recovery_list(rows)}</p>")
        elif rows:
            parts.append(f"<p>No planted cause could be tested{_recovery_list(rows)}.</p>")
        else:
            parts.append("<p>No planted truth in these data: expected vs found is skipped.</p>")
    if "verdicts" in glued:
        counts: dict[str, int] = {}
        # a hypothesis the sweep cannot judge (it lacks the variants) is not tested, not an inconclusive draw
        shown = [(row["id"], row["verdict"] if row.get("tested", True) else "not tested") for row in glued["verdicts"]]
        for _, verdict in shown:
            counts[verdict] = counts.get(verdict, 0) + 1
        parts.append("<p>Verdicts: " + ", ".join(f"{n} {html.escape(v)}" for v, n in counts.items()) + " ("
                     + ", ".join(f"{html.escape(i)} {html.escape(v)}" for i, v in shown) + ")</p>")
    return "".join(parts)


NO_INTERACTION = "no_cross"  # the preset without any interaction between the two sequences
NO_NUMBER = "n/a"  # a median of no finished run (every run of a variant failed; glued as null)


def _number(value: Any, digits: int) -> str:
    return NO_NUMBER if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _no_interaction_note(per_cause: dict[str, float], chance_band: float = 0.65) -> str:
    """What the no-interaction control's per-cause figures say: near chance on a cause means that cause needs
    the interaction; its pooled AUROC can still exceed 0.5 through negatives one sequence gives away."""
    cause, best = max(per_cause.items(), key=lambda item: item[1])
    if best <= chance_band:
        return (f"<p>{NO_INTERACTION} sees each sequence alone: it stays near chance on every planted cause (at "
                f"most {best:.2f}, {html.escape(cause)}), so each cause needs the interaction. What its pooled test "
                "AUROC holds above 0.5 comes from the easy negatives in the test set, whose enhancer alone gives them "
                "away.</p>")
    return (f"<p>{NO_INTERACTION} sees each sequence alone, yet reaches {best:.2f} on {html.escape(cause)}: "
            "those positives can be told from one sequence.</p>")


def _recovery_list(rows: Sequence[dict]) -> str:
    """": recovered ...; not recovered ... (expected X, found Y); not tested ..." from the expected-vs-found rows."""
    tested = [r for r in rows if r.get("tested", True)]
    hit = [f"{html.escape(r['check'])} ({html.escape(r['cause'])})" for r in tested if r["recovered"]]
    miss = [f"{html.escape(r['check'])} ({html.escape(r['cause'])}: expected {html.escape(r['expected'])}, found "
            f"{html.escape(r['found'])})" for r in tested if not r["recovered"]]
    untested = [f"{html.escape(r['check'])} ({html.escape(r['cause'])})" for r in rows if not r.get("tested", True)]
    said = ([f"recovered {', '.join(hit)}"] if hit else []) + ([f"not recovered {', '.join(miss)}"] if miss else []) \
        + ([f"not tested, the sweep lacks the variants they need: {', '.join(untested)}"] if untested else [])
    return ": " + "; ".join(said) if said else ""


def write_index(out_dir: str | Path, results: Sequence[NotebookResult], stage_seconds: dict[str, float],
                parameters: dict[str, Any], title: str = "CBAT Lab report") -> Path:
    """Write ``index.html`` (every notebook with its status, time, page size, links, error and cell) and
    ``report.json``."""
    out_dir = Path(out_dir)
    rows = []
    for r in results:
        link = f'<a href="{html.escape(r.html.name)}">{html.escape(r.title)}</a>' if r.html else html.escape(r.title)
        source = f' (<a href="{html.escape(r.ipynb.name)}">ipynb</a>)' if r.ipynb else ""
        size = _size(r.html.stat().st_size) if r.html is not None and r.html.exists() else ""
        error = r.error + (f"\n(cell {r.cell}: {r.cell_code})" if r.cell else "")
        rows.append(f'<tr><td>{link}{source}</td><td class="{r.status}">{r.status}</td>'
                    f'<td class="time">{r.seconds:.1f} s</td><td class="size">{size}</td>'
                    f"<td><pre>{html.escape(error)}</pre></td></tr>")
    stages = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f} s</td></tr>" for k, v in stage_seconds.items())
    n_failed = sum(r.status == "failed" for r in results)
    shared = out_dir / PLOTLY_JS
    shared_note = (f"; plotly.js loaded once from {PLOTLY_JS} ({_size(shared.stat().st_size)})"
                   if shared.exists() else "")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_INDEX_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{_at_a_glance(results)}"
            f"<p>{len(results)} notebooks, {n_failed} failed. Pages: {_size(folder_bytes(out_dir))} in all"
            f"{shared_note}.</p>"
            "<table><tr><th>notebook</th><th>status</th><th>time</th><th>page size</th><th>error</th></tr>"
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
                  timeout_s: Optional[float] = CELL_TIMEOUT_S,
                  on_result: Optional[Callable[[NotebookResult], None]] = None,
                  workers: int = 1) -> list[NotebookResult]:
    """Execute every job, ``workers`` notebooks at a time (a failure never stops the others).

    The notebooks only read the sweep and write their own files, so they may run side by side; with more
    than one worker each kernel gets max(1, cores // workers) CPU threads, as the sweep's workers do, so
    the kernels share the cores instead of oversubscribing them.

    Returns
    -------
    list of NotebookResult, in job order; ``on_result`` sees each as it finishes.
    """
    from cbat.sweep import threads_per_worker

    jobs = list(jobs)
    workers = max(1, min(workers, len(jobs)))
    threads = None if workers == 1 else threads_per_worker(workers)
    results: list[Optional[NotebookResult]] = [None] * len(jobs)
    # Threads suffice: each notebook runs in its own child process and kernel, the threads only wait on them.
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notebook") as pool:
            started = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)  # stable: equal costs keep job order
            futures = {pool.submit(execute_notebook, jobs[i], out_dir, kernel, timeout_s, threads): i
                       for i in started}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    if on_result is not None:
                        on_result(results[futures[future]])
            except BaseException:  # interrupted (Ctrl-C, SIGTERM): stop the running notebooks, start no other
                for future in futures:
                    future.cancel()
                with _RUNNING_LOCK:
                    running = list(_RUNNING)
                interrupts.stop_children(running, CHILD_STOP_S)  # their threads still read the pipes: no wait
                raise
    finally:  # after the threads are done: a notebook the interrupt cut short leaves no half-run copy behind
        for job, result in zip(jobs, results):
            if result is None:
                (Path(out_dir) / f"{job.name}.ipynb").unlink(missing_ok=True)
    return results


def render_all(results: Sequence[NotebookResult], out_dir: str | Path, show_code: bool = False) -> None:
    """Render every executed notebook next to it; failed ones too (under their banner)."""
    for result in results:
        if result.ipynb is None:
            continue
        try:
            result.html = render_html(result.ipynb, Path(out_dir) / f"{result.name}.html", failure=result,
                                      show_code=show_code)
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
    task : synthetic task of the sweep (``cbat.data.TASKS``; None: mixture).
        A ``sweep_dir`` that already holds a sweep is reported as it is when none of task, variants, seeds,
        quick and sweep is given (e.g. ``cbat report --sweep <a cbat sweep folder>``); given, they must describe
        that sweep.
    variants, seeds : the sweep's variants and seeds (None: the sweep's defaults).
    device : "auto", "cpu", "cuda" or "cuda:<i>", for the sweep and the notebooks.
    quick : the small CPU default (the quick sweep, small notebook sizes).
    sweep_dir : reuse this sweep directory (default ``<out>/sweep``; finished runs are never redone).
    workers : local sweep worker processes, and notebooks executed side by side (None: 2, or 1 on a
        one-core machine).
    sweep : further ``cbat.sweep.SweepSpec`` fields, e.g. ``{"data": {...}, "settings": {"epochs": 2}}``.
    notebook_timeout_s : limit per notebook cell execution in seconds (None: no limit; a notebook past it
        is marked failed and the report goes on).
    show_code : keep the input code in the HTML pages (default: hidden, each page links its notebook).
    notebooks : per-notebook parameter overrides, ``{notebook stem: {parameter: value}}``.
    """

    task: Optional[str] = None
    variants: Optional[list[str]] = None
    seeds: Optional[list[int]] = None
    device: str = "auto"
    quick: bool = False
    sweep_dir: Optional[str] = None
    workers: Optional[int] = None
    sweep: dict[str, Any] = field(default_factory=dict)
    notebook_timeout_s: Optional[float] = CELL_TIMEOUT_S
    show_code: bool = False
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "ReportParams":
        """Read a YAML mapping of these fields; ``overrides`` (e.g. CLI flags that were given) win."""
        from cbat.config import check_keys, parse_yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: report parameters file not found")
        data = parse_yaml(path.read_text(), str(path)) or {}
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

    def shown(self) -> dict[str, Any]:
        """``to_dict()`` without what the sweep did not use: the synthetic ``task`` when the user's files replace it."""
        shown = self.to_dict()
        if "path" in self.sweep.get("data", {}) or self.task is None:
            del shown["task"]
        return shown

    def resolved_workers(self) -> int:
        """``workers``, or 2 (1 on a one-core machine) when unset."""
        return self.workers or min(2, os.cpu_count() or 1)


def sweep_spec(params: ReportParams):
    """The ``SweepSpec`` of a report: the quick sweep (``--quick``) or the full default, with the task,
    variants, seeds, device and ``params.sweep`` fields applied."""
    from cbat.data import TASKS
    from cbat.sweep import DESIGN_VARIANTS, SweepSpec, quick_data, quick_sweep_spec

    if params.task is not None and params.task not in TASKS:
        raise ValueError(f"report parameter 'task' is {params.task!r}; expected one of {list(TASKS)}")
    base = quick_sweep_spec() if params.quick else SweepSpec()
    fields_ = dict(params.sweep)
    user_data = fields_.pop("data", {})
    # The user's files (sweep.data.path) replace the synthetic task rather than merge with it.
    task = params.task or base.data["task"]
    data = dict(user_data) if "path" in user_data else {**(quick_data(task) if params.quick else base.data),
                                                         "task": task, **user_data}
    settings = {**base.settings, "device": params.device, "progress": False, **fields_.pop("settings", {})}
    if params.variants is not None:
        fields_["variants"] = params.variants
    if fields_.get("design") is not None and "variants" not in fields_ and not params.quick:
        fields_["variants"] = list(DESIGN_VARIANTS)  # a design runs beside its corners, as in cbat sweep
    try:
        spec = SweepSpec(**{**base.to_dict(), **fields_, "data": data, "settings": settings})
    except TypeError as err:
        raise ValueError(f"report parameter 'sweep': {err}") from None
    if params.seeds is not None:  # as cbat sweep --seeds: every variant runs these, also those with seeds of their own
        spec = spec.with_seeds(params.seeds)
    spec.variant_table()  # unknown variant names fail here, before anything is written
    return spec


def run_sweep(params: ReportParams, sweep_dir: str | Path):
    """Run the report's sweep into ``sweep_dir``; finished runs there are reused, not retrained.

    Returns the results table (``cbat.sweep.run_sweep``)."""
    from cbat import sweep as sweeps

    return sweeps.run_sweep(report_spec(params, sweep_dir), sweep_dir, workers=params.resolved_workers())


def report_spec(params: ReportParams, sweep_dir: str | Path):
    """The sweep a report runs in ``sweep_dir``: the folder's own (resumed as it is) when it holds one and the
    parameters describe none (no task, variants, seeds, quick or sweep fields), else ``sweep_spec(params)``."""
    from cbat.sweep import SweepSpec

    stored = rundir.read_spec(sweep_dir)
    describes_none = (params.task is None and params.variants is None and params.seeds is None and not params.quick
                      and not params.sweep)
    if stored is not None and describes_none:
        return SweepSpec.from_dict(stored["spec"], str(rundir.sweep_file(sweep_dir)))
    return sweep_spec(params)


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
    "attention_explorer": {"n_samples": 4},
    "ablation_report": {"n_boot": 300},
    "loop_attribution": {"n_loops": 5},  # per planted cause: 15 loops on the 3-cause mixture
}
# Relative run times of the notebooks that train or attribute (quick report, one thread each: quickstart and
# loop_attribution about 50-67 s, ablation_report 35 s, each explorer page 14-18 s); the others count 1.
NOTEBOOK_COST = {"quickstart": 4.0, "loop_attribution": 4.0, "ablation_report": 2.0}
# Known notebooks in report order; any other notebook in the folder runs once after them.
NOTEBOOK_ORDER = ("quickstart", "ablation_report", "gate_explorer", "attention_explorer", "loop_attribution")
TITLES = {"quickstart": "Quickstart: train two presets on the embedded benchmark and compare them",
          "ablation_report": "Ablation report and verdicts",
          "gate_explorer": "Gate explorer", "attention_explorer": "Attention explorer",
          "loop_attribution": "Loop attribution"}


def plan_notebooks(params: ReportParams, sweep_dir: Path, out_dir: Path,
                   notebook_dir: Path = NOTEBOOK_DIR) -> list[NotebookJob]:
    """One job per notebook in ``notebook_dir``; the attention explorer once per variant with attention.

    Every job gets the same parameter pool (the notebook keeps the ones it declares), then the quick
    sizes, then the user's per-notebook overrides.
    """
    from diagnostics.design import fittable_design
    from diagnostics.gates import gated_runs
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
            explored = _first_run_per_variant(sweep)
            rows = fittable_design(sweep)  # a designed sweep's rows (16-64 variants) get no page each
            if rows is not None:
                explored = [run for run in explored if run["variant"] not in rows.names] or explored[:1]
            if params.quick:  # one page per preset; the twins' maps are one run_id away in JupyterLab
                explored = [run for run in explored if run["variant"] in PRESETS] or explored
            for run in explored:
                jobs.append(NotebookJob(f"{source.stem}__{run['variant']}", source,
                                        {**parameters, "run_id": run["run_id"]}, f"{title}: {run['variant']}"))
        elif source.stem == "gate_explorer" and not gated_runs(sweep):
            # a page about gates has nothing to show on a sweep without them (e.g. --variants baseline,no_cross)
            log("[report]   gate_explorer: skipped (no finished run has gates; add cbat_v1, cbat_v2 or a gate twin)")
        else:
            jobs.append(NotebookJob(source.stem, source, parameters, title,
                                    cost=NOTEBOOK_COST.get(source.stem, 1.0)))
    return jobs


def _first_run_per_variant(sweep) -> list[dict]:
    """The lowest-seed finished run of each variant that has attention (the no_cross control has none)."""
    from diagnostics.attention import attention_runs

    with_attention = set(attention_runs(sweep))
    return [row for row in sweep.ok().drop_duplicates("variant").to_dict("records") if row["run_id"] in with_attention]


def build_report(out: str | Path, params: ReportParams, notebook_dir: str | Path = NOTEBOOK_DIR,
                 kernel: str = KERNEL) -> list[NotebookResult]:
    """The whole batch: sweep (finished runs reused) -> notebooks -> HTML -> ``index.html``.

    Prints the time of each stage on stderr and records it in ``report.json``.

    Returns
    -------
    list of NotebookResult, in index order.
    """
    from cbat.sweep import failure_lines

    out, notebook_dir = Path(out), Path(notebook_dir)
    sweep_spec(params)  # bad parameters fail before anything is written
    if not any(notebook_dir.glob("*.ipynb")):
        raise ValueError(f"{notebook_dir}: no notebooks (*.ipynb); run from a source checkout (pip install -e .)")
    unknown = sorted(set(params.notebooks) - {p.stem for p in notebook_dir.glob("*.ipynb")})
    if unknown:
        raise ValueError(f"report parameter 'notebooks' names {unknown}, which are not notebooks in {notebook_dir}")
    check_notebook_overrides(params.notebooks, notebook_dir)
    stage_seconds: dict[str, float] = {}

    def timed(stage: str, work):
        log(f"[report] {stage} ...")
        start = time.perf_counter()
        value = work()
        stage_seconds[stage] = time.perf_counter() - start
        log(f"[report] {stage}: {stage_seconds[stage]:.1f} s")
        return value

    sweep_dir = Path(params.sweep_dir) if params.sweep_dir else out / "sweep"
    for line in failure_lines(timed("sweep", lambda: run_sweep(params, sweep_dir))):  # why, before the pages fail
        log(f"[report]   {line}")
    out.mkdir(parents=True, exist_ok=True)  # after the sweep: data it refuses leave no empty report folder behind
    jobs = plan_notebooks(params, sweep_dir, out, notebook_dir)

    def report_one(result: NotebookResult) -> None:
        error = "  " + result.error if result.error else ""
        log(f"[report]   {result.name}: {result.status} ({result.seconds:.1f} s){error}")

    results = timed("execute", lambda: run_notebooks(jobs, out, kernel, params.notebook_timeout_s, report_one,
                                                     workers=params.resolved_workers()))
    timed("render", lambda: render_all(results, out, params.show_code))
    stage_seconds["total"] = sum(stage_seconds.values())
    index = write_index(out, results, stage_seconds, params.shown())
    log(f"[report] total: {stage_seconds['total']:.1f} s -> {index}")
    return results

"""The batch report: index with a status per notebook and an at-a-glance summary, a failing notebook isolated,
offline HTML, stage times, reuse of finished sweep runs, parameters from YAML and the CLI's one-line errors."""
from __future__ import annotations

import html
import json
import re

import pytest

from cbat.cli import main
from cbat.report import (GLUE_MIME, PAGE_CSS, PLOTLY_JS, NotebookResult, ReportParams, _at_a_glance, folder_bytes,
                         read_glue, render_html, report_spec, run_sweep, sweep_spec)
from cbat.sweep import QUICK_DATA, QUICK_VARIANTS, quick_data
from test_report_support import BROKEN_ERROR, shared_report, tiny_params, tiny_sweep


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return shared_report(tmp_path_factory)


def test_index_links_every_notebook_with_its_status(report):
    out, results = report
    index = (out / "index.html").read_text()
    assert {"quickstart", "gate_explorer", "ablation_report", "broken"} <= set(results)
    assert {n for n in results if n.startswith("attention_explorer__")} == {
        "attention_explorer__baseline", "attention_explorer__cbat_v1", "attention_explorer__cbat_v2"}
    for result in results.values():
        assert f'href="{result.html.name}"' in index
        assert f'class="{result.status}">{result.status}<' in index


def test_failed_notebook_is_marked_with_its_error_and_the_rest_still_render(report):
    out, results = report
    broken = results["broken"]
    assert broken.status == "failed"
    assert broken.error == f"RuntimeError: {BROKEN_ERROR}"
    assert html.escape(broken.error) in (out / "index.html").read_text()
    assert BROKEN_ERROR in broken.html.read_text()  # the failed page renders and shows where it stopped
    others = [r for r in results.values() if r.name != "broken"]
    assert others and all(r.html is not None and r.html.stat().st_size > 0 for r in others)


def test_pages_work_offline_and_load_one_local_plotly_js(report):
    out, results = report
    for result in results.values():
        page = result.html.read_text()
        # The only script from a file is the report's own plotly.min.js, next to the page.
        assert re.findall(r"<script[^>]+src=\"([^\"]+)\"", page) == [PLOTLY_JS], result.name
        assert re.findall(r"<link[^>]+href=\"([^\"]+)\"", page) == [PAGE_CSS], result.name  # the shared style
        assert "cdnjs.cloudflare.com" not in page  # nbconvert's default require.js / MathJax
        assert GLUE_MIME not in page
        assert "plotly.js v" not in page.lower()  # not inlined
    gate_page = results["gate_explorer"].html.read_text()
    assert "Plotly.newPlot" in gate_page
    holding = [p.name for p in out.rglob("*")
               if p.is_file() and "plotly.js v" in p.read_text(errors="ignore")[:2000].lower()]
    assert holding == [PLOTLY_JS]  # plotly.js once per report


def test_report_is_light_and_the_index_shows_page_sizes(report):
    out, results = report
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    assert folder_bytes(out) <= 10e6, sorted(sizes.items(), key=lambda kv: -kv[1])[:8]
    index = (out / "index.html").read_text()
    assert "<th>page size</th>" in index
    for result in results.values():
        assert result.html.stat().st_size < 1e6, result.name  # no page carries a library or the lab style
        assert re.search(rf'href="{result.html.name}".*?<td class="size">[0-9.]+ (kB|MB)</td>', index), result.name


def test_no_widget_repr_and_every_explorer_page_shows_plotly_figures(report):
    _, results = report
    for result in results.values():
        page = result.html.read_text()
        for widget_repr in ("VBox(", "HBox(", "Dropdown(", "IntSlider("):
            assert widget_repr not in page, (result.name, widget_repr)
    explorers = [r for n, r in results.items() if "explorer" in n]
    assert len(explorers) == 4
    for result in explorers:
        page = result.html.read_text()
        assert page.count("Plotly.newPlot") >= 3, result.name
        assert '"sliders"' in page or result.name.endswith("cbat_v1"), result.name  # precomputed states


def test_failed_page_opens_with_a_banner_naming_error_and_cell(report):
    _, results = report
    page = results["broken"].html.read_text()
    banner = page.index('class="cbat-banner"')
    assert banner < page.index('class="jp-Cell')  # before any cell
    assert "failed in cell 2" in page[banner:banner + 600] and BROKEN_ERROR in page[banner:banner + 600]
    assert all('class="cbat-banner"' not in r.html.read_text() for r in results.values() if r.status == "ok")


def test_pages_hide_input_code_unless_asked(report, tmp_path):
    _, results = report
    for result in results.values():
        page = result.html.read_text()
        assert not re.search(r'class="[^"]*jp-InputArea-editor', page), result.name
        assert f'href="{result.ipynb.name}"' in page  # the code stays one click away
    shown = render_html(results["quickstart"].ipynb, tmp_path / "with_code.html", show_code=True).read_text()
    assert re.search(r'class="[^"]*jp-InputArea-editor', shown) and "TrainSettings" in shown


def test_figures_carry_a_caption(report):
    _, results = report
    for name, result in results.items():
        if name.startswith(("loop_attribution", "broken")):
            continue  # attribution figures are i14's; the broken notebook has none
        page = result.html.read_text()
        figures = page.count('class="plotly-graph-div"')
        assert figures and page.count('class="cbat-caption"') == figures, (name, figures)


def test_stage_times_and_glued_values_are_in_report_json(report):
    out, results = report
    summary = json.loads((out / "report.json").read_text())
    assert set(summary["stage_seconds"]) == {"sweep", "execute", "render", "total"}
    assert all(v >= 0 for v in summary["stage_seconds"].values())
    stages = summary["stage_seconds"]
    assert stages["total"] == pytest.approx(stages["sweep"] + stages["execute"] + stages["render"])
    assert results["quickstart"].glued == read_glue(results["quickstart"].ipynb)


def test_rerun_reuses_finished_runs(tmp_path_factory):
    sweep_dir = tiny_sweep(tmp_path_factory)
    records = sorted((sweep_dir / "runs").glob("*/record.json"))
    before = {p: p.stat().st_mtime_ns for p in records}
    table = run_sweep(tiny_params(sweep_dir), sweep_dir)
    assert {p: p.stat().st_mtime_ns for p in records} == before
    assert sorted(table["run_id"]) == sorted(p.parent.name for p in records)


def test_a_folder_that_holds_a_sweep_is_reported_as_it_is(tmp_path_factory):
    """cbat report --sweep <a cbat sweep folder> (no task, variants, seeds or sweep fields) used to build the
    default sweep from its own defaults and refuse the folder as "a different sweep"."""
    sweep_dir = tiny_sweep(tmp_path_factory)
    records = sorted((sweep_dir / "runs").glob("*/record.json"))
    before = {p: p.stat().st_mtime_ns for p in records}
    params = ReportParams(sweep_dir=str(sweep_dir), device="cpu")
    assert report_spec(params, sweep_dir) == report_spec(tiny_params(sweep_dir), sweep_dir)
    table = run_sweep(params, sweep_dir)
    assert {p: p.stat().st_mtime_ns for p in records} == before and len(table) == len(records)
    with pytest.raises(ValueError, match="different sweep"):  # a sweep described by the parameters must match
        run_sweep(ReportParams(sweep_dir=str(sweep_dir), device="cpu", seeds=[7]), sweep_dir)


def test_read_glue_last_value_wins():
    def output(name, value):
        return {"output_type": "display_data", "metadata": {}, "data": {GLUE_MIME: {"name": name, "value": value}}}

    nb = {"cells": [{"cell_type": "code", "outputs": [output("a", 1), output("b", [1, 2])]},
                    {"cell_type": "markdown"}, {"cell_type": "code", "outputs": [output("a", 3)]}]}
    assert read_glue(nb) == {"a": 3, "b": [1, 2]}


def test_params_from_yaml_with_cli_overrides(tmp_path):
    path = tmp_path / "report.yaml"
    path.write_text("task: long_range\nseeds: [0, 1]\nnotebooks:\n  quickstart: {epochs: 1}\n"
                    "sweep:\n  settings: {epochs: 2}\n")
    params = ReportParams.from_file(path, seeds=[5], quick=True)
    assert (params.task, params.seeds, params.quick) == ("long_range", [5], True)
    spec = sweep_spec(params)
    assert spec.data["task"] == "long_range" and spec.seeds == [5] and spec.settings["epochs"] == 2
    # the quick size and held-out draw stay; the mixture's share of tested easy negatives does not (cbat sweep alike)
    assert spec.data == quick_data("long_range") and "easy_negatives_tested" not in spec.data
    assert sweep_spec(ReportParams(quick=True)).data == QUICK_DATA
    # the quick sweep's presets and single-factor twins, each under the seeds asked for (also cbat_v2 and the
    # baseline, which have seeds of their own in the quick sweep)
    assert [v if isinstance(v, str) else v["name"] for v in spec.variants] == [
        v if isinstance(v, str) else v["name"] for v in QUICK_VARIANTS]
    assert {run["seed"] for run in spec.runs()} == {5}
    assert params.shown()["task"] == "long_range"
    on_files = ReportParams(sweep={"data": {"path": "pairs.csv"}})
    assert "task" not in on_files.shown() and on_files.shown()["sweep"] == {"data": {"path": "pairs.csv"}}


@pytest.mark.parametrize("args, message", [
    (["--task", "nope"], "report parameter 'task' is 'nope'"),
    (["--variants", "baseline,nope"], "unknown variant 'nope'"),
    (["--params", "missing.yaml"], "missing.yaml: report parameters file not found"),
    (["--data", "pairs.csv"], "pairs.csv: unrecognised format; columns seen ['a', 'b']"),  # refused by the sweep
])
def test_cli_rejects_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    (tmp_path / "pairs.csv").write_text("a,b\n1,2\n")
    args = [a.replace("pairs.csv", str(tmp_path / "pairs.csv")) for a in args]
    assert main(["report", "--out", str(out), *args]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[report]")]  # progress
    assert len(errors) == 1 and message in errors[0]
    assert not out.exists()


def test_yaml_with_unknown_field_or_notebook_is_rejected(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0]\nepochs: 3\n")
    assert main(["report", "--out", str(tmp_path / "o"), "--params", str(bad)]) == 2
    assert "unknown report parameter(s) ['epochs']" in capsys.readouterr().err
    bad.write_text("notebooks:\n  no_such_notebook: {a: 1}\n")
    assert main(["report", "--out", str(tmp_path / "o"), "--params", str(bad)]) == 2
    assert "['no_such_notebook'], which are not notebooks" in capsys.readouterr().err


def test_notebooks_get_absolute_paths_when_the_report_folder_is_relative(tmp_path_factory, monkeypatch):
    """Notebooks run inside the output folder, so a relative sweep path (as `make report` passes) must be resolved."""
    from pathlib import Path

    from cbat.report import plan_notebooks

    sweep_dir = tiny_sweep(tmp_path_factory)
    monkeypatch.chdir(sweep_dir.parent)
    jobs = plan_notebooks(tiny_params(), Path(sweep_dir.name), Path("report_out"))
    assert jobs
    for job in jobs:
        for key in ("sweep_dir", "output_dir"):
            if key in job.parameters:
                assert Path(job.parameters[key]).is_absolute(), (job.name, key)
    assert any(Path(job.parameters.get("sweep_dir", "")) == sweep_dir.resolve() for job in jobs)


def _glance(no_cross: dict[str, float]) -> str:
    glued = {"learnt_status": [{"variant": "no_cross", "status": "learnt", "median_auroc": 0.62}],
             "settings": {"seeds": [0]}, "settings_text": "mixture benchmark, 24 pairs",
             "cause_table": [{"variant": "no_cross", "cause": c, "median_auroc": v} for c, v in no_cross.items()]}
    return _at_a_glance([NotebookResult("ablation_report", "Ablation report", "ok", glued=glued)])


def test_first_page_names_the_planted_causes_recovered_and_missed():
    rows = [{"check": "H1", "cause": "long_range", "expected": "supported", "found": "supported", "recovered": True},
            {"check": "H2", "cause": "diffuse", "expected": "supported", "found": "inconclusive", "recovered": False}]
    glued = {"learnt_status": [], "planted_recovered": [1, 2], "expected_vs_found": rows}
    page = _at_a_glance([NotebookResult("ablation_report", "Ablation report", "ok", glued=glued)])
    assert "1 of 2 planted causes recovered" in page
    assert "recovered H1 (long_range); not recovered H2 (diffuse: expected supported, found inconclusive)" in page


def test_first_page_tells_untested_planted_causes_from_missed_ones():
    """A sweep without the twins a check needs used to read "0 of 3 planted causes recovered"."""
    rows = [{"check": "H1", "cause": "long_range", "expected": "supported", "found": "inconclusive",
             "recovered": False, "tested": False}]
    glued = {"learnt_status": [], "planted_recovered": [0, 0], "expected_vs_found": rows}
    page = _at_a_glance([NotebookResult("ablation_report", "Ablation report", "ok", glued=glued)])
    assert "No planted cause could be tested: not tested, the sweep lacks the variants they need: H1 (long_range)" \
        in page and "0 of" not in page
    rows.append({"check": "H2", "cause": "diffuse", "expected": "supported", "found": "supported", "recovered": True,
                 "tested": True})
    glued["planted_recovered"] = [1, 1]
    page = _at_a_glance([NotebookResult("ablation_report", "Ablation report", "ok", glued=glued)])
    assert "1 of 1 planted causes recovered" in page and "recovered H2 (diffuse); not tested" in page


def test_first_page_counts_hypotheses_the_sweep_cannot_judge_as_not_tested():
    """"Verdicts: 9 inconclusive, 1 not learnt" on a sweep that lacked the twins of eight of them."""
    verdicts = [{"id": "H1", "verdict": "not learnt", "tested": True},
                {"id": "H4", "verdict": "inconclusive", "tested": True},
                {"id": "H5", "verdict": "inconclusive", "tested": False}, {"id": "V1d", "verdict": "inconclusive"}]
    page = _at_a_glance([NotebookResult("ablation_report", "Ablation report", "ok",
                                        glued={"learnt_status": [], "verdicts": verdicts})])
    assert ("Verdicts: 1 not learnt, 2 inconclusive, 1 not tested (H1 not learnt, H4 inconclusive, H5 not tested, "
            "V1d inconclusive)") in page  # a glued row without "tested" (an older report) counts as tested


def test_first_page_shows_a_variant_whose_every_run_failed_without_failing_itself():
    """Every run failed (e.g. a validation split too small for real files): its medians are glued as null."""
    glued = {"learnt_status": [{"variant": "baseline", "status": "failed", "median_auroc": None}],
             "cause_table": [{"variant": "no_cross", "cause": "diffuse", "median_auroc": None},
                             {"variant": "baseline", "cause": "diffuse", "median_auroc": 0.9}]}
    page = _at_a_glance([NotebookResult("ablation_report", "Ablation report", "ok", glued=glued)])
    assert "<td>baseline</td><td>failed</td><td>n/a</td>" in page
    assert "<td>no_cross</td><td>n/a</td>" in page and "<td>0.90</td>" in page
    assert "sees each sequence alone" not in page  # nothing to say about a control without numbers
    glued["learnt_status"].append({"variant": "no_cross", "status": "not learnt", "median_auroc": 0.5})
    page = _at_a_glance([NotebookResult("ablation_report", "Ablation report", "ok", glued=glued)])
    assert "<td>no_cross (not learnt)</td><td>n/a</td>" in page  # its per-cause row carried no mark


def test_first_page_says_what_the_no_interaction_control_shows_per_cause():
    near_chance = _glance({"diffuse": 0.57, "long_range": 0.35})
    assert "Trained: mixture benchmark, 24 pairs" in near_chance and "<details>" in near_chance
    assert "at most 0.57, diffuse" in near_chance and "each cause needs the interaction" in near_chance
    readable = _glance({"diffuse": 0.57, "long_range": 0.91})
    assert "reaches 0.91 on long_range" in readable and "needs the interaction" not in readable


@pytest.mark.parametrize("overrides, message", [
    ("quickstart: {enhancer_lenn: 200}", "'notebooks.quickstart': ['enhancer_lenn'] not among the parameters"),
    ("quickstart: {epochs: three}", "'notebooks.quickstart.epochs': 'three'; expected int"),
    ("ablation_report: {n_boot: true}", "'notebooks.ablation_report.n_boot': True; expected int"),
    ("attention_explorer: {temperatures: 2.0}", "temperatures': 2.0; expected list"),
])
def test_notebook_overrides_are_checked_before_the_sweep(tmp_path, capsys, overrides, message):
    """papermill drops a name the notebook does not declare without a word; a wrong kind fails after the sweep."""
    params = tmp_path / "report.yaml"
    params.write_text(f"notebooks:\n  {overrides}\n")
    out = tmp_path / "out"
    assert main(["report", "--out", str(out), "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_notebook_overrides_of_the_right_kind_pass():
    from cbat.report import NOTEBOOK_DIR, check_notebook_overrides

    check_notebook_overrides(tiny_params().notebooks, NOTEBOOK_DIR)  # the suite's own toy sizes
    check_notebook_overrides({"loop_attribution": {"delta_threshold": 1, "n_ism": 3, "run_id": "x"}}, NOTEBOOK_DIR)

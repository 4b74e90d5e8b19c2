"""Designed ablations: the design library's designs, effects recovered from planted models, calibrated
intervals (A/A), and the design in sweep specs and the CLI. Hand-made results, no training."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pyDOE3
import pytest

from cbat import ablations, rundir, stats
from cbat.ablations import FACTORS, REQUIRES, alias_groups, design, levels_of, resolution_of
from cbat.metrics import evaluate, learnt
from cbat.sweep import SweepSpec
from diagnostics import design as designed
from diagnostics.io import SweepError
from test_diagnostics_fakes import N_PAIRS, labels_and_signal, probs_with_noise

FACTOR_NAMES = list(FACTORS)


@pytest.mark.parametrize("resolution, runs", [(3, 16), (4, 32)])
def test_design_is_balanced_orthogonal_and_of_the_asked_resolution(resolution, runs):
    d = design(resolution=resolution)
    assert d.matrix.shape == (runs, len(FACTORS))
    assert np.all(d.matrix.sum(axis=0) == 0)  # each factor high in half the runs
    assert np.array_equal(d.matrix.T @ d.matrix, runs * np.eye(len(FACTORS)))  # orthogonal columns
    assert d.resolution == resolution == resolution_of(d.matrix)


def test_a_design_short_of_the_asked_resolution_is_refused():
    with pytest.raises(ValueError, match=r"fracfact_by_res\(12, 5\) gives 64 runs of resolution 4, not 5"):
        design(resolution=5)


def test_foldover_turns_resolution_three_into_four():
    d = design(resolution=3, foldover=True)
    assert d.matrix.shape == (32, len(FACTORS)) and d.resolution == 4
    assert np.array_equal(d.matrix[16:], -d.matrix[:16])


@pytest.mark.parametrize("fields, message", [
    ({"resolution": 4, "foldover": True}, "already has every mirrored row"),
    ({"resolution": 3, "foldover": "false"}, "design foldover 'false'; expected true or false"),
    ({"resolution": 4.0}, "design resolution 4.0; expected one of"),
    ({"resolution": True}, "design resolution True; expected one of"),
    ({"overrides": ["d_model", 16]}, "expected a mapping of config fields"),
    ({"overrides": {"d_modle": 16}}, "design overrides: unknown"),
    ({"overrides": {"dropout": 1.5}}, "design overrides"),
    ({"overrides": {"name": "x"}}, "['name'] are fields the design sets"),
])
def test_design_input_is_checked_when_the_spec_is_built(fields, message):
    """Each was accepted before and failed (or silently did something else) once runs started."""
    with pytest.raises(ValueError, match=re.escape(message)):
        SweepSpec(variants=[], seeds=[0], design={"kind": "fractional", **fields})


def test_a_design_without_variants_runs_beside_its_corners_everywhere():
    """cbat sweep --design added baseline and cbat_v2; a spec file or report parameters added all four presets."""
    from cbat.report import ReportParams, sweep_spec

    design_ = {"kind": "fractional", "resolution": 3}
    from_file = SweepSpec.from_dict({"seeds": [0], "design": design_})
    from_report = sweep_spec(ReportParams(seeds=[0], sweep={"design": design_}))
    for spec in (from_file, from_report):
        assert [v for v in spec.variant_table() if not v.startswith("design-")] == ["baseline", "cbat_v2"]


def test_effects_name_a_task_or_split_the_sweep_lacks_and_refuse_a_level_outside_0_1(tmp_path):
    path = write_design_sweep(tmp_path / "s", design(resolution=3), planted, lambda lv: 0.5)
    with pytest.raises(SweepError, match=r"no finished run with task='long_range', split=None; the sweep has tasks"):
        designed.effects(path, task="long_range", n_boot=5, causes=False)
    with pytest.raises(ValueError, match=r"level 1.5; expected a confidence level in \(0, 1\)"):
        designed.effects(path, level=1.5, n_boot=5, causes=False)


def test_a_variant_named_like_a_design_row_is_refused():
    spec = SweepSpec(variants=["baseline", {"name": "design-r00", "config": "cbat_v1"}], seeds=[0],
                     design={"kind": "fractional", "resolution": 3})
    with pytest.raises(ValueError, match="'design-r00' has the name of a design row"):
        spec.variant_table()


def test_alias_table_matches_the_design_library():
    d = design(resolution=3)
    library, _ = pyDOE3.fracfact_aliasing(d.matrix)
    letter = {f: chr(ord("a") + i) for i, f in enumerate(FACTOR_NAMES)}
    for group in d.aliases:
        as_letters = ["".join(letter[f] for f in term.split(":")) for term in group]
        match = [g for g in library if as_letters[0] in [t.strip() for t in g.split("=")]]
        assert len(match) == 1 and set(as_letters) <= {t.strip() for t in match[0].split("=")}
    # resolution III: every main effect is aliased with some two-factor interaction; IV: none is
    assert all(any(f in g for g in d.aliases) for f in FACTOR_NAMES)
    mains_iv = [g for g in design(resolution=4).aliases if any(":" not in t for t in g)]
    assert mains_iv == []


def test_concatenated_anchors_are_nested_within_joint_attention():
    d = design(resolution=4)
    col = {f: i for i, f in enumerate(FACTOR_NAMES)}
    forced = (d.matrix[:, col["anchors"]] > 0) & (d.matrix[:, col["joint_attn"]] < 0)
    assert forced.any() and np.all(d.levels[forced, col["anchors"]] == -1)
    for variant, row in zip(d.variants(), d.levels):  # every row builds a valid config with its levels
        assert levels_of(variant.config.to_dict()) == dict(zip(FACTOR_NAMES, row.astype(int)))
    coded = ablations.coded(d.levels)
    assert np.all(coded[d.levels[:, col["joint_attn"]] < 0, col["anchors"]] == 0)
    assert set(REQUIRES) == {"anchors"}


def test_sweep_spec_stores_the_design_and_gives_each_row_its_own_seed(tmp_path):
    spec = SweepSpec(variants=[], seeds=[0, 1], data={"task": "grammar", "n_pairs": 100, "seed": 0},
                     design={"kind": "fractional", "resolution": 3, "overrides": {"d_model": 16}})
    runs = spec.runs()
    assert len(runs) == 32 and len({r["seed"] for r in runs}) == 32
    assert all(r["config"]["d_model"] == 16 for r in runs)
    from cbat.sweep import _prepare
    _prepare(spec, tmp_path)
    stored = json.loads((tmp_path / "sweep.json").read_text())["design"]
    assert np.array_equal(np.array(stored["matrix"]), design(resolution=3).matrix)
    assert stored["rows"][0] == "design-r00" and any("local" in a.split(" = ") for a in stored["aliases"])
    with pytest.raises(ValueError, match="design resolution 6"):
        SweepSpec(variants=[], design={"kind": "fractional", "resolution": 6})
    with pytest.raises(ValueError, match=r"unexpected \['runs'\]"):
        SweepSpec(variants=[], design={"kind": "fractional", "runs": 8})
    with pytest.raises(ValueError, match="fields the design sets"):
        SweepSpec(variants=[], design={"kind": "fractional", "overrides": {"window_size": 4}})


def test_report_params_and_cli_pass_the_design(tmp_path):
    from cbat.cli import build_parser
    from cbat.cli import UserError
    from cbat.commands.sweep import _spec
    from cbat.report import ReportParams, sweep_spec

    params = tmp_path / "params.yaml"
    params.write_text("quick: true\nsweep:\n  design: {kind: fractional, resolution: 4}\n")
    spec = sweep_spec(ReportParams.from_file(params))
    assert spec.built_design().matrix.shape == (32, len(FACTORS))
    args = build_parser().parse_args(["sweep", "--design", "fractional", "--resolution", "3", "--foldover",
                                      "--out", str(tmp_path / "s")])
    spec = _spec(args)
    assert spec.design == {"kind": "fractional", "resolution": 3, "foldover": True}
    assert spec.variants == ["baseline", "cbat_v2"] and spec.built_design().resolution == 4
    with pytest.raises(UserError, match="add --design fractional"):  # was silently ignored
        _spec(build_parser().parse_args(["sweep", "--resolution", "3", "--out", str(tmp_path / "s")]))


# --- effects on hand-made designed sweeps -------------------------------------------------------------
BETA = dict(zip(FACTOR_NAMES, [0.04, -0.06, 0.0, 0.02, -0.03, 0.05, 0.0, 0.01, -0.02, 0.03, 0.0, -0.01]))


def write_design_sweep(path, d, cause_metric, pooled_noise, trace=None):
    """A designed sweep folder: sweep.json with the design, one run per row, per-cause metrics planted
    (``trace(levels)``: the run's trace frame)."""
    labels, _ = labels_and_signal()
    path.mkdir(parents=True)
    rundir.write_json(path / "sweep.json", {"spec": {"data": None}, "variants": {}, "design": d.to_dict()})
    for row, (variant, levels) in enumerate(zip(d.variants(), d.levels)):
        run_id = f"{variant.name}__s{row}__chrom"
        run_dir = path / "runs" / run_id
        run_dir.mkdir(parents=True)
        p = probs_with_noise(pooled_noise(dict(zip(FACTOR_NAMES, levels))))(variant.name, row)
        pd.DataFrame({"pair_index": np.arange(N_PAIRS), "cell_line": "GM12878", "label": labels,
                      "logit": np.log(p / (1 - p)), "prob": p}).to_parquet(run_dir / "predictions.parquet")
        test = {**evaluate(labels, p), "per_cause": {"planted": {"aupr": cause_metric(levels, row), "n": 40}}}
        paths = {"predictions": "predictions.parquet"}
        if trace is not None:
            trace(dict(zip(FACTOR_NAMES, levels))).to_parquet(run_dir / "trace.parquet")
            paths["trace"] = "trace.parquet"
        record = {"run_id": run_id, "variant": variant.name, "seed": row, "split": "chrom", "task": "mixture",
                  "status": "ok", "error": None, "config": variant.config.to_dict(), "metrics": {"test": test},
                  "learnt": learnt(labels, p), "paths": paths}
        rundir.write_record(run_dir / "record.json", record)
    return path


def planted(levels, row, interaction=0.0):
    """0.6 + sum(beta * coded level) + an optional sparsity x gate interaction + noise (sd 0.005)."""
    coded = ablations.coded(levels[None, :])[0]
    col = {f: i for i, f in enumerate(FACTOR_NAMES)}
    noise = np.random.default_rng(row).normal(0, 0.005)
    return float(0.6 + coded @ np.array(list(BETA.values())) + interaction * levels[col["sparsity"]]
                 * levels[col["gate"]] + noise)


def test_effects_recover_planted_coefficients_within_their_intervals(tmp_path):
    path = write_design_sweep(tmp_path / "s", design(resolution=4), planted,
                              lambda lv: 0.5 + (1.5 if lv["window"] > 0 else 0.0))
    table = designed.effects(path, n_boot=30)
    cause = table[table["cause"] == "planted"].set_index("factor")
    assert list(cause.index) == FACTOR_NAMES and cause["n_runs"].eq(32).all() and cause["df"].eq(19).all()
    assert cause["n_pairs"].eq(40).all()  # the cause's test pairs, from the records
    for factor, beta in BETA.items():
        row = cause.loc[factor]
        assert row.ci_low <= beta <= row.ci_high, (factor, beta, row.effect, row.ci_low, row.ci_high)
        assert row.ci_high - row.ci_low < 0.02
    assert cause.loc["window", "claim"] == "higher" and cause.loc["direction", "claim"] == "no clear difference"
    pooled = table[table["cause"] == "all"].set_index("factor")
    assert pooled.loc["window", "effect"] < 0 and pooled.loc["window", "claim"] == "lower"
    assert pooled.drop(index="window")["claim"].eq("no clear difference").sum() >= 10
    assert pooled.loc["anchors", "note"].startswith("nested")


def test_interaction_in_a_resolution_three_design_shows_as_an_alias(tmp_path):
    d = design(resolution=3)
    (victim,) = [g[0] for g in d.aliases if "sparsity:gate" in g and ":" not in g[0]]
    path = write_design_sweep(tmp_path / "s", d, lambda lv, row: planted(lv, row, interaction=0.05),
                              lambda lv: 0.5)
    table = designed.effects(path, n_boot=20)
    row = table[(table["cause"] == "planted") & (table["factor"] == victim)].iloc[0]
    assert "sparsity:gate" in row.aliases.split(", ")
    # the interaction (+-0.05 per level product, so 0.1 high - low) lands on its alias
    assert row.effect == pytest.approx(BETA[victim] + 0.1 * np.sign(_alias_sign(d, victim)), abs=0.02)
    assert not (row.ci_low <= BETA[victim] <= row.ci_high)


def _alias_sign(d, victim):
    col = {f: i for i, f in enumerate(FACTOR_NAMES)}
    return float(np.mean(d.matrix[:, col[victim]] * d.matrix[:, col["sparsity"]] * d.matrix[:, col["gate"]]))


def _mark_not_learnt(record_path):
    record = json.loads(record_path.read_text())
    record["learnt"] = {"learnt": False, "reason": "test AUROC interval includes 0.5"}
    record_path.write_text(json.dumps(record))


def test_a_run_that_did_not_learn_is_left_out_of_the_fit_and_named(tmp_path):
    """As a twin pair's sides do: one stalled row of 32 used to mark every designed effect "not learnt", so a
    design at the quick size, where some row usually stalls, said nothing."""
    path = write_design_sweep(tmp_path / "s", design(resolution=4), planted,
                              lambda lv: 0.5 + (1.5 if lv["window"] > 0 else 0.0))
    stalled = sorted((path / "runs").glob("*/record.json"))[5]
    _mark_not_learnt(stalled)
    table = designed.effects(path, n_boot=20)
    assert table["n_runs"].eq(31).all() and table["df"].eq(18).all()
    assert not table["claim"].str.startswith("not learnt").any()
    assert table["note"].str.contains(f"fitted without 1 run that did not learn: {stalled.parent.name}: test AUROC "
                                      "interval includes 0.5").all()
    cause = table[table["cause"] == "planted"].set_index("factor")
    for factor, beta in BETA.items():  # still recovered from the other 31 rows
        assert cause.loc[factor, "ci_low"] <= beta <= cause.loc[factor, "ci_high"], factor
    assert table[(table["cause"] == "all") & (table["factor"] == "window")]["claim"].iloc[0] == "lower"
    fitted = designed.fit(path, "aupr", n_boot=10)
    eff = designed.designed_effect(fitted, ["window"], "aupr")
    assert stalled.parent.name not in eff.run_ids and not eff.unlearnt
    assert "runs that did not learn, left out" in eff.text()


def test_a_design_with_too_few_learnt_rows_says_so_and_claims_nothing(tmp_path):
    """The permuted-label design: with all rows but one left out, every effect is "not estimable", and a verdict
    read from the design says that too few rows learnt, not that the design lacks residual degrees of freedom."""
    from diagnostics.verdicts import assess

    path = write_design_sweep(tmp_path / "s", design(resolution=4), planted, lambda lv: 0.5)
    for record_path in sorted((path / "runs").glob("*/record.json"))[1:]:
        _mark_not_learnt(record_path)
    table = designed.effects(path, n_boot=10, causes=False)
    assert table["claim"].eq("not estimable").all() and table["n_runs"].eq(1).all()
    (verdict,) = assess(path, hypotheses=["H1"], probes=False, n_boot=10).verdicts
    assert verdict.verdict == "inconclusive" and verdict.tested
    assert verdict.reason == "only 1 design run(s) learnt, too few to fit the design (31 left out)"


def test_effects_say_not_learnt_when_no_run_learnt(tmp_path):
    path = write_design_sweep(tmp_path / "s", design(resolution=3), planted, lambda lv: 0.5)
    for record_path in (path / "runs").glob("*/record.json"):
        _mark_not_learnt(record_path)
    table = designed.effects(path, n_boot=10, causes=False)
    assert table["claim"].str.startswith("not learnt: 16 run(s)").all() and table["n_runs"].eq(16).all()
    assert "AUROC interval includes 0.5" in table["claim"].iloc[0]
    forest = designed.forest_figure(table.assign(cause="all"))  # the figures say so too, not only the table
    assert all(label.endswith("(not learnt)") for label in forest.data[0].y)
    assert forest.layout.title.text.startswith("Runs that did not learn")
    steps = designed.decomposition(path, table.assign(cause="all"))
    assert steps["not_learnt"].all()
    assert designed.decomposition_figure(steps).layout.title.text.startswith("Runs that did not learn")


def add_preset_run(path, name, noise):
    """A finished run of preset ``name`` beside the design rows (scores: the planted signal plus noise)."""
    labels, _ = labels_and_signal()
    run_dir = path / "runs" / f"{name}__s0__chrom"
    run_dir.mkdir()
    p = probs_with_noise(noise)(name, 99)
    pd.DataFrame({"pair_index": np.arange(N_PAIRS), "cell_line": "GM12878", "label": labels, "logit": 0.0,
                  "prob": p}).to_parquet(run_dir / "predictions.parquet")
    rundir.write_record(run_dir / "record.json", {
        "run_id": run_dir.name, "variant": name, "seed": 0, "split": "chrom", "task": "mixture", "status": "ok",
        "config": ablations.preset(name).to_dict(), "metrics": {"test": evaluate(labels, p)},
        "learnt": learnt(labels, p), "paths": {}})


def test_design_rows_get_no_pairwise_comparison_and_no_explorer_page_each(tmp_path):
    """--compare gave each of 16 rows 'no shared seed' (four rows per metric), and the report planned one
    attention-explorer page per design row."""
    from cbat.report import ReportParams, plan_notebooks

    d = design(resolution=3)
    path = write_design_sweep(tmp_path / "s", d, planted, lambda lv: 0.5)
    add_preset_run(path, "baseline", 0.3)
    add_preset_run(path, "cbat_v2", 0.3)
    assert set(stats.compare_to_baseline(path, metrics=("aupr",), n_boot=5)["variant"]) == {"cbat_v2"}
    pages = [job.name for job in plan_notebooks(ReportParams(), path, tmp_path / "report")]
    assert [p for p in pages if p.startswith("attention_explorer")] == ["attention_explorer__baseline",
                                                                        "attention_explorer__cbat_v2"]


def test_decomposition_splits_the_total_into_main_effects_and_the_rest(tmp_path):
    path = write_design_sweep(tmp_path / "s", design(resolution=3), planted, lambda lv: 0.5)
    table = designed.effects(path, n_boot=10, causes=False)
    steps = designed.decomposition(path, table)
    assert list(steps["kind"]) == ["factor"] * len(FACTORS) + ["total"]  # no all-low/all-high runs here
    assert "interactions" not in designed.decomposition_figure(steps).layout.title.text  # no such bar to show
    # the bars add up to what the fitted model predicts from baseline to cbat_v2: a nested factor (anchors,
    # coded 0 where joint attention is off) moves half a unit, so its bar is half its effect
    n = len(FACTORS)
    move = ablations.coded(np.ones((1, n)))[0] - ablations.coded(-np.ones((1, n)))[0]
    predicted = designed.fit(path, n_boot=10).fit.contrast(dict(zip(FACTOR_NAMES, move)))["estimate"]
    assert sorted(set(move)) == [0.5, 1.0] and steps["value"].iloc[-1] == pytest.approx(predicted)
    assert steps["step"].iloc[-1] == "cbat_v2 − baseline (predicted)"  # no cbat_v2 or baseline run observed it
    assert (steps["metric"] == "aupr").all()
    assert designed.forest_figure(table).data and designed.decomposition_figure(steps).data
    for name, noise in (("baseline", 0.3), ("cbat_v2", 2.0)):  # observed corners: the total is measured
        add_preset_run(path, name, noise)
    steps = designed.decomposition(path, table).set_index("step")
    runs = designed.load_sweep(path).ok()  # every corner run counts, design rows that are corners included
    side = {r: set(levels_of(c["config"]).values()) for r, c in designed.load_sweep(path).records.items()}
    corner = runs["run_id"].map(side)
    total = runs[corner == {1}]["aupr"].mean() - runs[corner == {-1}]["aupr"].mean()
    assert steps.loc["cbat_v2 − baseline", "value"] == pytest.approx(total)
    assert steps.loc["interactions and residual", "value"] == pytest.approx(total - predicted)


# --- the interval method --------------------------------------------------------------------------------
def test_fit_effects_recovers_a_planted_linear_model():
    d = design(resolution=4)
    coded = ablations.coded(d.levels)
    rng = np.random.default_rng(1)
    y = 0.5 + coded @ np.array(list(BETA.values())) + rng.normal(0, 0.01, len(coded))
    fit = stats.fit_effects(coded, FACTOR_NAMES, scores=y)
    table = fit.table().set_index("term")
    inside = [(table.loc[f, "ci_low"] <= b <= table.loc[f, "ci_high"]) for f, b in BETA.items()]
    assert sum(inside) >= 11 and fit.df == 19


def test_fit_effects_names_what_the_runs_confound():
    """Corner runs (baseline, a twin, cbat_v2): the factors switched together from baseline to cbat_v2 cannot be
    told apart. The first of them took their whole effect, first with no alias named, then as its own effect
    beside the alias (a "local" bar of 0.5 in the decomposition): none of the group is estimable."""
    columns = np.array([[-0.5, -0.5, -0.5], [0.5, -0.5, -0.5], [-0.5, 0.5, 0.5], [0.5, 0.5, 0.5]] * 2)
    fit = stats.fit_effects(columns, ["window", "local", "sparsity"], scores=columns @ [0.1, 0.2, 0.3] + 0.5)
    assert np.isnan(fit.estimate[1:]).all() and fit.estimate[0] == pytest.approx(0.1)
    assert np.isnan(fit.contrast({"local": 1.0})["ci_low"]) and not np.isnan(fit.contrast({"window": 1.0})["ci_low"])
    assert fit.confounded == {"sparsity": ("local",), "local": ("sparsity",)}
    # no spread at all (two test pairs, as a helper met): no interval and no p value, not p 0 on rounding noise
    flat = stats.LinearEffects(("window",), np.array([5.6e-17]), np.zeros((1, 1)), df=4, n_runs=6, n_pairs=2)
    assert np.isnan([flat.contrast({"window": 1.0})[key] for key in ("ci_low", "ci_high", "p_value")]).all()


def seed_varying_runs(n_runs: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One config under many seeds whose quality varies a lot between seeds (as on the placement task)."""
    labels, signal = labels_and_signal()
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.0, 1.0, n_runs)
    probs = np.stack([1 / (1 + np.exp(-(q * signal - 1.0 + rng.normal(0, 1, N_PAIRS)))) for q in quality])
    return labels, probs


def test_aa_false_claim_rate_stays_near_nominal():
    labels, probs = seed_varying_runs()
    new = stats.false_claim_rate(labels, probs, n_reps=40, n_boot=30, seed=0)
    old = stats.false_claim_rate(labels, probs, n_reps=40, n_boot=30, seed=0, method="paired_bootstrap")
    two_sample = stats.false_claim_rate(labels, probs, n_reps=40, n_boot=30, seed=0, method="runs_effect")
    assert new["rate"] <= 0.10 and two_sample["rate"] <= 0.10, (new, two_sample)
    assert old["rate"] > max(new["rate"], two_sample["rate"]), (old, new, two_sample)


def test_multiplicity_adjustment_is_holm_and_keeps_nans():
    adjusted = stats.adjust([0.01, 0.04, np.nan, 0.03])
    assert adjusted[0] == pytest.approx(0.03) and np.isnan(adjusted[2])
    assert adjusted[1] == pytest.approx(0.06) and adjusted[3] == pytest.approx(0.06)
    # at most 2 true nulls (e.g. the tests for and against 2 claims): Holm divides by min(2, m - j + 1)
    bounded = stats.adjust([0.01, 0.04, np.nan, 0.03, 0.5], max_true=2)
    assert bounded[0] == pytest.approx(0.02) and bounded[3] == pytest.approx(0.06)
    assert bounded[1] == pytest.approx(0.08) and bounded[4] == pytest.approx(0.5) and np.isnan(bounded[2])
    assert stats.adjust([0.01, 0.04], method="fdr_bh", max_true=1) == pytest.approx([0.02, 0.04])  # holm only


def test_designed_sweep_end_to_end_from_the_cli(tmp_path):
    """Tiny: 16 design rows x 1 epoch on 120 pairs, then effects from the Python API."""
    import yaml
    from cbat.cli import main

    spec = {"variants": [], "seeds": [0], "design": {"kind": "fractional", "resolution": 3,
                                                    "overrides": {"d_model": 16}},
            "data": {"task": "grammar", "n_pairs": 120, "seed": 0, "enhancer_len": 300, "promoter_len": 200},
            "settings": {"epochs": 1, "batch_size": 32, "hook_every": 50, "progress": False, "num_threads": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "--spec", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    table = designed.effects(tmp_path / "s", n_boot=20, causes=False)
    assert list(table["factor"]) == FACTOR_NAMES and table["n_runs"].eq(16).all() and table["df"].eq(3).all()
    assert table["aliases"].str.len().gt(0).all() and table["ci_low"].le(table["ci_high"]).all()


def test_a_cause_that_some_run_cannot_score_is_left_out_not_a_crash(tmp_path):
    # a run whose test split holds one class of the cause records None for its AUPR
    path = write_design_sweep(tmp_path / "s", design(resolution=3),
                              lambda lv, row: None if row == 0 else planted(lv, row), lambda lv: 0.5)
    table = designed.effects(path, n_boot=10)
    assert set(table["cause"]) == {"all"} and len(table[table["kind"] == "main"]) == len(FACTOR_NAMES)


def test_figures_follow_the_metric_and_the_interval_level(tmp_path):
    path = write_design_sweep(tmp_path / "s", design(resolution=3), planted, lambda lv: 0.5)
    eighty = designed.effects(path, metric="auroc", level=0.8, n_boot=10, causes=False)
    assert (eighty["level"] == 0.8).all()
    assert "AUROC" in designed.forest_figure(eighty).layout.title.text
    assert "80% CI" in designed.forest_figure(eighty).layout.title.text
    steps = designed.decomposition(path, eighty)
    assert (steps["metric"] == "auroc").all()
    assert "AUROC" in designed.decomposition_figure(steps).layout.title.text


def test_a_partly_finished_design_says_what_it_cannot_estimate(tmp_path):
    import shutil

    d = design(resolution=3)
    path = write_design_sweep(tmp_path / "s", d, planted, lambda lv: 0.5)
    for run in (path / "runs").iterdir():
        if json.loads((run / "record.json").read_text())["variant"] in d.names[10:]:
            shutil.rmtree(run)
    with pytest.warns(UserWarning, match="10 of the design's 16 rows have finished"):
        table = designed.effects(path, n_boot=10, causes=False)
    unknown = table["ci_low"].isna()  # 13 coefficients from 10 rows: no interval, some effects none either
    assert table["effect"].isna().any() and (table.loc[unknown, "claim"] == "not estimable").all()
    assert not (table.loc[~unknown, "claim"] == "not estimable").any()
    # each factor without an effect names the factors it is confounded with, which have none either (the one
    # least squares keeps would carry the whole group's effect), and they name it back
    by_factor = table.set_index("factor")
    lost = by_factor.loc[table["effect"].isna().to_numpy(), "aliases"]
    for factor, aliases in lost.items():
        partners = [a for a in aliases.split(", ") if a in by_factor.index]
        assert partners and all(p in lost.index for p in partners), (factor, aliases)
        assert all(factor in by_factor.loc[p, "aliases"].split(", ") for p in partners), (factor, partners)
    assert by_factor["effect"].notna().any()  # the factors the finished rows do separate keep their effects
    # no cbat_v2 or baseline run to observe the total, and the model cannot predict it without every factor
    assert "total" not in set(designed.decomposition(path, table)["kind"])
    for run in (path / "runs").iterdir():  # no row finished: nothing to fit, and the assessment still runs
        shutil.rmtree(run)
    add_preset_run(path, "baseline", 0.3)
    assert designed.fittable_design(path) is None
    from diagnostics.verdicts import assess

    assessment = assess(path, hypotheses=["H1"], probes=False, n_boot=10)
    assert assessment.table.set_index("id").loc["H1", "verdict"] == "inconclusive"
    assert "design.forest" not in assessment.figures


def test_one_model_under_two_variant_names_is_counted_once(tmp_path):
    """Five names for the windowed config gave the window effect 16 degrees of freedom from three models."""
    from test_diagnostics_fakes import write_sweep

    base = ablations.preset("baseline")
    window = dataclasses.replace(base, window_size=16)
    noise = {"baseline": 1.0, "window": 2.0, "window_copy": 2.0}
    path = write_sweep(tmp_path / "s", {"baseline": base, "window": window, "window_copy": window}, [0, 1, 2],
                       lambda variant, seed: probs_with_noise(noise[variant])(variant, seed))
    once = write_sweep(tmp_path / "once", {"baseline": base, "window": window}, [0, 1, 2],
                       lambda variant, seed: probs_with_noise(noise[variant])(variant, seed))
    twice, single = (designed.effects(p, n_boot=10, causes=False).set_index("factor").loc["window"]
                     for p in (path, once))
    assert twice["n_runs"] == single["n_runs"] == 6 and twice["df"] == single["df"]
    assert twice["ci_high"] - twice["ci_low"] == pytest.approx(single["ci_high"] - single["ci_low"])

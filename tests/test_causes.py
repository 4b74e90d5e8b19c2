"""The report's first page: what was trained, which variants learnt, and which planted cause each variant misses."""
import json

import numpy as np
import pytest

import cbat
from diagnostics.causes import cause_figure, cause_table, describe_settings, learnt_status
from test_diagnostics_fakes import N_PAIRS, labels_and_signal, write_sweep

# pairs 0-119 follow long_range, 120-199 diffuse; 200-239 are easy negatives (cause "none")
CAUSES = np.array(["long_range"] * 120 + ["diffuse"] * 80 + ["none"] * 40)


def _probs(variant: str, seed: int) -> np.ndarray:
    _, signal = labels_and_signal()
    rng = np.random.default_rng(seed)
    score = signal + rng.normal(0, 0.3, N_PAIRS)
    if variant == "windowed":  # cannot see long-range positives: their scores are noise
        long_range = CAUSES == "long_range"
        score[long_range] = rng.normal(0, 1, long_range.sum())
    if variant == "noise":
        score = rng.normal(0, 1, N_PAIRS)
    return 1 / (1 + np.exp(-score))


def _sweep(tmp_path):
    base = cbat.preset("baseline")
    return write_sweep(tmp_path / "s", {"baseline": base, "windowed": base, "noise": base}, [0, 1, 2], _probs,
                       causes=CAUSES)


def test_learnt_status_names_variants_and_reasons(tmp_path):
    status = learnt_status(_sweep(tmp_path)).set_index("variant")
    assert status.loc["baseline", "status"] == "learnt" and status.loc["baseline", "learnt"] == 3
    assert status.loc["noise", "status"] == "not learnt" and "includes 0.5" in status.loc["noise", "reasons"]
    assert status.loc["noise", "median_auroc"] < 0.6 < status.loc["baseline", "median_auroc"]


def test_tables_list_variants_in_the_order_the_sweep_declared_them(tmp_path):
    path = _sweep(tmp_path)
    spec = json.loads((path / "sweep.json").read_text())
    spec["variants"] = {"windowed": {}, "noise": {}, "baseline": {}}  # not the runs' (alphabetical) order
    (path / "sweep.json").write_text(json.dumps(spec))
    assert learnt_status(path)["variant"].tolist() == ["windowed", "noise", "baseline"]
    assert cause_table(path)["variant"].drop_duplicates().tolist() == ["windowed", "noise", "baseline"]


def test_cause_table_shows_which_positives_a_variant_misses(tmp_path):
    table = cause_table(_sweep(tmp_path)).set_index(["variant", "cause"])
    assert "none" not in table.index.get_level_values("cause")
    assert table.loc[("baseline", "long_range"), "median_auroc"] > 0.85
    assert abs(table.loc[("windowed", "long_range"), "median_auroc"] - 0.5) < 0.15
    assert table.loc[("windowed", "diffuse"), "median_auroc"] > 0.85  # only the long-range cause is lost
    assert table.loc[("noise", "diffuse"), "n_learnt"] == 0 and table.loc[("baseline", "diffuse"), "n_runs"] == 3
    fig = cause_figure(cause_table(tmp_path / "s"))
    assert list(fig.data[0].x) == ["diffuse", "long_range"] and list(fig.data[0].y)[0] == "baseline"
    assert "noise (not learnt)" in list(fig.data[0].y)  # its cells are not what that variant finds


def test_no_causes_gives_an_empty_table_and_a_figure_that_says_so(tmp_path):
    base = cbat.preset("baseline")
    path = write_sweep(tmp_path / "plain", {"baseline": base}, [0], _probs)
    assert cause_table(path).empty
    assert "No planted causes" in cause_figure(cause_table(path)).layout.title.text


def test_describe_settings_reads_the_spec_and_fills_training_defaults():
    quick = {"data": {"task": "mixture", "n_pairs": 2400, "seed": 0}, "splits": ["chrom"], "seeds": [0, 1, 2],
             "variants": ["baseline", "no_cross"], "design": None,
             "settings": {"epochs": 12, "lr": 3e-3, "lr_warmup_steps": 100, "warmup_epochs": 5, "patience": 4}}
    text = describe_settings(quick)
    assert text.startswith("mixture benchmark, 2,400 pairs (data seed 0), split chrom; 2 variants x seeds 0, 1, 2")
    assert "up to 12 epochs, batch 32, AdamW lr 0.003 (100-step warm-up)" in text  # batch: TrainSettings' default
    assert "early stopping after epoch 5 with patience 4" in text
    user = describe_settings({"data": {"path": "pairs.csv", "permute_labels": 1}, "splits": ["cell_line:NHEK"],
                              "seeds": [7], "variants": [], "design": {"kind": "fractional"}, "settings": {}})
    assert user.startswith("data pairs.csv, labels permuted (a null control), split cell_line:NHEK")
    assert "and a fractional design" in user and "warm-up" not in user
    short = describe_settings({**quick, "settings": {"epochs": 1, "warmup_epochs": 4}})  # it read "1 epochs ...
    assert "up to 1 epoch, batch" in short and "no early stopping (it waits 4 epochs)" in short  # after epoch 4"
    with pytest.raises(ValueError, match="sweep settings"):
        describe_settings({**quick, "settings": {"epoch": 3}})
    own = describe_settings({**quick, "variant_settings": {"cbat_v2": {"seeds": [0, 1]}, "boom": {"lr": 1e12}}})
    assert own.endswith("counts as none); cbat_v2 with seeds 0, 1; boom with lr 1000000000000.0")


def test_run_settings_names_what_a_variant_ran_differently(tmp_path):
    """A variant's own settings (lr 1e12 that failed every run) and seeds were missing from the sentence."""
    from cbat.sweep import quick_sweep_spec

    from diagnostics.causes import run_settings

    path = write_sweep(tmp_path / "s", {"baseline": cbat.preset("baseline")}, [0], _probs)
    spec = quick_sweep_spec(variants=["baseline", {"name": "boom", "config": "baseline", "settings": {"lr": 1e12}},
                                      {"name": "cbat_v2", "config": "cbat_v2", "seeds": [0, 1, 2]}])
    (path / "sweep.json").write_text(json.dumps({"spec": spec.to_dict()}))
    assert run_settings(path)["variant_settings"] == {"boom": {"lr": 1e12}, "cbat_v2": {"seeds": [0, 1, 2]}}

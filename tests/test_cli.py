"""`cbat train` and `cbat sweep`: listed in --help, clear one-line errors, a tiny training end to end."""
import json
import subprocess
import sys

import pandas as pd
import numpy as np
import pytest

from cbat.cli import build_parser, main

TINY = ["--n-pairs", "120", "--epochs", "1", "--batch-size", "32", "--no-progress", "--device", "cpu"]


def test_help_lists_train_and_sweep():
    text = build_parser().format_help()
    assert "train" in text and "sweep" in text


def test_help_loads_no_training_stack():
    # `cbat --help` builds every subcommand's parser; torch, scikit-learn and scipy load only when a command runs
    # (they took `cbat --help` to 6-7 s). A fresh interpreter, because this test process has them loaded already.
    code = ("import sys; from cbat.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_data_names_survive_their_submodules_loading():
    # cbat.data.synthetic is both a function and a submodule: once the parser has imported the submodule (and
    # anything else has imported every other one) each public name must still be the function or class.
    code = ("import importlib, types; from cbat.cli import build_parser; build_parser(); import cbat.data; "
            "[importlib.import_module('cbat.data.' + m) for m in cbat.data._SUBMODULES]; "
            "print([n for n in cbat.data.__all__ if isinstance(getattr(cbat.data, n), types.ModuleType)], "
            "len(cbat.data.synthetic('long_range', n_pairs=8, seed=0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] 8"


def test_wrong_backend_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--backend", "bogus", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "backend 'bogus'" in err and "local" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_bad_data_fails_before_the_sweep_folder_is_written(tmp_path, capsys):
    # the corrected command must be able to use the same --out (a written sweep.json would hold the bad spec)
    table = tmp_path / "pairs.csv"
    table.write_text("enhancer_seq,promoter_seq,label,cell_line\nACGTACGTAAACGTACGTAA,GGGCCCGGGCCC,2,GM12878\n")
    out = tmp_path / "runs"
    assert main(["sweep", "--data", str(table), "--out", str(out), *TINY[2:]]) == 2
    assert "line 2, field 'label': '2' is not 0 or 1" in capsys.readouterr().err
    assert not out.exists()


def test_a_held_out_cell_line_missing_from_the_data_fails_before_the_folder_is_written(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["sweep", "--data", "long_range", "--splits", "cell_line:HeLa", "--out", str(out), *TINY]) == 2
    assert "test cell line 'HeLa' is not in the data" in capsys.readouterr().err
    assert not out.exists()


def test_a_config_file_names_its_run_by_the_file_in_train_as_in_sweep(tmp_path):
    """cbat train named the run by the config's own name, cbat sweep by the file (a helper got two names)."""
    config = tmp_path / "small.yaml"
    config.write_text("name: baseline_small\nd_model: 16\n")
    for command in ("train", "sweep"):
        out = tmp_path / command
        assert main([command, "--config", str(config), "--data", "grammar", "--seeds", "0", "--out", str(out),
                     *TINY]) == 0
        assert [p.name for p in (out / "runs").iterdir()] == ["small__s0__chrom"]


@pytest.mark.parametrize("data", [["pairs.csv"], ['{"task": "grammar", "n_pairs": 40}']])
def test_sizing_flags_on_a_data_file_or_json_spec_are_refused(tmp_path, capsys, data):
    """--n-pairs with a data file (or a JSON spec) was dropped without a word."""
    (tmp_path / "pairs.csv").write_text("enhancer_seq,promoter_seq,label,cell_line\n")
    data = [str(tmp_path / d) if d.endswith(".csv") else d for d in data]
    out = tmp_path / "runs"
    assert main(["train", "--data", *data, "--data-seed", "3", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "--n-pairs and --data-seed size a synthetic task" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_held_out_cell_line_with_one_label_fails_before_the_folder_is_written(tmp_path, capsys):
    """It used to train, then score NaN AUPR/AUROC and mark the run "not learnt: test set holds one class"."""
    from cbat.data import synthetic

    table = synthetic("grammar", 120, seed=0).to_table()
    held_out = np.arange(len(table)) >= 80
    table = table.assign(cell_line=np.where(held_out, "HeLa", "GM12878"), label=np.where(held_out, 0, table["label"]))
    table.to_csv(tmp_path / "pairs.csv", index=False)
    out = tmp_path / "runs"
    assert main(["train", "--data", str(tmp_path / "pairs.csv"), "--split", "cell_line:HeLa", "--out", str(out),
                 *TINY[2:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "split 'cell_line:HeLa': test holds one class only" in err and "one label" in err, err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_data_too_small_for_the_split_fails_before_the_folder_is_written(tmp_path, capsys):
    """Every run used to fail with 'split.val is empty', each in its own record, and the report named none."""
    out = tmp_path / "runs"
    assert main(["sweep", "--data", "grammar", "--n-pairs", "12", "--out", str(out), *TINY[2:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "split 'chrom': val holds one class only (train 7, val 1, test 4 of 12 pairs)" in err, err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_a_data_spec_key_that_no_loader_takes_is_one_line(tmp_path, capsys):
    spec = json.dumps({"task": "long_range", "n_pairs": 40, "enhancer_length": 600})
    assert main(["sweep", "--data", spec, "--out", str(tmp_path / "runs"), *TINY[2:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "unexpected ['enhancer_length']" in err and "'enhancer_len'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--config", "no_such.yaml"], "no_such.yaml: neither a preset (baseline, cbat_v1"),
    (["--settings", "broken.yaml"], "--settings broken.yaml: not valid YAML (while parsing a flow sequence"),
    (["--spec", "broken.yaml"], "--spec broken.yaml: not valid YAML"),
    (["--device", "cuda:99"], "'cuda:99', but this machine has"),
    (["--device", "cuda:x"], "expected auto, cpu, cuda or cuda:<i>"),
])
def test_bad_sweep_input_fails_before_data_or_folder(argv, message, capsys, tmp_path, monkeypatch):
    """A variant, settings file or device that cannot work is one line, and the corrected command may reuse --out."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text("epochs: [1\n")
    monkeypatch.setattr("cbat.sweep.load_data", lambda spec: pytest.fail("the data were built before the check"))
    assert main(["sweep", "--data", "long_range", *TINY, *argv, "--out", "runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("variants, message", [
    ("[baseline]\nseeds: 1", "'seeds' must be a list (e.g. [1]), got 1"),
    ("[baseline]\nsplits: chrom", "'splits' must be a list (e.g. ['chrom']), got 'chrom'"),
    ("[baseline, {name: baseline, config: cbat_v1}]", "variant name 'baseline' is given twice"),
    ("[{name: tb, config: baseline, overides: {d_model: 16}}]", "variant 'tb': unexpected ['overides']"),
    ("[{name: tb, config: baseline, settings: {lrr: 0.1}}]", "settings of variant 'tb'"),
])
def test_a_bad_variant_in_a_spec_file_fails_before_data_or_folder(variants, message, capsys, tmp_path, monkeypatch):
    """A duplicate name trained one run under the wrong config, a misspelled key was ignored, and a settings typo
    left sweep.json behind, so the corrected spec was refused as "a different sweep"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(f"variants: {variants}\ndata: {{task: long_range, n_pairs: 120}}\n")
    monkeypatch.setattr("cbat.sweep.load_data", lambda spec: pytest.fail("the data were built before the check"))
    assert main(["sweep", "--spec", "spec.yaml", "--out", "runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_random_split_warns_once_in_one_line(capsys, tmp_path):
    """The leak warning came twice (the split is made before the folder is written and again for the run), each
    as a raw UserWarning with a source path."""
    assert main(["sweep", "--preset", "baseline", "--seeds", "0", "--splits", "random", "--data", "long_range",
                 *TINY, "--out", str(tmp_path / "runs")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "random pair split" in line]
    assert len(lines) == 1 and lines[0].startswith("cbat sweep: warning: split: a random pair split lets")


def test_compare_without_a_baseline_is_refused_before_training(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("cbat.sweep.load_data", lambda spec: pytest.fail("the data were built before the check"))
    assert main(["sweep", "--preset", "no_cross", "--compare", "--data", "long_range", *TINY,
                 "--out", str(tmp_path / "runs")]) == 2
    assert "lacks; add it (--preset baseline)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_two_config_files_of_one_name_are_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.yaml").write_text("d_model: 16\n")
    assert main(["sweep", "--config", "a/m.yaml", "b/m.yaml", "--data", "long_range", *TINY, "--out", "runs"]) == 2
    assert "variant name 'm' is given twice" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_config_file_changed_after_its_run_finished_is_refused(capsys, tmp_path, monkeypatch):
    """Rerunning after an edit showed the old run's results as the new config's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cx.yaml").write_text("d_model: 16\nn_heads: 2\n")
    argv = ["sweep", "--config", "cx.yaml", "--data", "long_range", *TINY, "--seeds", "0", "--out", "runs"]
    assert main(argv) == 0
    capsys.readouterr()
    (tmp_path / "cx.yaml").write_text("d_model: 32\nn_heads: 2\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "run cx__s0__chrom was trained with another config (d_model 16 -> 32) than the spec now gives" in err


def test_an_output_that_is_a_file_is_one_line(capsys, tmp_path):
    taken = tmp_path / "pairs.csv"
    taken.write_text("a,b\n")
    assert main(["sweep", "--data", "long_range", *TINY, "--out", str(taken)]) == 2
    assert f"{taken}: is a file; expected a sweep folder" in capsys.readouterr().err
    assert taken.read_text() == "a,b\n"


def test_a_folder_of_other_files_is_not_made_a_sweep(capsys, tmp_path):
    """`cbat train --out .` in a data folder wrote sweep.json, runs/ and results among the user's files."""
    mine = tmp_path / "my_data"
    mine.mkdir()
    (mine / "pairs.csv").write_text("a,b\n")
    assert main(["train", "--data", "long_range", *TINY, "--out", str(mine)]) == 2
    assert f"{mine}: not a sweep folder (no sweep.json) and not empty (pairs.csv)" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["pairs.csv"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "no_such_task_or_file", "--out", "x"], "neither a synthetic task"),
    (["sweep", "--variants", "cbat_v9", "--out", "x"], "unknown variant 'cbat_v9'"),
    (["sweep", "--splits", "by_planet", "--out", "x"], "split 'by_planet'"),
    (["train", "--epochs", "0", "--out", "x"], "'epochs'"),
    (["attribute", "--run", "r", "--threshold", "1.5", "--out", "x"], "--threshold 1.5: expected a probability"),
    (["attribute", "--run", "r", "--ism", "-1", "--out", "x"], "--ism -1: expected a number of loops >= 0"),
    (["attribute", "--run", "r", "--delta-threshold", "-1", "--out", "x"], "--delta-threshold -1.0: expected a "
                                                                            "positive"),
])
def test_wrong_arguments_get_one_line_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_train_command_writes_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "baseline", "--out", str(out), *TINY]) == 0
    record = json.loads((out / "runs" / "baseline__s0__chrom" / "record.json").read_text())
    assert record["status"] == "ok" and record["settings"]["epochs"] == 1
    assert list(pd.read_parquet(out / "results.parquet").run_id) == ["baseline__s0__chrom"]
    assert "baseline__s0__chrom" in capsys.readouterr().out


def test_attribute_warns_when_the_run_did_not_learn(tmp_path, capsys):
    # labels permuted (the null control): the run's record says it did not learn, and attribution says so
    out = tmp_path / "null"
    data = json.dumps({"task": "long_range", "n_pairs": 120, "seed": 0, "permute_labels": 0})
    assert main(["train", "--preset", "baseline", "--data", data, "--out", str(out), *TINY[2:]]) == 0
    run = out / "runs" / "baseline__s0__chrom"
    assert json.loads((run / "record.json").read_text())["learnt"]["learnt"] is False
    printed = capsys.readouterr().out  # the table says so where its numbers are first read
    assert "learnt" in printed.splitlines()[0].split()
    assert "1 finished run(s) did not learn, so every comparison with them reads 'not learnt': baseline__s0__chrom (" \
        in printed
    assert main(["attribute", "--run", str(run), "--top", "1", "--n-shuffles", "1", "--n-steps", "8",
                 "--max-steps", "8", "--ism", "0", "--no-progress", "--out", str(tmp_path / "att")]) == 0
    err = capsys.readouterr().err
    assert "warning: baseline__s0__chrom did not learn" in err and "model at chance" in err
    page = (tmp_path / "att" / "report.html").read_text()  # the page says it too, above the loops
    assert page.index("baseline__s0__chrom did not learn") < page.index("How far to trust")


def test_compare_with_the_baseline_alone_says_there_is_nothing_to_compare(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["sweep", "--preset", "baseline", "--data", "long_range", "--seeds", "0", *TINY, "--out", str(out),
                 "--compare"]) == 0
    shown = capsys.readouterr().out
    assert "nothing to compare" in shown and "Empty DataFrame" not in shown
    assert (out / "comparison.csv").is_file()


def _sweep_spec(*flags: str):
    from cbat.commands.sweep import _spec

    return _spec(build_parser().parse_args(["sweep", "--out", "unused", *flags]))


def test_quick_sweep_takes_the_data_seeds_and_settings_flags_given_on_top():
    """--quick used to drop --n-pairs and --data-seed without a word, and kept cbat_v2's own three seeds."""
    quick = {"task": "mixture", "n_pairs": 2400, "seed": 0, "held_out_pairs": 4800, "easy_negatives_tested": 1 / 3}
    small = _sweep_spec("--quick", "--n-pairs", "200", "--seeds", "0", "--epochs", "1")
    assert small.data == {**quick, "n_pairs": 200}
    assert small.settings["epochs"] == 1 and small.seeds == [0]
    assert {run["seed"] for run in small.runs()} == {0}
    reseeded = _sweep_spec("--quick", "--data-seed", "3")  # the quick size stays
    assert reseeded.data == {**quick, "seed": 3}
    assert _sweep_spec("--quick").data == quick
    # another task keeps the quick size and held-out draw, and its own share of tested easy negatives
    assert _sweep_spec("--quick", "--data", "long_range").data == {"task": "long_range", "n_pairs": 2400, "seed": 0,
                                                                  "held_out_pairs": 4800}
    assert _sweep_spec("--quick", "--data", '{"task": "diffuse"}').data == {"task": "diffuse"}  # as written
    assert _sweep_spec("--data", "diffuse").data == {"task": "diffuse", "n_pairs": 2000, "seed": 0}


def test_a_spec_file_takes_seeds_splits_and_settings_flags_and_refuses_the_rest(tmp_path, capsys):
    """--seeds and --epochs were dropped without a word beside --spec."""
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("variants: [baseline]\nseeds: [0, 1, 2]\ndata: {task: diffuse, n_pairs: 200}\n"
                         "settings: {epochs: 5, lr: 0.001}\n")
    spec = _sweep_spec("--spec", str(spec_file), "--seeds", "0", "--epochs", "1", "--splits", "random")
    assert spec.seeds == [0] and spec.splits == ["random"] and spec.settings == {"epochs": 1, "lr": 0.001}
    assert spec.data == {"task": "diffuse", "n_pairs": 200}
    assert _sweep_spec("--spec", str(spec_file)).splits == ["chrom"]
    for flags in (["--variants", "presets"], ["--n-pairs", "100"], ["--quick"]):
        assert main(["sweep", "--spec", str(spec_file), *flags, "--out", str(tmp_path / "out")]) == 2
        assert "holds the variants and data" in capsys.readouterr().err
    designed = tmp_path / "designed.yaml"  # the advice was "add --design", which the spec's design then refused
    designed.write_text("design: {kind: fractional, resolution: 3}\ndata: {task: diffuse, n_pairs: 200}\n")
    assert main(["sweep", "--spec", str(designed), "--foldover", "--out", str(tmp_path / "out")]) == 2
    assert "holds the design; set them in its 'design'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_quick_sweep_refuses_variant_flags_it_would_ignore(capsys):
    assert main(["sweep", "--quick", "--variants", "presets", "--out", "unused"]) == 2
    assert "--quick runs the quick sweep's variants" in capsys.readouterr().err

"""`cbat train` and `cbat sweep`: listed in --help, clear one-line errors, a tiny training end to end."""
import json

import pandas as pd
import pytest

from cbat.cli import build_parser, main

TINY = ["--n-pairs", "120", "--epochs", "1", "--batch-size", "32", "--no-progress", "--device", "cpu"]


def test_help_lists_train_and_sweep():
    text = build_parser().format_help()
    assert "train" in text and "sweep" in text


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "no_such_task_or_file", "--out", "x"], "neither a synthetic task"),
    (["sweep", "--variants", "cbat_v9", "--out", "x"], "unknown variant 'cbat_v9'"),
    (["sweep", "--splits", "by_planet", "--out", "x"], "split 'by_planet'"),
    (["train", "--epochs", "0", "--out", "x"], "'epochs'"),
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

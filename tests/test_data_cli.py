"""``cbat synth`` writes a table that ``cbat.data.load`` reads back, plus the ground truth."""
import numpy as np
import pandas as pd
import pytest

from cbat.cli import main
from cbat.data import load, split, synthetic
from cbat.data.loaders import DataError


def test_synth_writes_loadable_table_and_truth(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CBAT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench.parquet"
    assert main(["synth", "--task", "diffuse", "--n-pairs", "24", "--seed", "3", "--out", str(out)]) == 0
    assert "wrote 24 pairs" in capsys.readouterr().out
    loaded = load(out)
    direct = synthetic("diffuse", 24, seed=3, cache_dir=tmp_path / "cache")
    assert np.array_equal(loaded.enhancer, direct.enhancer) and np.array_equal(loaded.labels, direct.labels)
    truth = pd.read_parquet(tmp_path / "bench.truth.parquet")
    assert truth.equals(direct.truth)


def test_synth_scaffold_survives_a_csv_and_stays_out_of_test(tmp_path, monkeypatch):
    monkeypatch.setenv("CBAT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench.csv"
    assert main(["synth", "--n-pairs", "300", "--easy-negatives-tested", "0.25", "--out", str(out)]) == 0
    loaded = load(out)
    scaffold = loaded.meta["scaffold"].astype(str) == "True"
    easy = loaded.meta["cause"] == "none"
    assert scaffold.sum() == easy.sum() - round(0.25 * easy.sum()) and not (scaffold & ~easy).any()
    parts = split(loaded, by="chrom", seed=0)
    assert not scaffold.to_numpy()[parts.test].any() and scaffold.to_numpy()[parts.train].any()


def test_synth_held_out_draw_survives_a_csv_and_lands_in_test_only(tmp_path, monkeypatch):
    monkeypatch.setenv("CBAT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench.csv"
    assert main(["synth", "--n-pairs", "300", "--held-out-pairs", "100", "--out", str(out)]) == 0
    loaded = load(out)  # the truth companion stays attached: the rows are the table's as written
    held = (loaded.meta["held_out"].astype(str) == "True").to_numpy()
    assert held.tolist() == [False] * 300 + [True] * 100 and loaded.truth["pair_index"].max() >= 300
    parts = split(loaded, by="chrom", seed=0)
    assert not held[np.concatenate([parts.train, parts.val])].any() and held[parts.test].sum() > 50


def test_synth_rejects_bad_output_name(tmp_path, capsys):
    assert main(["synth", "--n-pairs", "4", "--out", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err
    assert "x.txt" in err and "expected a .parquet" in err
    assert not (tmp_path / "x.txt").exists()


def test_two_synth_tables_in_one_folder_keep_every_pair(tmp_path, monkeypatch, capsys):
    """Each generation names its pairs by task and seed; one id over other sequences is an error, never a drop."""
    monkeypatch.setenv("CBAT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "tables"
    folder.mkdir()
    for seed in (0, 1):
        assert main(["synth", "--task", "sparse_strong", "--n-pairs", "40", "--seed", str(seed),
                     "--out", str(folder / f"s{seed}.csv")]) == 0
    assert len(load(folder)) == 80
    assert main(["synth", "--task", "sparse_strong", "--n-pairs", "40", "--seed", "0", "--cell-lines", "K562",
                 "--out", str(folder / "k562.csv")]) == 0
    assert main(["sweep", "--data", str(folder), "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "k562.csv" in err and "s0.csv" in err and "different sequences" in err
    assert not (tmp_path / "runs").exists()


def test_a_held_out_test_file_beside_training_files_splits_and_may_not_repeat_a_trained_pair(tmp_path, monkeypatch):
    """The README's use: one file without the column (it read as NaN and the split refused the data), one file of
    held-out pairs. A pair in both, once held out and once not, was kept once without a word."""
    monkeypatch.setenv("CBAT_CACHE", str(tmp_path / "cache"))
    table = synthetic("sparse_strong", 200, seed=5, cache_dir=tmp_path / "cache").to_table()
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    table.iloc[:150].to_csv(train, index=False)
    table.iloc[150:].assign(held_out=True).to_csv(test, index=False)
    ds = load([train, test])
    parts = split(ds, by="chrom", seed=0)
    held = np.arange(len(ds)) >= 150
    assert held[parts.test].sum() == 50 and not held[np.concatenate([parts.train, parts.val])].any()
    table.iloc[140:].assign(held_out=True).to_csv(test, index=False)  # 10 training pairs also held out
    with pytest.raises(DataError, match="held_out True in one place and False in the other"):
        load([train, test])
    test.write_text(table.iloc[150:].assign(held_out="later").to_csv(index=False))
    with pytest.raises(DataError, match="test.csv: meta column 'held_out' holds \\['later'\\]"):
        load(test)


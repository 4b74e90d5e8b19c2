"""No-sequence baselines: distance alone and propensity alone, beside every run of a sweep, with a flag."""
import json

import numpy as np
import pandas as pd
import pytest

import cbat
from cbat import rundir
from cbat.data import EPIDataset, distance_baseline, genomic_distance, split
from cbat.metrics import evaluate, learnt
from cbat.sweep import load_data, make_split
from diagnostics.baselines import baselines_note, baselines_table, run_flags


def _dataset(distance: np.ndarray, labels: np.ndarray, cells=None) -> EPIDataset:
    n = labels.size
    chroms = np.array([f"chr{1 + i % 6}" for i in range(n)])
    tss = 5_000_000 + 1000 * np.arange(n)
    meta = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "cell_line": cells if cells is not None else "K562",
                         "chrom": chroms, "enhancer_id": [f"e{i}" for i in range(n)],
                         "promoter_id": [f"g{i // 3}" for i in range(n)],
                         "enhancer_start": tss - distance - 200, "enhancer_end": tss - distance + 200,
                         "promoter_start": tss - 100, "promoter_end": tss + 100})
    codes = np.zeros((n, 8), dtype=np.uint8)
    return EPIDataset(codes, codes.copy(), labels, meta)


def _log_uniform(rng, n):
    return np.exp(rng.uniform(np.log(10_000), np.log(1_000_000), n)).astype(np.int64)


def test_distance_baseline_is_high_where_distance_decides_and_chance_where_it_does_not():
    rng = np.random.default_rng(0)
    distance = _log_uniform(rng, 1200)
    decides = _dataset(distance, (distance < 80_000).astype(int))
    assert genomic_distance(decides) == pytest.approx(distance.astype(float))
    parts = split(decides, by="chrom", test=["chr1", "chr2"], val_fraction=0.0)
    assert distance_baseline(decides, parts)["auroc"] > 0.98
    independent = _dataset(distance, rng.integers(0, 2, distance.size))
    assert abs(distance_baseline(independent, parts)["auroc"] - 0.5) < 0.08


def test_distance_baseline_is_at_chance_on_the_embedded_benchmark():
    ds = cbat.data.synthetic(task="grammar", n_pairs=600, seed=0, enhancer_len=300, promoter_len=200)
    result = distance_baseline(ds, split(ds, by="chrom", seed=0))
    assert abs(result["auroc"] - 0.5) < 0.12


def test_distance_baseline_needs_coordinates():
    ds = _dataset(np.arange(10) + 20_000, np.arange(10) % 2)
    ds.meta = ds.meta.drop(columns=["enhancer_start"])
    assert genomic_distance(ds) is None
    with pytest.raises(ValueError, match="no coordinates"):
        distance_baseline(ds, split(ds, by="chrom", test=["chr1"], val_fraction=0.0))


def _write_sweep(root, data_path, runs: dict[str, np.ndarray], split_name: str):
    """A sweep directory by the contract (sweep.json with the data spec, records, predictions)."""
    spec = {"data": {"path": str(data_path)}, "split_seed": 0}
    root.mkdir()
    (root / "sweep.json").write_text(json.dumps({"spec": spec, "variants": {}}))
    ds = load_data(spec["data"])
    test = make_split(ds, split_name, 0).test
    for variant, probs in runs.items():
        run_id = f"{variant}__s0__{split_name.replace(':', '-')}"
        run_dir = root / "runs" / run_id
        run_dir.mkdir(parents=True)
        labels = ds.labels[test]
        pd.DataFrame({"pair_index": test, "cell_line": ds.meta["cell_line"].to_numpy()[test], "label": labels,
                      "logit": np.log(probs / (1 - probs)), "prob": probs}).to_parquet(run_dir / "predictions.parquet")
        record = {"run_id": run_id, "variant": variant, "seed": 0, "split": split_name, "task": "mine",
                  "status": "ok", "error": None, "config": cbat.preset("baseline").to_dict(),
                  "metrics": {"test": evaluate(labels, probs)}, "learnt": learnt(labels, probs),
                  "paths": {"predictions": "predictions.parquet"}}
        rundir.write_record(run_dir / "record.json", record)
    return ds, test


def test_baselines_table_shows_both_baselines_and_flags_a_model_that_does_not_beat_them(tmp_path):
    rng = np.random.default_rng(1)
    n = 900
    distance = _log_uniform(rng, n)
    # distance helps but does not decide: closer pairs loop more often
    labels = (rng.random(n) < np.where(distance < 60_000, 0.8, 0.2)).astype(int)
    cells = np.where(np.arange(n) % 2 == 0, "GM12878", "NHEK")
    table = _dataset(distance, labels, cells).to_table()
    data_path = tmp_path / "pairs.csv"
    table.to_csv(data_path, index=False)
    ds = load_data({"path": str(data_path)})
    test = make_split(ds, "chrom", 0).test
    y = ds.labels[test]
    good = np.clip(0.05 + 0.9 * y + rng.normal(0, 0.05, test.size), 0.01, 0.99)   # knows the answer
    weak = np.clip(0.5 + 0.15 * (y - 0.5) + rng.normal(0, 0.25, test.size), 0.01, 0.99)  # learnt, less than distance
    bad = rng.uniform(0.01, 0.99, test.size)                                        # knows nothing
    _write_sweep(tmp_path / "sweep", data_path, {"good": good, "weak": weak, "bad": bad}, "chrom")

    result = baselines_table(tmp_path / "sweep", n_boot=300)
    baselines = result[result["kind"] == "baseline"]
    assert set(baselines["name"]) == {"distance", "propensity"}
    assert set(baselines["cell_line"]) == {"all", "GM12878", "NHEK"}        # per test cell line, and all pairs
    distance_all = baselines[(baselines["name"] == "distance") & baselines["pooled"]].iloc[0]
    assert distance_all["cell_line"] == "all"
    assert distance_all["auroc"] > 0.7 and distance_all["n_test"] == test.size
    flags = run_flags(result).set_index("variant")
    assert bool(flags.loc["good", "beats_baselines"]) and flags.loc["good", "ci_low"] > 0
    assert flags.loc["weak", "learnt"] and flags.loc["weak", "beats_baselines"] is False
    assert flags.loc["weak", "diff"] < 0 and flags.loc["weak", "better_baseline"] == "distance"
    # a run at chance keeps its numbers but is compared with nothing (the learnt guard)
    assert not flags.loc["bad", "learnt"] and pd.isna(flags.loc["bad", "beats_baselines"])
    assert np.isfinite(flags.loc["bad", "diff"])
    note = baselines_note(tmp_path / "sweep", result)
    assert "1 of 3 runs beat" in note and "1 did not learn" in note


def test_cell_line_hold_out_baselines_over_loaded_files(tmp_path):
    rng = np.random.default_rng(2)
    n = 400
    distance = _log_uniform(rng, n)
    labels = (distance < 60_000).astype(int)
    cells = np.where(np.arange(n) < n // 2, "GM12878", "NHEK")
    data_path = tmp_path / "pairs.csv"
    _dataset(distance, labels, cells).to_table().to_csv(data_path, index=False)
    ds, test = _write_sweep(tmp_path / "sweep", data_path, {"model": np.full(n // 2, 0.5)}, "cell_line:NHEK")
    assert set(ds.meta["cell_line"].to_numpy()[test]) == {"NHEK"}
    result = baselines_table(tmp_path / "sweep", n_boot=100)
    distance_row = result[(result["kind"] == "baseline") & (result["name"] == "distance")].iloc[0]
    assert distance_row["cell_line"] == "NHEK" and distance_row["pooled"]          # the held-out line's own row
    assert distance_row["auroc"] > 0.98 and len(result) == 3
    flags = run_flags(result)  # a constant model did not learn: not compared, so it cannot "beat" anything
    assert not flags["learnt"].iloc[0] and pd.isna(flags["beats_baselines"].iloc[0])
    assert "no coordinates" not in baselines_note(tmp_path / "sweep", result)


def test_note_says_why_the_distance_baseline_is_missing(tmp_path):
    """A sequence table without coordinates gets the propensity baseline only, and the page says why."""
    rng = np.random.default_rng(3)
    n = 300
    table = _dataset(_log_uniform(rng, n), rng.integers(0, 2, n)).to_table()
    table = table.drop(columns=[c for c in table.columns if c.endswith(("_start", "_end"))])
    data_path = tmp_path / "pairs.csv"
    table.to_csv(data_path, index=False)
    ds = load_data({"path": str(data_path)})
    n_test = make_split(ds, "chrom", 0).test.size
    _write_sweep(tmp_path / "sweep", data_path, {"model": rng.uniform(0.01, 0.99, n_test)}, "chrom")
    result = baselines_table(tmp_path / "sweep", n_boot=50)
    assert set(result.loc[result["kind"] == "baseline", "name"]) == {"propensity"}
    assert "carry no coordinates" in baselines_note(tmp_path / "sweep", result)


def test_note_says_distance_is_planted_uninformative_on_the_embedded_benchmark(tmp_path):
    root = tmp_path / "sweep"
    (root / "runs" / "r").mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps({"spec": {"data": {"task": "grammar", "n_pairs": 10, "seed": 0}}}))
    record = {"run_id": "r", "variant": "baseline", "seed": 0, "split": "chrom", "task": "grammar", "status": "failed",
              "config": {}, "metrics": {}}
    rundir.write_record(root / "runs" / "r" / "record.json", record)
    assert "planted to be uninformative" in baselines_note(root)

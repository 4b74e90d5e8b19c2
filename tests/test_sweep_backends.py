"""Sweeps on the local backend and on Ray: the sweep-directory contract, failed runs, resume, same table."""
import json

import pandas as pd
import pytest

from cbat.data.splits import LeakySplitWarning
from cbat.sweep import SweepSpec, failure_lines, load_results, read_records, run_sweep, spec_difference
from cbat.train import TrainSettings

TINY_SETTINGS = {"epochs": 1, "batch_size": 32, "hook_every": 2, "num_threads": 1, "device": "cpu"}


def tiny_spec(**overrides) -> SweepSpec:
    spec = dict(variants=["baseline", {"name": "exploding", "config": "baseline", "settings": {"lr": 1e30}}],
                seeds=[0, 1], splits=["chrom"], data={"task": "grammar", "n_pairs": 120, "seed": 0},
                settings=TINY_SETTINGS)
    spec.update(overrides)
    return SweepSpec(**spec)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return run_sweep(tiny_spec(), out, workers=2, progress=False), out


def test_directory_contract(local_sweep):
    results, out = local_sweep
    assert list(results.run_id) == ["baseline__s0__chrom", "baseline__s1__chrom", "exploding__s0__chrom",
                                    "exploding__s1__chrom"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), results)
    assert json.loads((out / "sweep.json").read_text())["spec"] == tiny_spec().to_dict()
    record = json.loads((out / "runs" / "baseline__s0__chrom" / "record.json").read_text())
    assert record["status"] == "ok" and record["variant"] == "baseline" and record["task"] == "grammar"
    assert set(record["metrics"]["test"]["pooled"]) >= {"aupr", "auroc", "f1", "ece", "mean_prob", "base_rate"}
    assert record["metrics"]["test"]["per_cell_line"] and record["history"]
    assert set(record["timings"]) == {"train_s", "eval_s", "total_s", "cpu_s"}
    run_dir = out / "runs" / "baseline__s0__chrom"
    for path in record["paths"].values():
        assert (run_dir / path).is_file()
    trace = pd.read_parquet(run_dir / record["paths"]["trace"])
    assert {"loss.bce", "loss.total"} <= set(trace["name"])


def test_numerical_fault_marks_run_failed_and_sweep_goes_on(local_sweep):
    results, _ = local_sweep
    failed = results[results.variant == "exploding"]
    assert (failed.status == "failed").all()
    assert failed.error.str.contains(r"non-finite .* at step \d+ .*blocks\.0", regex=True).all()
    assert (results[results.variant == "baseline"].status == "ok").all()
    lines = failure_lines(results)  # what cbat train and cbat report print: which run failed, and why
    assert len(lines) == len(failed) and all(line.startswith("exploding__s") for line in lines)
    assert all(": failed: NumericalFault: non-finite" in line for line in lines), lines


def test_rerun_skips_finished_runs_and_refuses_another_spec(local_sweep):
    results, out = local_sweep
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/record.json")}
    again = run_sweep(tiny_spec(), out, workers=1, progress=False)
    pd.testing.assert_frame_equal(again, results)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/record.json")} == stamps
    with pytest.raises(ValueError, match=r"different sweep \(seeds \[.*\] vs \[5\], stored vs asked\)"):
        run_sweep(tiny_spec(seeds=[5]), out, progress=False)
    with pytest.raises(ValueError, match=r"different sweep \(settings epochs 1 vs 2, stored vs asked\)"):
        run_sweep(tiny_spec(settings={**TINY_SETTINGS, "epochs": 2}), out, progress=False)
    # asking for the default named the stored value only: "settings {..., 'lr': 0.5} vs {...}"
    stored = tiny_spec(settings={**TINY_SETTINGS, "lr": 0.5}).to_dict()
    assert spec_difference(stored, tiny_spec().to_dict()) == f"settings lr 0.5 vs {TrainSettings().lr!r}"


def test_a_design_default_written_out_is_the_same_sweep():
    """A design spec that wrote out foldover: false was refused as "a different sweep" of the one without it."""
    bare = SweepSpec(variants=["baseline"], design={"kind": "fractional", "resolution": 3})
    written = SweepSpec(variants=["baseline"], design={"kind": "fractional", "resolution": 3, "foldover": False,
                                                       "overrides": {}})
    assert spec_difference(bare.to_dict(), written.to_dict()) == ""
    folded = SweepSpec(variants=["baseline"], design={"kind": "fractional", "resolution": 3, "foldover": True})
    assert spec_difference(bare.to_dict(), folded.to_dict()).startswith("design {")


def test_settings_that_change_no_run_still_resume(local_sweep):
    """cbat report adds device 'auto' and progress off to the settings: a folder made by cbat sweep (without
    them) was refused as "a different sweep"."""
    results, out = local_sweep
    as_reported = {**TINY_SETTINGS, "progress": False, "lr_warmup_steps": 0}  # a display flag, a default given
    again = run_sweep(tiny_spec(settings=as_reported), out, workers=1, progress=False)
    pd.testing.assert_frame_equal(again, results)
    # where and how a run is placed or recorded: `--device` or `--hook-every` added on resume was refused
    placed = {**TINY_SETTINGS, "device": "cpu", "num_threads": 1, "hook_every": 7, "eval_batch_size": 64}
    again = run_sweep(tiny_spec(settings=placed), out, workers=1, progress=False)
    pd.testing.assert_frame_equal(again, results)


def test_ray_backend_gives_the_same_table(local_sweep, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as err:  # noqa: BLE001
        # Ray's raylet gives its agents a fixed 15 s to start (ray-project/ray#65983); on an overloaded
        # machine the local instance itself cannot start, which says nothing about this backend.
        if "timed out during startup" in str(err):
            pytest.skip(f"local Ray instance did not start: {err}")
        raise
    try:
        results = run_sweep(tiny_spec(), tmp_path, workers=2, backend="ray", progress=False)
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(results, local_sweep[0])
    assert len(read_records(tmp_path)) == 4
    pd.testing.assert_frame_equal(load_results(tmp_path), results)


def test_spec_settings_turn_per_run_bars_off(tmp_path, capfd):
    """``cbat report`` stores progress false in its spec: one worker then shows the sweep's bar only."""
    for name, settings in (("default", TINY_SETTINGS), ("quiet", {**TINY_SETTINGS, "progress": False})):
        run_sweep(tiny_spec(variants=["baseline"], seeds=[0], settings=settings), tmp_path / name, workers=1)
        shown = capfd.readouterr().err
        assert "sweep" in shown
        assert ("train baseline s0" in shown) == (name == "default")


def test_data_changed_on_disk_are_refused_before_a_resume_or_a_diagnostic(tmp_path, capsys):
    """Runs name their test pairs by index: a sweep resumed, or a run attributed, on a reordered file used to train
    or explain other pairs than the finished runs had, without a word."""
    from cbat.cli import main
    from cbat.data import synthetic
    from cbat.explorers import AttentionExplorer

    table = synthetic("grammar", 120, seed=0).to_table()
    pairs = tmp_path / "pairs.csv"
    table.to_csv(pairs, index=False)
    spec = tiny_spec(variants=["baseline"], data={"path": str(pairs)})
    out = tmp_path / "sweep"
    run_sweep(spec, out, progress=False)
    assert json.loads((out / "sweep.json").read_text())["data_fingerprint"]
    (out / "runs" / "baseline__s1__chrom" / "record.json").unlink()  # an interrupted run, to be resumed
    table.iloc[::-1].to_csv(pairs, index=False)  # the same pairs, reordered
    with pytest.raises(ValueError, match=r"sweep.json: the data \(.*pairs.csv\) changed since this sweep trained"):
        run_sweep(spec, out, progress=False)
    assert not (out / "runs" / "baseline__s1__chrom" / "record.json").exists()
    with pytest.raises(ValueError, match="changed since this sweep trained"):
        AttentionExplorer.from_run(out, "baseline__s0__chrom", n_samples=1)
    assert main(["attribute", "--run", str(out / "runs" / "baseline__s0__chrom"), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "changed since this sweep trained on them" in err and len(err.splitlines()) == 1
    table.to_csv(pairs, index=False)  # restored: the sweep resumes
    assert (run_sweep(spec, out, progress=False)["status"] == "ok").all()


def test_a_leaky_split_warns_once_in_the_calling_process_not_in_each_worker(tmp_path, capfd):
    """Each worker split the data again and printed the random split's warning with its source line, once per
    run, after the sweep had warned already."""
    spec = tiny_spec(variants=["baseline"], splits=["random"])
    with pytest.warns(LeakySplitWarning) as caught:
        run_sweep(spec, tmp_path / "s", workers=2, progress=False)
    assert len([w for w in caught if w.category is LeakySplitWarning]) == 1
    assert "leak" not in capfd.readouterr().err  # the workers said nothing of it
    (tmp_path / "s" / "runs" / "baseline__s1__random" / "record.json").unlink()  # resumed: warned again, here
    with pytest.warns(LeakySplitWarning):
        run_sweep(spec, tmp_path / "s", workers=2, progress=False)
    assert "leak" not in capfd.readouterr().err


def test_a_spec_files_relative_data_path_is_stored_absolute(tmp_path, monkeypatch):
    """A --spec file's `data: {path: data/x.csv}` was stored as written, so the report's notebooks (run inside
    the report folder) could not find it, and `cbat report --params` with the same fields refused the folder as
    a different sweep (its path made absolute)."""
    monkeypatch.chdir(tmp_path)
    spec = SweepSpec(variants=["baseline"], seeds=[0], data={"path": "data/x.csv"})
    assert spec.data == {"path": str(tmp_path / "data" / "x.csv")}
    assert SweepSpec(variants=["baseline"], data={"path": ["a.csv", "b.csv"]}).data["path"] == [
        str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    written_relative = {**spec.to_dict(), "data": {"path": "data/x.csv"}}  # a sweep.json of an earlier version
    assert spec_difference(written_relative, spec.to_dict()) == ""

"""The run folder (cbat.rundir): one permission policy, failed writes keep the old file, damaged files are
named in one line, schema versions are checked, and a sweep retrains damaged runs."""
import errno
import json
import stat

import pandas as pd
import pytest
import torch

from cbat import rundir
from cbat.sweep import SweepSpec, load_results, run_sweep
from cbat.train import load_checkpoint

SPEC = SweepSpec(variants=["baseline"], seeds=[0, 1, 2], splits=["chrom"],
                 data={"task": "grammar", "n_pairs": 120, "seed": 0},
                 settings={"epochs": 1, "batch_size": 32, "num_threads": 1, "device": "cpu"})
RUN_IDS = [f"baseline__s{seed}__chrom" for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(SPEC, out, progress=False)
    return out


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_every_written_file_is_0644(sweep):
    run = rundir.run_dir(sweep, RUN_IDS[0])
    for path in [rundir.run_file(run, kind) for kind in ("record", "checkpoint", "trace", "predictions")] + \
            [rundir.sweep_file(sweep), rundir.results_file(sweep)]:
        assert _mode(path) == 0o644, path


def test_records_carry_the_schema_version(sweep):
    record = rundir.read_record(rundir.run_file(rundir.run_dir(sweep, RUN_IDS[0]), "record"))
    assert record["schema_version"] == rundir.SCHEMA_VERSION


@pytest.mark.parametrize("version, age", [(rundir.SCHEMA_VERSION + 1, "a newer"), (0, "an older")])
def test_schema_version_mismatch_is_named(tmp_path, version, age):
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"schema_version": version, "run_id": "x"}))
    with pytest.raises(rundir.SchemaVersionError) as err:
        rundir.read_record(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert f"schema version {version} is from {age} CBAT Lab" in message


def test_extra_record_fields_are_kept(tmp_path):
    path = tmp_path / "record.json"
    record = {"run_id": "r", "variant": "v", "seed": 0, "split": "chrom", "task": "t", "status": "failed",
              "config": {}, "metrics": {}, "learnt": {"learnt": False, "reason": "chance level"}}
    rundir.write_record(path, record)
    assert rundir.read_record(path)["learnt"] == record["learnt"]


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "table.parquet"
    good = pd.DataFrame({"a": [1, 2, 3]})
    rundir.write_parquet(path, good)

    def disk_full(self, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError, match="No space left"):
        rundir.write_parquet(path, pd.DataFrame({"a": [9]}))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(pd.read_parquet(path), good)
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]  # no temporary file left behind

    checkpoint = tmp_path / "model.pt"
    rundir.write_torch(checkpoint, {"w": torch.ones(2)})
    monkeypatch.setattr(torch, "save", lambda obj, f: (_ for _ in ()).throw(OSError(errno.ENOSPC, "disk full")))
    with pytest.raises(OSError, match="disk full"):
        rundir.write_torch(checkpoint, {"w": torch.zeros(2)})
    assert torch.equal(rundir.read_torch(checkpoint)["w"], torch.ones(2))


def test_damaged_files_are_named_and_retrained(sweep, capfd):
    runs = [rundir.run_dir(sweep, run_id) for run_id in RUN_IDS]
    record, trace, checkpoint = (rundir.run_file(runs[0], "record"), rundir.run_file(runs[1], "trace"),
                                 rundir.run_file(runs[2], "checkpoint"))
    untouched = rundir.run_file(runs[1], "record").stat().st_mtime_ns
    for path in (record, trace, checkpoint):
        _truncate(path)

    for read in (rundir.read_record, rundir.read_parquet, load_checkpoint):
        path = {rundir.read_record: record, rundir.read_parquet: trace, load_checkpoint: checkpoint}[read]
        with pytest.raises(rundir.RunDirError) as err:
            read(path)
        assert str(err.value).startswith(f"{path}: truncated or corrupt") and "\n" not in str(err.value)
    with pytest.raises(rundir.RunDirError, match="record.json: truncated or corrupt JSON"):
        load_results(sweep)

    capfd.readouterr()
    table = run_sweep(SPEC, sweep, progress=False)
    stderr = capfd.readouterr().err
    for path, run_id in ((record, RUN_IDS[0]), (trace, RUN_IDS[1]), (checkpoint, RUN_IDS[2])):
        assert f"{path}: truncated or corrupt" in stderr and f"run {run_id} will be trained again" in stderr
    assert list(table.run_id) == RUN_IDS and (table.status == "ok").all()
    assert rundir.run_file(runs[1], "record").stat().st_mtime_ns != untouched  # retrained, not skipped
    for run in runs:
        assert rundir.run_problem(run) is None
    model, _ = load_checkpoint(checkpoint)
    assert isinstance(model, torch.nn.Module)
    pd.testing.assert_frame_equal(load_results(sweep), table)


def test_sweep_stops_on_another_schema_version(sweep):
    path = rundir.run_file(rundir.run_dir(sweep, RUN_IDS[0]), "record")
    content = rundir.read_json(path)
    path.write_text(json.dumps({**content, "schema_version": rundir.SCHEMA_VERSION + 1}))
    try:
        with pytest.raises(rundir.SchemaVersionError, match="record.json: record schema version"):
            run_sweep(SPEC, sweep, progress=False)
    finally:
        rundir.write_json(path, content)

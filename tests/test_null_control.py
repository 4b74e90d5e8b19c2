"""The null control: a sweep whose labels are independent of the sequences claims no effect anywhere, and its
runs are marked "not learnt"."""
import pytest

from cbat.stats import compare_to_baseline
from cbat.sweep import SweepSpec, load_results, run_sweep
from diagnostics import assess
from diagnostics.expected import expected_vs_found

CLAIMS = ("supported", "not supported")


@pytest.fixture(scope="module")
def null_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("null")
    spec = SweepSpec(variants=["baseline", "baseline+window"], seeds=[0, 1, 2], splits=["chrom"],
                     data={"task": "mixture", "n_pairs": 360, "seed": 0, "permute_labels": 7},
                     settings={"epochs": 2, "batch_size": 32, "lr": 3e-3, "progress": False, "device": "cpu",
                               "warmup_epochs": 0})
    run_sweep(spec, out, workers=1)
    return out


def test_permuted_labels_claim_no_effect(null_sweep):
    results = load_results(null_sweep)
    assert (results["status"] == "ok").all() and not results["learnt"].any()
    compared = compare_to_baseline(null_sweep, metrics=("aupr", "auroc"), n_boot=100)
    assert not compared["verdict"].isin(["beats", "trails"]).any()
    assessment = assess(null_sweep, probes=False, n_boot=100)
    h1 = assessment.table.set_index("id").loc["H1"]
    assert h1["verdict"] == "not learnt" and "not learnt" in h1["evidence"]
    assert not assessment.table["verdict"].isin(CLAIMS).any() or \
        assessment.table.loc[assessment.table["verdict"].isin(CLAIMS), "id"].isin(["V1c", "H6"]).all()
    assert not expected_vs_found(null_sweep, assessment.verdicts, n_boot=100)["recovered"].any()

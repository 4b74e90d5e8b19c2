"""End to end on the probe tasks with a planted cause: real sweeps (tiny, CPU), then ``assess``.

Sized for CI: the measured gradient cut of hard top-k on trained checkpoints, H6 on a far too heavy auxiliary
loss, H2 not "supported" where the cause is absent, and H1 "supported" on long_range (the one ranking check
small enough for CI). The ranking halves of H2 and V1a on diffuse need 5 seeds of better-trained models and run
in ``benchmarks/bench_verdicts.py``.
"""
from __future__ import annotations

import pytest

from cbat.sweep import SweepSpec, run_sweep
from diagnostics.verdicts import assess

SETTINGS = {"epochs": 2, "batch_size": 32, "lr": 3e-3, "patience": 2, "hook_every": 3, "progress": False}
DENSE = {"name": "dense", "config": "baseline", "overrides": {"d_model": 16}}
TOPK = {"name": "topk1", "config": "baseline", "overrides": {"d_model": 16, "sparsity": "hard_topk", "topk": 1}}
HEAVY = {"name": "aux_heavy", "config": "baseline",
         "overrides": {"d_model": 16, "sparsity_loss_weight": 50.0, "sparsity_target": 0.05}}


def sweep(path, task: str, variants: list[dict]):
    spec = SweepSpec(variants=variants, seeds=[0, 1, 2], splits=["chrom"],
                     data={"task": task, "n_pairs": 300, "seed": 0}, settings=SETTINGS)
    run_sweep(spec, path, workers=1, progress=False)
    return path


@pytest.fixture(scope="module")
def sparse_strong(tmp_path_factory):
    path = sweep(tmp_path_factory.mktemp("truth") / "sparse_strong", "sparse_strong", [DENSE, TOPK, HEAVY])
    return assess(path, hypotheses=["V1a", "H2", "H6"], n_boot=50, probe_batch=8).table.set_index("id")


def test_hard_topk_gradient_cut_is_measured_on_trained_models(sparse_strong):
    row = sparse_strong.loc["V1a"]
    assert row.statistic["treated_zero"] == 1.0, row.evidence
    assert row.statistic["reference"] == "dense" and row.statistic["reference_mean"] > 0, row.evidence
    assert row.statistic["reference_zero"] == 0.0, row.evidence
    assert len(row.run_ids) == 6  # the ranking half of V1a is checked on diffuse in benchmarks/bench_verdicts.py


def test_far_too_heavy_aux_loss_is_found(sparse_strong):
    row = sparse_strong.loc["H6"]
    assert row.verdict == "supported", row.evidence
    assert row.statistic["variant"] == "aux_heavy" and row.statistic["component"] == "sparsity", row.evidence
    assert row.statistic["early"] >= 0.5, row.evidence


def test_sparsity_is_not_blamed_where_one_strong_site_decides(sparse_strong):
    assert sparse_strong.loc["H2"].verdict != "supported", sparse_strong.loc["H2"].evidence


def test_window_that_cuts_the_decisive_distance_is_found_on_long_range(tmp_path_factory):
    """H1 end to end: on long_range the decisive offset lies beyond a 16-token window."""
    overrides = {"d_model": 32}
    variants = [{"name": "global", "config": "baseline", "overrides": overrides},
                {"name": "window", "config": "baseline", "overrides": {**overrides, "window_size": 16}}]
    # Margins that hold on every CPU kind (training rounds differently on AVX2 and AVX-512 boxes): 1,500 pairs,
    # so every global seed takes off by epoch 5 of 8 (1,000 pairs and 12 epochs left a seed at chance on one kind),
    # and 60 % of the negatives easy, so the window, which sees no cause, still learns them clearly (test AUROC
    # interval from 0.75 up, where a third easy left it at 0.51-0.61 and the guard dropped a seed).
    spec = SweepSpec(variants=variants, seeds=[0, 1, 2], splits=["chrom"],
                     data={"task": "long_range", "n_pairs": 1500, "seed": 0, "easy_negatives": 0.6},
                     settings={"epochs": 8, "batch_size": 32, "lr": 3e-3, "lr_warmup_steps": 20, "patience": 8,
                               "hook_every": 10, "progress": False})
    path = tmp_path_factory.mktemp("truth") / "long_range"
    run_sweep(spec, path, workers=2, progress=False)
    row = assess(path, hypotheses=["H1"], n_boot=200, probe_batch=8).table.set_index("id").loc["H1"]
    # The window sees neither offset band, so on the cause's own pairs (positives against their hard negatives)
    # it ranks at chance while the global model separates them; its runs still learn the easy negatives.
    assert row.verdict == "supported" and row.ci_high < 0, row.evidence
    assert row.statistic["beyond"] >= 0.05 and row.cause == "long_range", row.evidence

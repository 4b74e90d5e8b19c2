"""Expected vs found: planted causes are recovered by the verdicts, and nothing is claimed where the cause is
absent or the data carry no truth."""
import dataclasses

import numpy as np

import cbat
from diagnostics import assess
from diagnostics.expected import expected_vs_found, recovered_count
from test_causes import CAUSES
from test_diagnostics_fakes import N_PAIRS, labels_and_signal, write_sweep


def _probs(window_hurts: bool):
    def make(variant: str, seed: int) -> np.ndarray:
        _, signal = labels_and_signal()
        rng = np.random.default_rng(seed)
        score = signal + rng.normal(0, 0.3, N_PAIRS)
        if variant == "baseline+window" and window_hurts:  # long-range positives are out of the window's reach
            long_range = CAUSES == "long_range"
            score[long_range] = rng.normal(0, 1, long_range.sum())
        return 1 / (1 + np.exp(-score))
    return make


def _sweep(path, window_hurts: bool, causes=CAUSES):
    base = cbat.preset("baseline")
    window = dataclasses.replace(base, window_size=16)
    return write_sweep(path, {"baseline": base, "baseline+window": window}, [0, 1, 2, 3], _probs(window_hurts),
                       task="mixture", causes=causes)


def test_a_planted_long_range_cause_is_recovered_and_agrees_with_the_verdict_table(tmp_path):
    path = _sweep(tmp_path / "planted", window_hurts=True)
    assessment = assess(path, probes=False, n_boot=100)
    table = expected_vs_found(path, assessment.verdicts, n_boot=100).set_index("check")
    # diffuse is planted too, but the sweep lacks a sparse twin: H2 and V1a are listed, not recovered, and say why
    assert set(table.index) == {"H1", "H2", "V1a"}
    assert not table.loc["H2", "recovered"] and "lacks" in table.loc["H2", "evidence"]
    assert table.loc["H1", "found"] == "supported" and table.loc["H1", "recovered"]
    assert table.loc["H1", "ci_high"] < 0 and "cause long_range" in table.loc["H1", "evidence"]
    h1 = assessment.table.set_index("id").loc["H1"]
    assert h1["verdict"] == "supported" and h1["cause"] == "long_range"
    assert recovered_count(expected_vs_found(path, n_boot=100)) == (1, 3)


def test_an_absent_cause_is_not_claimed(tmp_path):
    table = expected_vs_found(_sweep(tmp_path / "absent", window_hurts=False), n_boot=100).set_index("check")
    assert table.loc["H1", "found"] != "supported" and not table.loc["H1", "recovered"]
    assert recovered_count(table.reset_index()) == (0, 3)


def test_data_without_truth_give_an_empty_page(tmp_path):
    assert expected_vs_found(_sweep(tmp_path / "user", window_hurts=True, causes=None)).empty

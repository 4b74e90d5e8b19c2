"""The report's first page: which variants learnt, and which planted cause each variant misses."""
import numpy as np

import cbat
from diagnostics.causes import cause_figure, cause_table, learnt_status
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


def test_cause_table_shows_which_positives_a_variant_misses(tmp_path):
    table = cause_table(_sweep(tmp_path)).set_index(["variant", "cause"])
    assert "none" not in table.index.get_level_values("cause")
    assert table.loc[("baseline", "long_range"), "median_auroc"] > 0.85
    assert abs(table.loc[("windowed", "long_range"), "median_auroc"] - 0.5) < 0.15
    assert table.loc[("windowed", "diffuse"), "median_auroc"] > 0.85  # only the long-range cause is lost
    assert table.loc[("noise", "diffuse"), "n_learnt"] == 0 and table.loc[("baseline", "diffuse"), "n_runs"] == 3
    fig = cause_figure(cause_table(tmp_path / "s"))
    assert list(fig.data[0].x) == ["diffuse", "long_range"] and list(fig.data[0].y)[0] == "baseline"


def test_no_causes_gives_an_empty_table_and_a_figure_that_says_so(tmp_path):
    base = cbat.preset("baseline")
    path = write_sweep(tmp_path / "plain", {"baseline": base}, [0], _probs)
    assert cause_table(path).empty
    assert "No planted causes" in cause_figure(cause_table(path)).layout.title.text

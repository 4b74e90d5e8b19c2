"""Seqlets, JASPAR PWM matching with exact p-values, and the per-cell-line motif tables."""
import itertools

import numpy as np
import pandas as pd
import pytest

from diagnostics import motifs as M


@pytest.fixture(scope="module")
def db():
    return M.MotifDB.from_jaspar(ids=("MA0139.1", "MA0080.7", "MA0095.4"), release="JASPAR2024")


def consensus(db, motif_id):
    return db.log_odds[db.ids.index(motif_id)].argmax(0).astype(np.uint8)


def test_exact_pvalues_match_enumeration():
    counts = np.array([[8, 1, 1, 0], [1, 1, 6, 2], [0, 9, 1, 0]]).T  # a 3-column matrix, rows ACGT
    db = M.MotifDB.from_counts(["X1"], ["toy"], [counts])
    scores = np.array([sum(db.log_odds[0][b, i] for i, b in enumerate(seq))
                       for seq in itertools.product(range(4), repeat=3)])
    for threshold in np.quantile(scores, [0.0, 0.3, 0.7, 0.95]):
        assert db.pvalue(0, threshold) == pytest.approx((scores >= threshold - 1e-9).mean(), abs=0.03)
    assert db.pvalue(0, scores.max()) == pytest.approx(1 / 64)


def test_scan_finds_a_planted_site_on_either_strand(db):
    rng = np.random.default_rng(0)
    site = consensus(db, "MA0139.1")
    for strand, planted in (("+", site), ("-", (3 - site)[::-1])):
        codes = rng.integers(0, 4, 70).astype(np.uint8)
        codes[30:30 + len(site)] = planted
        hits = db.scan(codes).set_index("motif_id")
        ctcf = hits.loc["MA0139.1"]
        assert ctcf["offset"] == 30 and ctcf["strand"] == strand and ctcf["pvalue"] < 1e-6
        assert hits["pvalue"].idxmin() == "MA0139.1"
    background = db.scan(np.random.default_rng(5).integers(0, 4, 70).astype(np.uint8))
    assert background.set_index("motif_id").loc["MA0139.1", "pvalue"] > 1e-3


def test_seqlets_sit_on_the_peaks_and_do_not_overlap():
    scores = np.random.default_rng(0).normal(0, 0.01, 300)
    scores[50:60] += 1.0
    scores[200:212] -= 0.8  # a site that pushes the logit down still counts
    seqlets = M.call_seqlets(scores, width=15, z=3.0, max_seqlets=5)
    assert len(seqlets) == 2
    assert seqlets.iloc[0]["start"] <= 50 and seqlets.iloc[0]["end"] >= 60 and seqlets.iloc[0]["score"] > 9
    assert seqlets.iloc[1]["score"] < 0 and seqlets.iloc[1]["start"] <= 200 <= seqlets.iloc[1]["end"]
    assert M.call_seqlets(np.random.default_rng(1).normal(0, 1, 300), z=6.0).empty


def test_the_threshold_not_the_cap_decides_how_many_sites_a_sequence_has():
    # a diffuse promoter: a cluster of six sites plus a two-site pair, all clearly above the background
    scores = np.random.default_rng(3).normal(0, 0.01, 600)
    for start in (40, 90, 140, 190, 240, 290, 420, 500):
        scores[start:start + 12] += 0.5
    seqlets = M.call_seqlets(scores)
    assert len(seqlets) == 8
    for start in (40, 90, 140, 190, 240, 290, 420, 500):  # each site sits inside one seqlet
        assert ((seqlets["start"] <= start + 2) & (seqlets["end"] >= start + 10)).sum() == 1


def test_a_site_is_named_by_the_seqlet_that_covers_it():
    from diagnostics.recovery import motif_identity

    truth = pd.DataFrame({"pair_index": [7], "side": ["enhancer"], "motif_id": ["MA0139.2"], "motif_name": ["CTCF"],
                          "start": [60], "end": [79], "strand": ["+"], "role": ["causal"], "strength": [4.0]})
    seqlets = pd.DataFrame({  # a neighbour's window reaches 5 bases into the site and scores higher
        "loop": [7, 7], "side": ["enhancer", "enhancer"], "start": [50, 65], "end": [65, 80], "score": [1.3, 0.6],
        "matched": [False, True], "motif_id": ["MA0830.3", "MA0139.2"], "family_ids": [None, "MA0139.2;MA1929.2"]})
    found = motif_identity(seqlets, truth, [7])
    assert found.loc[0, "seqlet_motif_id"] == "MA0139.2" and found.loc[0, "match"] == "exact"
    # with the covering window gone, the neighbour's unmatched window is all that touches the site
    alone = motif_identity(seqlets.iloc[:1], truth, [7])
    assert alone.loc[0, "found"] and alone.loc[0, "match"] == "none"


def test_tables_of_a_model_with_no_matched_seqlet_are_empty_not_an_error():
    # a model at chance: seqlets exist but none matches a motif significantly
    table = pd.DataFrame({"loop": [1, 1, 2], "cell_line": ["A", "A", "B"], "side": ["enhancer", "promoter", "enhancer"],
                          "matched": [False] * 3, "motif_id": ["x", "y", "z"], "motif_name": ["x", "y", "z"],
                          "family": [None] * 3, "score": [1.0, 2.0, 3.0]})
    summary, pairs = M.motif_summary(table), M.motif_pairs(table)
    assert summary.empty and pairs.empty and "loop_fraction" in summary and "loop_fraction" in pairs


def test_annotated_table_summary_and_cross_side_pairs(db):
    rng = np.random.default_rng(2)
    enhancer = rng.integers(0, 4, (2, 120)).astype(np.uint8)
    promoter = rng.integers(0, 4, (2, 100)).astype(np.uint8)
    ctcf, spi1 = consensus(db, "MA0139.1"), consensus(db, "MA0080.7")
    enhancer[:, 40:40 + len(ctcf)] = ctcf
    promoter[:, 20:20 + len(spi1)] = spi1
    scores = {"enhancer": np.zeros((2, 120)), "promoter": np.zeros((2, 100))}
    scores["enhancer"][:, 40:40 + len(ctcf)] = 1.0
    scores["promoter"][:, 20:20 + len(spi1)] = 1.0
    loops = pd.DataFrame({"pair_index": [7, 9], "cell_line": ["K562", "K562"]})
    table = M.annotate_seqlets(scores, {"enhancer": enhancer, "promoter": promoter}, loops, db, max_seqlets=1)
    assert list(table.columns) == M.SEQLET_COLUMNS and len(table) == 4
    assert table.set_index(["loop", "side"]).loc[(7, "enhancer"), "motif_name"] == "CTCF"
    assert table.set_index(["loop", "side"]).loc[(9, "promoter"), "motif_name"] == "Spi1"
    assert table["matched"].all() and (table["match_pvalue"] < table["runner_up_pvalue"]).all()
    summary = M.motif_summary(table)
    assert summary[["side", "motif_name", "n_loops", "loop_fraction"]].values.tolist() == [
        ["enhancer", "CTCF", 2, 1.0], ["promoter", "Spi1", 2, 1.0]]
    pairs = M.motif_pairs(table)
    assert pairs[["enhancer_motif", "promoter_motif", "n_loops"]].values.tolist() == [["CTCF", "Spi1", 2]]


@pytest.mark.parametrize("release", ["JASPAR1999", "2024"])
def test_unknown_jaspar_release_is_named_with_the_bundled_ones(release):
    with pytest.raises(ValueError, match=f"JASPAR release '{release}' is not bundled with pyjaspar; expected one of "
                                         ".*JASPAR2024"):
        M.MotifDB.from_jaspar(ids=("MA0139.1",), release=release)


def test_unknown_jaspar_id_is_named():
    with pytest.raises(ValueError, match="MA9999.9"):
        M.MotifDB.from_jaspar(ids=("MA9999.9",), release="JASPAR2024")

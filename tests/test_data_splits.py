"""Splits (chromosome, cell line, random with a warning) and the propensity-only baseline."""
import warnings

import numpy as np
import pandas as pd
import pytest

from cbat.data import EPIDataset, propensity_scores, split, synthetic


@pytest.fixture(scope="module")
def ds():  # with scaffolding (the mixture's default), which every split must keep out of test
    return synthetic("sparse_strong", 400, seed=2, use_cache=False, easy_negatives_tested=0.5)


def test_chrom_split_keeps_test_sequences_out_of_training(ds):
    parts = split(ds, by="chrom", seed=1)
    assert parts.name == "chrom" and len(parts.test_groups) >= 1
    assert set(ds.meta["chrom"].iloc[parts.test]) == set(parts.test_groups)
    assert not set(ds.meta["chrom"].iloc[parts.train]) & set(parts.test_groups)
    assert not set(ds.meta["chrom"].iloc[parts.val]) & set(parts.test_groups)
    for side in (ds.enhancer, ds.promoter):
        train_seqs = {row.tobytes() for row in side[parts.train]}
        assert not any(row.tobytes() in train_seqs for row in side[parts.test])
    assert len(np.intersect1d(parts.train, parts.val)) == 0
    # every pair is used once, but the scaffolding on test chromosomes (kept out of test, never trained on)
    untested = ds.meta["scaffold"].to_numpy() & ds.meta["chrom"].isin(parts.test_groups).to_numpy()
    assert len(parts.train) + len(parts.val) + len(parts.test) + untested.sum() == len(ds)
    assert 0.1 < len(parts.test) / len(ds) < 0.45


def test_chrom_split_named_chromosomes_and_determinism(ds):
    chosen = ds.meta["chrom"].value_counts().index[:2].tolist()
    parts = split(ds, by="chrom", test=chosen)
    assert set(ds.meta["chrom"].iloc[parts.test]) == set(chosen)
    spelled = [" " + c[3:] for c in chosen]  # " 1" names chr1, as the loaders spell the data ("holds no pairs")
    assert np.array_equal(split(ds, by="chrom", test=spelled).test, parts.test)
    again = split(ds, by="chrom", seed=4)
    assert np.array_equal(split(ds, by="chrom", seed=4).test, again.test)


def test_cell_line_split_leaves_one_out(ds):
    parts = split(ds, by="cell_line")
    assert parts.name == "cell_line_NHEK"
    assert set(ds.meta["cell_line"].iloc[parts.test]) == {"NHEK"}
    assert "NHEK" not in set(ds.meta["cell_line"].iloc[np.concatenate([parts.train, parts.val])])


def test_random_split_warns(ds):
    with pytest.warns(UserWarning, match="leak"):
        parts = split(ds, by="random", seed=0)
    assert len(np.intersect1d(parts.train, parts.test)) == 0


@pytest.mark.parametrize("kwargs, fragment", [(dict(by="gene"), "by='gene'"), (dict(by="chrom", test="chr99"), "chr99"),
                                              (dict(by="cell_line", test="HeLa"), "HeLa")])
def test_split_errors(ds, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        split(ds, **kwargs)


@pytest.mark.parametrize("by", ["chrom", "cell_line", "random"])
def test_scaffold_pairs_stay_out_of_every_test_set_and_nowhere_else(ds, by):
    scaffold = ds.meta["scaffold"].to_numpy()
    assert scaffold.any()
    unmarked = EPIDataset(ds.enhancer, ds.promoter, ds.labels, ds.meta.assign(scaffold=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random split's leakage warning
        parts, plain = split(ds, by=by, seed=3), split(unmarked, by=by, seed=3)
    assert not scaffold[parts.test].any()
    assert np.array_equal(parts.test, plain.test[~scaffold[plain.test]])
    assert np.array_equal(parts.train, plain.train) and np.array_equal(parts.val, plain.val)
    assert scaffold[parts.train].any()  # scaffolding is trained on


def test_scaffold_read_back_from_a_file_as_text_still_counts_and_other_text_is_an_error(ds):
    as_text = EPIDataset(ds.enhancer, ds.promoter, ds.labels, ds.meta.assign(scaffold=ds.meta["scaffold"].astype(str)))
    assert np.array_equal(split(as_text, by="chrom").test, split(ds, by="chrom").test)
    bad = EPIDataset(ds.enhancer, ds.promoter, ds.labels, ds.meta.assign(scaffold="maybe"))
    with pytest.raises(ValueError, match="meta column 'scaffold' holds \\['maybe'\\] \\(first at pair 0\\); expected "
                                         "True/False"):
        split(bad, by="chrom")


@pytest.fixture(scope="module")
def with_held_out():  # the sparse_strong pairs above followed by an independent draw of 300, test only
    return synthetic("sparse_strong", 400, seed=2, use_cache=False, easy_negatives_tested=0.5, held_out_pairs=300)


def test_a_held_out_draw_appends_fresh_pairs_and_leaves_the_others_as_they_were(ds, with_held_out):
    held = with_held_out.meta["held_out"].to_numpy()
    assert len(with_held_out) == 700 and held.tolist() == [False] * 400 + [True] * 300
    for side in ("enhancer", "promoter", "labels"):
        assert np.array_equal(getattr(with_held_out, side)[:400], getattr(ds, side))
    assert with_held_out.meta["pair_id"].is_unique
    # fresh promoters and enhancers: nothing a run trains on reappears among them
    assert not set(with_held_out.meta["promoter_id"][held]) & set(ds.meta["promoter_id"])
    old = {row.tobytes() for row in ds.promoter}
    assert not any(row.tobytes() in old for row in with_held_out.promoter[held])
    # the truth names the appended pairs' own planted sites
    truth = with_held_out.truth
    assert truth[truth["pair_index"] < 400].reset_index(drop=True).equals(ds.truth)
    assert set(truth.loc[truth["pair_index"] >= 400, "pair_index"]) <= set(range(400, 700))
    assert (with_held_out.labels[held] == 1).any() and with_held_out.meta.loc[held, "scaffold"].any()


@pytest.mark.parametrize("by", ["chrom", "cell_line", "random"])
def test_held_out_pairs_only_ever_join_the_test_set(ds, with_held_out, by):
    held = with_held_out.meta["held_out"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random split's leakage warning
        parts, plain = split(with_held_out, by=by, seed=3), split(ds, by=by, seed=3)
    # the other pairs split as if the draw were absent: a run trains and validates on the same pairs
    assert np.array_equal(parts.train, plain.train) and np.array_equal(parts.val, plain.val)
    assert np.array_equal(parts.test[parts.test < 400], plain.test)
    joined = parts.test[parts.test >= 400]
    scaffold = with_held_out.meta["scaffold"].to_numpy()
    cells = with_held_out.meta["cell_line"].to_numpy()
    expected = held & ~scaffold & ((cells == "NHEK") if by == "cell_line" else True)
    assert joined.tolist() == np.flatnonzero(expected).tolist() and joined.size > 0


def test_held_out_flags_read_back_as_text_and_a_data_set_of_only_held_out_pairs_is_refused(with_held_out):
    meta = with_held_out.meta
    as_text = EPIDataset(with_held_out.enhancer, with_held_out.promoter, with_held_out.labels,
                         meta.assign(held_out=meta["held_out"].map({True: "True", False: "false"})))
    assert np.array_equal(split(as_text, by="chrom").test, split(with_held_out, by="chrom").test)
    for value, message in (("later", "meta column 'held_out' holds \\['later'\\] \\(first at pair 0\\); expected"),
                           (True, "every pair is marked held_out")):
        bad = EPIDataset(with_held_out.enhancer, with_held_out.promoter, with_held_out.labels,
                         meta.assign(held_out=value))
        with pytest.raises(ValueError, match=message):
            split(bad, by="chrom")


def test_a_test_cell_line_of_held_out_pairs_only_is_tested_on_them(with_held_out):
    """It was refused as "not in the data", and the default test cell line silently became another one."""
    cells, held = with_held_out.meta["cell_line"].to_numpy(), with_held_out.meta["held_out"].to_numpy()
    keep = np.flatnonzero(held | (cells != "NHEK"))  # NHEK only among the held-out pairs
    only_held = with_held_out.subset(keep)
    for test in ("NHEK", None):
        parts = split(only_held, by="cell_line", test=test)
        assert parts.test_groups == ("NHEK",) and parts.test.size > 0
        assert set(only_held.meta["cell_line"].iloc[parts.test]) == {"NHEK"}
        assert only_held.meta["held_out"].iloc[parts.test].all()
        assert not only_held.meta["held_out"].iloc[np.concatenate([parts.train, parts.val])].any()


def test_held_out_flags_change_the_data_fingerprint(with_held_out):
    meta = with_held_out.meta
    moved = EPIDataset(with_held_out.enhancer, with_held_out.promoter, with_held_out.labels,
                       meta.assign(held_out=meta["held_out"].to_numpy() | (np.arange(len(meta)) < 5)))
    as_text = EPIDataset(with_held_out.enhancer, with_held_out.promoter, with_held_out.labels,
                         meta.assign(held_out=meta["held_out"].astype(str)))
    assert moved.fingerprint() != with_held_out.fingerprint() == as_text.fingerprint()


def test_propensity_scores_use_training_rates_only():
    meta = pd.DataFrame({"pair_id": list("abcdef"), "cell_line": "X", "chrom": "chr1",
                         "enhancer_id": list("uvwxyz"), "promoter_id": ["p", "p", "q", "q", "p", "r"]})
    codes = np.zeros((6, 4), dtype=np.uint8)
    data = EPIDataset(codes, codes, np.array([1, 1, 0, 0, 1, 0]), meta)
    scores = propensity_scores(data, train=[0, 1, 2, 3], test=[4, 5], keys=("promoter_id",), prior_weight=0.0)
    assert scores[0] == 1.0      # promoter p: 2 of 2 training pairs positive
    assert scores[1] == 0.5      # promoter r unseen: the training base rate

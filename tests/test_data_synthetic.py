"""The synthetic benchmark: determinism, cache, ground truth, loci, and checks that it means something."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from cbat.data import TASKS, oracle_scores, propensity_baseline, split, synthetic
from cbat.data.encoding import onehot
from cbat.data.loci import CHROM_SIZES_MB
from cbat.data.motifs import ENHANCER_DECOYS, get_motif
from cbat.data.tasks import (BP_PER_TOKEN, CAUSES, EASY_NEGATIVE_SHARE, EASY_NEGATIVES_TESTED, NO_CAUSE,
                             make_task)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cbat-cache")


@pytest.fixture(scope="module")
def grammar(cache_dir):
    return synthetic("grammar", 600, seed=0, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def probes(cache_dir):
    return {task: synthetic(task, 200, seed=3, cache_dir=cache_dir) for task in TASKS
            if task not in ("grammar", "mixture")}


@pytest.fixture(scope="module")
def mixture(cache_dir):
    return synthetic("mixture", 1600, seed=0, cache_dir=cache_dir, cause_shares={cause: 1 for cause in CAUSES})


def test_same_seed_same_data_other_seed_differs():
    a, b = (synthetic("diffuse", 40, seed=5, use_cache=False) for _ in range(2))
    c = synthetic("diffuse", 40, seed=6, use_cache=False)
    assert np.array_equal(a.enhancer, b.enhancer) and np.array_equal(a.promoter, b.promoter)
    assert np.array_equal(a.labels, b.labels) and a.truth.equals(b.truth) and a.meta.equals(b.meta)
    assert not np.array_equal(a.enhancer, c.enhancer)


def test_cache_is_keyed_atomic_and_survives_corruption(tmp_path):
    first = synthetic("sparse_strong", 30, seed=1, cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    again = synthetic("sparse_strong", 30, seed=1, cache_dir=tmp_path)
    assert np.array_equal(first.enhancer, again.enhancer) and first.truth.equals(again.truth)
    synthetic("sparse_strong", 30, seed=2, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # other parameters, other file
    files[0].write_bytes(b"not an npz")
    rebuilt = synthetic("sparse_strong", 30, seed=1, cache_dir=tmp_path)
    assert np.array_equal(first.promoter, rebuilt.promoter)


def test_shapes_ratio_and_paper_scale():
    small = synthetic("grammar", 420, seed=0, positive_fraction=0.048, cell_lines=["K562", "NHEK"], use_cache=False)
    assert small.labels.sum() == round(420 * 0.048) and small.cell_lines == ["K562", "NHEK"]
    big = synthetic("long_range", 12, seed=0, enhancer_len=3000, promoter_len=2000, use_cache=False)
    assert big.enhancer.shape == (12, 3000) and big.promoter.shape == (12, 2000)
    e, p = big.onehot(np.arange(3))
    assert e.shape == (3, 4, 3000) and torch_allclose_ones(e.sum(1))


def torch_allclose_ones(x):
    return bool(((x - 1).abs() < 1e-6).all())


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(task="nope"), "task 'nope'"), (dict(positive_fraction=0.0), "positive_fraction"),
    (dict(enhancer_len=100), "too short"), (dict(cell_lines=["HeLa"]), "cell_lines"), (dict(n_pairs=1), "n_pairs"),
    (dict(task="long_range", enhancer_len=400), "expected enhancer_len >= promoter_len"),
    (dict(task="mixture", promoter_len=500), "expected >= 600/600"),
    # enhancers shorter than promoters failed mid-draw, naming a shortened length ("a 1977-bp enhancer")
    (dict(task="mixture", enhancer_len=2000, promoter_len=3000), "2000/3000 bp: expected enhancer_len >= promoter_len"),
    (dict(task="diffuse", promoter_len=300), "expected >= 400 bp"), (dict(task="sparse_strong", copies=0), "copies"),
    (dict(easy_negatives_tested=1.5), "easy_negatives_tested is 1.5"),
    (dict(task="grammar", easy_negatives_tested=0.5), "not to 'grammar'"),
    (dict(held_out_pairs=-1), "held_out_pairs is -1"), (dict(held_out_pairs=2.5), "held_out_pairs is 2.5")])
def test_bad_parameters(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        synthetic(**{"n_pairs": 10, **kwargs}, use_cache=False)


def _site_score(ds, row) -> float:
    """Relative PWM score of a truth row's planted window (1 = consensus)."""
    codes = (ds.enhancer if row.side == "enhancer" else ds.promoter)[row.pair_index, row.start:row.end]
    window = onehot(codes[None])[0].numpy()
    if row.strand == "-":
        window = window[::-1, ::-1]
    pwm = get_motif(row.motif_name).log_odds()
    return float((pwm.T * window).sum() / pwm.max(axis=1).sum())


def test_truth_describes_the_sequences(grammar):
    truth = grammar.truth
    assert set(truth["role"]) == {"causal", "decoy"}
    strong = truth[truth["strength"] >= 4].sample(60, random_state=0)
    scores = np.array([_site_score(grammar, row) for row in strong.itertuples()])
    assert np.median(scores) > 0.85
    causal = truth[truth["role"] == "causal"].groupby("pair_index")["side"].nunique()
    positives = np.flatnonzero(grammar.labels == 1)
    assert set(causal.index) == set(positives) and (causal == 2).all()  # both sides of every positive


def test_convergent_ctcf_matches_locus_order(grammar):
    meta, truth = grammar.meta, grammar.truth
    ctcf = truth[(truth["motif_name"] == "CTCF") & (truth["role"] == "causal") & (truth["side"] == "enhancer")]
    upstream = (meta["enhancer_start"] < meta["promoter_start"]).to_numpy()[ctcf["pair_index"]]
    assert len(ctcf) > 50
    assert np.array_equal(upstream, (ctcf["strand"] == "+").to_numpy())


def test_loci_chromosomes_and_promoter_sharing(grammar):
    meta = grammar.meta
    assert set(meta["chrom"]) <= set(CHROM_SIZES_MB) and meta["chrom"].nunique() >= 15
    assert meta["promoter_id"].str.startswith(tuple(meta["chrom"].unique())).all()
    positives = meta[grammar.labels == 1]
    shared = positives["promoter_id"].map(positives["promoter_id"].value_counts()) > 1
    assert shared.mean() > 0.8  # TargetFinder GM12878: ~89 %
    same = meta.groupby("promoter_id").apply(lambda g: len({grammar.promoter[i].tobytes() for i in g.index}))
    assert (same == 1).all()  # a shared promoter id is one sequence


def test_probe_placement_follows_the_design(probes):
    for task, ds in probes.items():
        planner = make_task(task)
        causal = ds.truth[ds.truth["role"] == "causal"]
        e_start = causal[causal["side"] == "enhancer"].groupby("pair_index")["start"].min()
        first_copy = lambda starts: np.mean(np.sort(starts)[:getattr(planner, "CLUSTER", 1)])  # noqa: E731
        p_anchor = causal[causal["side"] == "promoter"].groupby("pair_index")["start"].agg(first_copy).round()
        offset = ((e_start - p_anchor.loc[e_start.index]) / BP_PER_TOKEN).round()
        offset = offset if planner.signed else offset.abs()
        assert offset.between(*planner.positive_band).all(), task
        assert len(e_start) == ds.labels.sum()


def test_copies_repeat_the_decisive_pair_with_one_placement():
    ds = synthetic("long_range", 40, seed=0, copies=2, use_cache=False)
    causal = ds.truth[ds.truth["role"] == "causal"]
    per_pair = causal.groupby(["pair_index", "side"]).size().unstack()
    assert (per_pair["enhancer"] == 2).all() and (per_pair["promoter"] == 2).all()
    gaps = causal.groupby(["pair_index", "side"])["start"].agg(lambda s: s.max() - s.min()).unstack()
    assert (gaps["enhancer"] == gaps["promoter"]).all()


def test_long_range_sites_are_out_of_a_window_and_of_reach_of_the_promoter_ends():
    """No enhancer CTCF token of either class lies within 16 tokens of a promoter CTCF token (a window sees no
    pair) or of a promoter end (a truncated window cannot tell where the enhancer site sits)."""
    ds = synthetic("long_range", 120, seed=1, use_cache=False)
    ctcf = ds.truth[ds.truth["motif_name"] == "CTCF"]
    tokens = lambda rows: np.array([t for s, e in zip(rows["start"], rows["end"])  # noqa: E731
                                    for t in range(s // BP_PER_TOKEN, (e - 1) // BP_PER_TOKEN + 1)])
    last = ds.promoter_len // BP_PER_TOKEN - 1
    checked = 0
    for _, sites in ctcf.groupby("pair_index"):
        enhancer, promoter = (tokens(sites[sites["side"] == side]) for side in ("enhancer", "promoter"))
        if enhancer.size:
            assert np.abs(enhancer[:, None] - promoter[None, :]).min() >= 17
            assert enhancer.min() >= 17 and last - enhancer.max() >= 17
            checked += 1
    assert checked > 60  # hard negatives and positives (easy negatives carry no enhancer CTCF)


def test_oracle_reads_the_rules_from_sequence(grammar, probes):
    assert roc_auc_score(grammar.labels, oracle_scores(grammar)) >= 0.95
    for task, ds in probes.items():
        assert roc_auc_score(ds.labels, oracle_scores(ds)) >= 0.9, task


def _kmer_counts(codes: np.ndarray, k: int = 4) -> np.ndarray:
    codes = np.minimum(codes.astype(np.int64), 4)
    index = sum(codes[:, i:codes.shape[1] - k + 1 + i] * 5 ** (k - 1 - i) for i in range(k))
    counts = np.stack([np.bincount(row, minlength=5 ** k) for row in index])
    return counts / counts.sum(1, keepdims=True)


def test_composition_alone_does_not_solve_grammar(grammar):
    parts = split(grammar, by="chrom", seed=0)
    for side in (grammar.enhancer, grammar.promoter):
        features = _kmer_counts(side)
        model = LogisticRegression(C=1.0, max_iter=2000).fit(features[parts.train], grammar.labels[parts.train])
        auroc = roc_auc_score(grammar.labels[parts.test], model.decision_function(features[parts.test]))
        assert auroc <= 0.70


def test_mixture_deals_causes_in_the_configured_shares():
    ds = synthetic("mixture", 1200, seed=1, use_cache=False,
                   cause_shares={"long_range": 2, "diffuse": 1, "tf_pair": 1})
    positives = ds.meta.loc[ds.labels == 1, "cause"].value_counts(normalize=True)
    assert set(ds.meta["cause"]) == {"long_range", "diffuse", "tf_pair", NO_CAUSE}
    assert positives.to_dict() == pytest.approx({"long_range": 0.5, "diffuse": 0.25, "tf_pair": 0.25}, abs=0.03)
    # every pair of a shared promoter follows that promoter's cause, negatives included
    planted = ds.meta[ds.meta["cause"] != NO_CAUSE]
    assert (planted.groupby("promoter_id")["cause"].nunique() == 1).all()
    assert (ds.meta.loc[ds.labels == 1, "mechanism"] == ds.meta.loc[ds.labels == 1, "cause"]).all()
    default = synthetic("mixture", 300, seed=1, use_cache=False)
    assert set(default.meta["cause"]) == {"long_range", "diffuse", "sparse_strong", NO_CAUSE}


def test_mixture_negatives_share_their_causes_motif_content(mixture):
    truth, meta = mixture.truth, mixture.meta
    strong = truth[(truth["strength"] >= 4) & (truth["side"] == "enhancer")]
    # the decisive enhancer motif: CTCF for the placement causes, a cell-line TF (not a decoy) for tf_pair
    key = {"tf_pair": lambda names: ~names.isin(ENHANCER_DECOYS)}
    for cause in CAUSES:
        rows = meta.index[meta["cause"] == cause]
        sites = strong[strong["pair_index"].isin(rows)]
        decisive = sites[key.get(cause, lambda names: names == "CTCF")(sites["motif_name"])]
        per_pair = decisive.groupby("pair_index").size().reindex(rows, fill_value=0)
        labels = mixture.labels[rows]
        # matched negatives carry exactly the positives' decisive motifs (same count per pair)
        assert per_pair.nunique() == 1 and per_pair.iloc[0] >= 1, cause
        assert 0.3 < labels.mean() < 0.8, cause
    easy = meta.index[meta["cause"] == NO_CAUSE]
    assert (mixture.labels[easy] == 0).all()
    assert len(easy) / (mixture.labels == 0).sum() == pytest.approx(EASY_NEGATIVE_SHARE, abs=0.05)
    assert strong[strong["pair_index"].isin(easy) & (strong["motif_name"] == "CTCF")].empty


@pytest.mark.parametrize("task", ["mixture", "long_range"])
def test_scaffold_marks_the_untested_share_of_the_easy_negatives_and_changes_nothing_else(task):
    default = synthetic(task, 600, seed=4, use_cache=False)
    easy = default.meta["cause"].to_numpy() == NO_CAUSE
    scaffold = default.meta["scaffold"].to_numpy()
    assert scaffold.dtype == bool and not scaffold[~easy].any() and easy.sum() > 50
    assert scaffold.sum() == easy.sum() - round(EASY_NEGATIVES_TESTED.get(task, 1) * easy.sum())
    assert scaffold.any() == (task == "mixture")  # a probe tests every easy negative
    for tested in (0.0, 0.25, 1.0):
        other = synthetic(task, 600, seed=4, use_cache=False, easy_negatives_tested=tested)
        assert other.meta["scaffold"].sum() == easy.sum() - round(tested * easy.sum()), tested
        assert other.meta["scaffold"].to_numpy()[easy].any() == (tested < 1)
        # the scaffold draw has its own random stream: sequences, labels and causes stay as they are
        assert np.array_equal(other.enhancer, default.enhancer) and np.array_equal(other.labels, default.labels)
        assert other.meta.drop(columns="scaffold").equals(default.meta.drop(columns="scaffold"))
    assert not synthetic("grammar", 100, seed=4, use_cache=False).meta["scaffold"].any()


def test_mixture_oracle_per_cause_and_single_sequences_fail(mixture):
    scores, causes = oracle_scores(mixture), mixture.meta["cause"].to_numpy()
    for cause in CAUSES:
        chosen = causes == cause
        assert roc_auc_score(mixture.labels[chosen], scores[chosen]) >= 0.95, cause
    # easy negatives (no decisive motif) score below every positive
    assert scores[causes == NO_CAUSE].max() < np.median(scores[mixture.labels == 1])
    parts = split(mixture, by="chrom", seed=0)
    for side in (mixture.enhancer, mixture.promoter):
        features = _kmer_counts(side)
        model = LogisticRegression(C=1.0, max_iter=2000).fit(features[parts.train], mixture.labels[parts.train])
        assert roc_auc_score(mixture.labels[parts.test], model.decision_function(features[parts.test])) <= 0.65


def test_propensity_shows_pair_leakage(grammar):
    with pytest.warns(UserWarning, match="leak"):
        leaky = split(grammar, by="random", seed=0)
    honest = split(grammar, by="chrom", seed=0)
    random_auc = propensity_baseline(grammar, leaky)["auroc"]
    chrom_auc = propensity_baseline(grammar, honest)["auroc"]
    assert random_auc >= 0.65 and chrom_auc <= 0.55 and random_auc - chrom_auc >= 0.15

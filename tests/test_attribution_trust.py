"""Trust checks of attribution: adaptive IG steps, motif families, family-aware recovery, ISM at chosen bases,
and the IG-vs-ISM disagreement flag, each on a toy model or table where the answer is known."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import cbat
from diagnostics import attribution as A
from diagnostics import motifs as M
from diagnostics import recovery as R


def onehot(rng, n, length):
    return torch.from_numpy(A.codes_to_onehot(rng.integers(0, 4, (n, length)).astype(np.uint8)))


class StepModel(torch.nn.Module):
    """logit = scale * tanh(k * (matches of the enhancer to a template - cut)) + zero-mean linear terms of both.

    The template is the attributed enhancer itself, so along the IG path from a shuffle (about a quarter of the
    bases match) the logit jumps once, sharply: few integration steps miss the jump. At the input the jump term
    is saturated (every single substitution stays on the plateau), so ISM and the gradient see only the linear
    terms, while IG also spreads the jump over every base the path changed.
    """

    def __init__(self, template, weights_e, weights_p, scale=5.0, k=2.0, cut=0.6):
        super().__init__()
        self.register_buffer("template", template)
        self.register_buffer("weights_e", weights_e)
        self.register_buffer("weights_p", weights_p)
        self.scale, self.k, self.cut = scale, k, cut * template.shape[-1]

    def forward(self, enhancer, promoter):
        matches = (enhancer * self.template).sum((1, 2))
        return (self.scale * torch.tanh(self.k * (matches - self.cut)) + (enhancer * self.weights_e).sum((1, 2))
                + (promoter * self.weights_p).sum((1, 2)))


def zero_mean_weights(rng, length, std):
    """Linear weights with zero mean per position, so ISM there is 4/3 x the weight of the observed base."""
    weights = torch.from_numpy(rng.normal(0, std, (4, length)).astype(np.float32))
    return weights - weights.mean(0, keepdim=True)


@pytest.fixture(scope="module")
def step_model():
    rng = np.random.default_rng(0)
    enhancer, promoter = onehot(rng, 1, 40), onehot(rng, 1, 30)
    return StepModel(enhancer[0], zero_mean_weights(rng, 40, 0.01), zero_mean_weights(rng, 30, 0.1)), enhancer, promoter


def test_adaptive_steps_reach_the_delta_threshold_where_50_steps_do_not(step_model):
    model, enhancer, promoter = step_model
    fixed = A.integrated_gradients(model, enhancer, promoter, n_shuffles=2, n_steps=50, delta_threshold=None,
                                   progress=False)
    assert abs(fixed.delta[0]) > 0.05 and fixed.steps[0] == 50
    adaptive = A.integrated_gradients(model, enhancer, promoter, n_shuffles=2, n_steps=50, delta_threshold=0.05,
                                      max_steps=3200, progress=False)
    assert abs(adaptive.delta[0]) <= 0.05 and adaptive.steps[0] > 50
    table = adaptive.convergence_table(0.05)
    assert table.loc[0, "steps"] == adaptive.steps[0] and not table["flagged"].any()
    # the cap holds: a loop that has not converged at max_steps stays flagged
    capped = A.integrated_gradients(model, enhancer, promoter, n_shuffles=2, n_steps=50, max_steps=99,
                                    progress=False)
    assert capped.steps[0] == 50 and capped.convergence_table(0.05)["flagged"].all()


def test_a_saturating_path_is_flagged_where_saliency_agrees_with_ism(step_model):
    model, enhancer, promoter = step_model
    ig = A.integrated_gradients(model, enhancer, promoter, n_shuffles=4, n_steps=50, max_steps=3200,
                                progress=False)
    sal = A.saliency(model, enhancer, promoter)
    ism = A.in_silico_mutagenesis(model, enhancer, promoter)
    checks = pd.concat([A.ism_agreement(ig, ism, np.array([7])).assign(method="integrated_gradients"),
                        A.ism_agreement(sal, ism, np.array([7])).assign(method="saliency")])
    flags = A.ism_flags(checks).set_index("side")
    # enhancer: IG spreads the jump over the bases the path changed; one substitution stays on the plateau
    assert flags.loc["enhancer", "ism_flag"]
    # promoter: linear, so every method agrees and nothing is flagged
    assert flags.loc["promoter", "ig_ism_r"] > 0.5 and not flags.loc["promoter", "ism_flag"]


def test_ism_at_chosen_positions_equals_brute_force_substitutions():
    rng = np.random.default_rng(3)
    model = cbat.build_model(dataclasses.replace(cbat.preset("baseline"), d_model=16, n_heads=2), seed=0).eval()
    enhancer, promoter = onehot(rng, 2, 40), onehot(rng, 2, 30)
    where = {"enhancer": [np.array([0, 5, 39]), np.array([12])], "promoter": [np.array([3, 4]), np.array([], int)]}
    ism_e, ism_p = A.in_silico_mutagenesis(model, enhancer, promoter, where, batch_size=4)
    with torch.no_grad():
        for i in range(2):
            for side, track, x in (("enhancer", ism_e, enhancer), ("promoter", ism_p, promoter)):
                expected = np.full(x.shape[2], np.nan)
                for pos in where[side][i]:
                    e, p = enhancer[i:i + 1], promoter[i:i + 1]
                    mutants = []
                    for base in range(4):
                        if x[i, base, pos] == 1:
                            continue
                        mutant = x[i:i + 1].clone()
                        mutant[0, :, pos] = 0
                        mutant[0, base, pos] = 1
                        mutants.append(model(mutant, p).item() if side == "enhancer" else model(e, mutant).item())
                    expected[pos] = model(e, p).item() - np.mean(mutants)
                np.testing.assert_allclose(track[i], expected, atol=1e-5)


def test_ism_positions_cover_the_seqlets_and_a_background_sample():
    seqlets = pd.DataFrame({"loop": [4, 4], "side": ["enhancer", "promoter"], "start": [10, 0], "end": [25, 15]})
    where = A.ism_positions(seqlets, [4, 9], {"enhancer": 100, "promoter": 60}, n_background=20, seed=0)
    assert set(range(10, 25)) <= set(where["enhancer"][0]) and len(where["enhancer"][0]) == 35
    assert len(where["enhancer"][1]) == 20 and len(where["promoter"][0]) == 35


def test_near_identical_matrices_form_one_family_and_a_dissimilar_one_does_not():
    rng = np.random.default_rng(0)
    motif = rng.dirichlet(np.full(4, 0.3), size=10).T  # [4, 10], informative columns
    relative = np.clip(motif + rng.normal(0, 0.02, motif.shape), 1e-3, None)
    relative = relative[::-1, ::-1][:, 1:]  # reverse complement, one column shorter
    other = rng.dirichlet(np.full(4, 0.3), size=12).T
    db = M.MotifDB.from_counts(["MA0001.1", "MA0002.1", "MA0003.1"], ["ONE", "TWO", "OTHER"],
                               [motif, relative, other])
    assert M.matrix_similarity(motif, relative) > 0.95 and M.matrix_similarity(motif, other) < 0.5
    members, similarity = db.family(0)
    assert members == (0, 1) and similarity[0] == 1.0 and similarity[1] > 0.95
    assert db.family(2)[0] == (2,)
    label = db.family_label(0)
    assert label["family_ids"] == "MA0001.1;MA0002.1"
    assert label["match_label"] == f"ONE (family: ONE, TWO; similarity {similarity[1]:.2f})"
    assert db.family_label(2)["match_label"] == "OTHER"


def test_a_family_match_counts_as_recovered_and_says_so():
    from cbat.data.motifs import get_motif

    end = 20 + get_motif("SP1").length
    truth = pd.DataFrame({"pair_index": [0, 1, 2], "side": "promoter", "motif_id": "MA0079.5", "motif_name": "SP1",
                          "start": 20, "end": end, "strand": "+", "role": "causal", "strength": 1.0})
    seqlets = pd.DataFrame({"loop": [0, 1, 2], "side": "promoter", "start": 18, "end": 33, "score": 1.0,
                            "matched": True, "motif_id": ["MA0493.3", "MA0079.5", "MA0139.1"],
                            "family_ids": ["MA0493.3;MA0079.4", "MA0079.5;MA0493.3", "MA0139.1"],
                            "match_label": ["KLF1 (family: KLF1, SP1; similarity 0.99)", "SP1", "CTCF"]})
    identity = R.motif_identity(seqlets, truth, [0, 1, 2])
    assert identity["match"].tolist() == ["family", "exact", "wrong"]
    assert identity["correct"].tolist() == [True, True, False]
    scores = {"enhancer": np.zeros((3, 50)), "promoter": np.zeros((3, 50))}
    scores["promoter"][:, 20:end] = 1.0
    figures = R.recovery_scores(scores, truth, [0, 1, 2], seqlets)
    assert figures["motif_id_fraction"] == pytest.approx(2 / 3)
    assert figures["motif_exact_fraction"] == pytest.approx(1 / 3)
    groups = R.recovery_by_group(scores, truth, [0, 1, 2], ["tf_pair", "tf_pair", "long_range"], seqlets)
    groups = groups.set_index("group")
    assert groups.loc["tf_pair", "recovered"] and groups.loc["tf_pair", "why"] == ""
    assert not groups.loc["long_range", "recovered"] and "placement decides" in groups.loc["long_range", "why"]

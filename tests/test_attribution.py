"""Attribution mechanics: dinucleotide shuffle, IG on both inputs, convergence flags, modes, ISM, loop choice."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import cbat
from diagnostics import attribution as A

from test_mechanisms import with_output_projections


def dinucleotide_counts(codes: np.ndarray) -> np.ndarray:
    counts = np.zeros((15, 15), dtype=int)
    np.add.at(counts, (codes[:-1], codes[1:]), 1)
    return counts


@pytest.fixture(scope="module")
def model():
    # attention outputs opened, as after training: a fresh model's logit does not read the promoter yet
    return with_output_projections(
        cbat.build_model(dataclasses.replace(cbat.preset("baseline"), d_model=16, n_heads=2), seed=0))


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(1)
    enhancer = torch.from_numpy(A.codes_to_onehot(rng.integers(0, 4, (3, 120)).astype(np.uint8)))
    promoter = torch.from_numpy(A.codes_to_onehot(rng.integers(0, 4, (3, 80)).astype(np.uint8)))
    return enhancer, promoter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dinucleotide_shuffle_keeps_every_dinucleotide_count(seed):
    rng = np.random.default_rng(seed)
    codes = rng.choice(5, size=400, p=[0.3, 0.2, 0.2, 0.28, 0.02]).astype(np.uint8)  # with some N (code 4)
    shuffled = A.dinucleotide_shuffle(codes, np.random.default_rng(seed + 10))
    np.testing.assert_array_equal(dinucleotide_counts(shuffled), dinucleotide_counts(codes))
    assert shuffled[0] == codes[0] and shuffled[-1] == codes[-1]
    assert (shuffled != codes).mean() > 0.4  # it really moved bases


def test_dinucleotide_shuffle_is_seeded_and_reaches_many_sequences():
    codes = np.random.default_rng(0).integers(0, 4, 60).astype(np.uint8)
    first = A.dinucleotide_shuffle(codes, np.random.default_rng(7))
    np.testing.assert_array_equal(first, A.dinucleotide_shuffle(codes, np.random.default_rng(7)))
    rng = np.random.default_rng(3)
    distinct = {A.dinucleotide_shuffle(codes, rng).tobytes() for _ in range(30)}
    assert len(distinct) > 25


def test_onehot_codes_round_trip_keeps_n_and_iupac():
    codes = np.array([[0, 1, 2, 3, 4, 5, 14, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(A.onehot_to_codes(A.codes_to_onehot(codes)), codes)


def test_shuffled_references_shape_and_composition(pair):
    enhancer, _ = pair
    refs = A.shuffled_references(enhancer, n_shuffles=4, seed=0)
    assert refs.shape == (12, 4, 120)
    np.testing.assert_allclose(refs[4:8].sum(-1), enhancer[1:2].expand(4, -1, -1).sum(-1))


def test_integrated_gradients_attributes_both_inputs_and_restores_mode(model, pair):
    enhancer, promoter = pair
    model.train()
    result = A.integrated_gradients(model, enhancer, promoter, n_shuffles=3, n_steps=16, internal_batch_size=32,
                                    progress=False)
    assert model.training and all(m.training for m in model.modules())
    assert result.enhancer.shape == (3, 4, 120) and result.promoter.shape == (3, 4, 80)
    assert np.abs(result.enhancer).sum() > 0 and np.abs(result.promoter).sum() > 0
    # completeness: attributions of both inputs together explain logit - reference logit up to the delta
    total = result.enhancer.sum((1, 2)) + result.promoter.sum((1, 2))
    np.testing.assert_allclose(total - (result.logit - result.reference_logit), result.delta, atol=1e-4)
    table = result.convergence_table(delta_threshold=0.05)
    assert list(table.columns) == ["steps", "logit", "reference_logit", "delta", "relative_delta", "flagged"]
    assert not table["flagged"].any()
    assert result.convergence_table(0.0)["flagged"].sum() == (np.abs(result.delta) > 0).sum()
    with torch.no_grad():
        model.eval()
        np.testing.assert_allclose(result.logit, model(enhancer, promoter).numpy(), atol=1e-5)


def test_integrated_gradients_is_deterministic_for_a_seed(model, pair):
    enhancer, promoter = pair
    a = A.integrated_gradients(model, enhancer[:1], promoter[:1], n_shuffles=2, n_steps=8, seed=3, progress=False)
    b = A.integrated_gradients(model, enhancer[:1], promoter[:1], n_shuffles=2, n_steps=8, seed=3, progress=False)
    np.testing.assert_array_equal(a.enhancer, b.enhancer)


def test_coarse_integration_gets_flagged(model, pair):
    enhancer, promoter = pair
    coarse = A.integrated_gradients(model, enhancer, promoter, n_shuffles=2, n_steps=1, delta_threshold=None,
                                    progress=False)
    fine = A.integrated_gradients(model, enhancer, promoter, n_shuffles=2, n_steps=32, delta_threshold=None,
                                  progress=False)
    assert np.abs(fine.delta).mean() < np.abs(coarse.delta).mean()
    threshold = float(np.abs(fine.delta).max()) * 1.01
    assert coarse.convergence_table(threshold)["flagged"].any()
    assert not fine.convergence_table(threshold)["flagged"].any()


def test_saliency_and_ism_agree_with_integrated_gradients(model, pair):
    enhancer, promoter = pair
    ig = A.integrated_gradients(model, enhancer[:1], promoter[:1], n_shuffles=4, n_steps=32, progress=False)
    sal = A.saliency(model, enhancer[:1], promoter[:1])
    ism = A.in_silico_mutagenesis(model, enhancer[:1], promoter[:1])
    assert ism[0].shape == (1, 120) and ism[1].shape == (1, 80)
    agreement = A.ism_agreement(ig, ism, np.array([5]))
    assert set(agreement["side"]) == {"enhancer", "promoter"} and (agreement["loop"] == 5).all()
    assert (agreement["pearson"] > 0.2).all()
    assert (A.ism_agreement(sal, ism)["pearson"] > 0.2).all()
    # saliency x input keeps the gradient only at the observed base
    np.testing.assert_allclose(sal.enhancer * (1 - enhancer[:1].numpy()), 0.0)


def test_projection_places_the_per_base_score_on_the_observed_base(pair):
    enhancer, _ = pair
    attr = np.random.default_rng(0).normal(size=(3, 4, 120))
    projected = A.project_observed(attr, enhancer)
    np.testing.assert_allclose(projected.sum(1), attr.sum(1))
    np.testing.assert_allclose(projected * (1 - enhancer.numpy()), 0.0)


def test_select_loops_ranks_per_cell_line_and_marks_outcomes():
    predictions = pd.DataFrame({"pair_index": range(6), "cell_line": list("AAABBB"), "label": [1, 0, 1, 0, 1, 1],
                                "logit": 0.0, "prob": [0.9, 0.95, 0.2, 0.6, 0.7, 0.1]})
    loops = A.select_loops(predictions, top=2)
    assert loops["pair_index"].tolist() == [1, 0, 4, 3]
    assert loops["outcome"].tolist() == ["FP", "TP", "TP", "FP"] and loops["rank"].tolist() == [1, 2, 1, 2]
    assert A.select_loops(predictions, top=10, threshold=0.65)["pair_index"].tolist() == [1, 0, 4]
    assert A.select_loops(predictions, top=3, by=None)["pair_index"].tolist() == [1, 0, 4]
    with pytest.raises(ValueError, match="prob"):
        A.select_loops(predictions.drop(columns="prob"))


def test_select_loops_per_cause_scores_every_planted_cause():
    """Per cause, the least confident cause still gets its loops; easy negatives of no cause are left out."""
    predictions = pd.DataFrame({"pair_index": range(7), "cell_line": "A", "label": [1, 1, 0, 1, 1, 0, 0],
                                "prob": [0.99, 0.98, 0.97, 0.6, 0.4, 0.5, 0.995],
                                "cause": ["sparse", "sparse", "sparse", "far", "far", "far", "none"]})
    loops = A.select_loops(predictions, top=2, by="cause")
    assert loops["pair_index"].tolist() == [3, 5, 0, 1]  # causes in name order, most confident first
    assert loops["outcome"].tolist() == ["TP", "FP", "TP", "TP"] and loops["rank"].tolist() == [1, 2, 1, 2]
    assert A.select_loops(predictions, top=2)["pair_index"].tolist() == [3, 5, 0, 1]  # auto: causes are planted
    per_cell_line = A.select_loops(predictions, top=2, by="cell_line")
    assert per_cell_line["pair_index"].tolist() == [6, 0]  # the surest loops hold one cause only
    # a cause with fewer confident pairs than asked reaches below the decision threshold: not a TP there
    far = A.select_loops(predictions, top=3, by="cause").query("cause == 'far'")
    assert far["outcome"].tolist() == ["TP", "FP", "FN"]
    assert A.select_loops(predictions, top=3, by="cause", threshold=0.55).query("cause == 'far'")["outcome"].tolist() \
        == ["TP"]
    unlabelled = A.select_loops(predictions.drop(columns="label"), top=3, by="cause").query("cause == 'far'")
    assert unlabelled["outcome"].tolist() == ["predicted", "predicted", "not predicted"]
    no_planted = predictions.assign(cause="none")  # a cause column without planted causes: per cell line
    assert A.select_loops(no_planted, top=2)["pair_index"].tolist() == [6, 0]
    with pytest.raises(ValueError, match="cause column"):
        A.select_loops(predictions.drop(columns="cause"), by="cause")
    with pytest.raises(ValueError, match="by:"):
        A.select_loops(predictions, by="tissue")


def test_bad_inputs_are_named(model, pair):
    enhancer, promoter = pair
    with pytest.raises(ValueError, match="enhancer"):
        A.integrated_gradients(model, enhancer[:, :3], promoter, progress=False)
    with pytest.raises(ValueError, match="loops"):
        A.saliency(model, enhancer[:2], promoter)


def test_choose_run_takes_the_simplest_learnt_run_as_good_as_the_best(tmp_path):
    import json

    from test_diagnostics_fakes import N_PAIRS, probs_with_noise, write_sweep

    base = cbat.preset("baseline")
    variants = {"small": dataclasses.replace(base, d_model=16, n_heads=2), "mid": base, "big": cbat.preset("cbat_v2"),
                "stalled": dataclasses.replace(base, d_model=8, n_heads=2)}
    learns = probs_with_noise(0.5)
    path = write_sweep(tmp_path / "s", variants, [0],
                       lambda v, s: np.full(N_PAIRS, 0.6) if v == "stalled" else learns(v, s))
    val_aupr = {"small": 0.97, "mid": 0.988, "big": 0.99, "stalled": 0.999}
    for variant, value in val_aupr.items():  # the validation figures decide, never the test split
        record = path / "runs" / f"{variant}__s0__chrom" / "record.json"
        content = json.loads(record.read_text())
        content["metrics"]["val"] = {"pooled": {"aupr": value}}
        record.write_text(json.dumps(content))
    run_id, why = A.choose_run(path)
    # the stalled run ranks best on validation but did not learn; mid is within 0.005 of big with fewer parameters
    assert run_id == "mid__s0__chrom" and "best 0.990" in why and "2 runs within" in why
    assert A.choose_run(path, tolerance=0.0)[0] == "big__s0__chrom"
    assert A.choose_run(path, tolerance=0.05)[0] == "small__s0__chrom"
    for variant in val_aupr:  # a validation split with one class: no AUPR anywhere, so no choice (was IndexError)
        record = path / "runs" / f"{variant}__s0__chrom" / "record.json"
        content = json.loads(record.read_text())
        content["metrics"]["val"] = {"pooled": {"aupr": None}}
        record.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="no finished run has a validation AUPR"):
        A.choose_run(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of a CUDA device the machine lacks")
def test_load_run_refuses_a_device_the_machine_lacks_before_reading_anything(tmp_path):
    with pytest.raises(ValueError, match="0 CUDA device"):
        A.load_run(tmp_path / "nowhere", device="cuda")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:<i>"):
        A.load_run(tmp_path / "nowhere", device="gpu")  # was a torch RuntimeError after the checkpoint was read

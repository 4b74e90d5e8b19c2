"""Losses: IMMAX margins follow the class ratio, the speculation penalty only punishes upward drift,
the sparsity loss pulls toward its target, and CBATLoss switches components by weight."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import cbat
from cbat.losses import AdaptiveIMMAXLoss, CBATLoss, SpeculationPenaltyLoss, adaptive_sparsity_loss


def test_immax_on_balanced_counts_is_plain_logistic_loss():
    logits, labels = torch.randn(64), torch.randint(0, 2, (64,)).float()
    loss = AdaptiveIMMAXLoss().eval()(logits, labels)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, labels))


def test_immax_margins_follow_observed_class_ratio():
    loss = AdaptiveIMMAXLoss(exponent=0.25, prior_counts=(0.0, 0.0))
    labels = torch.tensor([1.0] + [0.0] * 15)  # 1 positive : 15 negatives
    loss(torch.zeros(16), labels)
    rho_neg, rho_pos = loss.margins()
    assert rho_neg == 1.0 and rho_pos == pytest.approx(15 ** 0.25)
    # The minority class needs a larger score before it stops paying: at the same confident logit, a positive
    # costs more than a negative with the mirrored logit.
    loss.eval()
    pos = loss(torch.tensor([2.0]), torch.tensor([1.0]))
    neg = loss(torch.tensor([-2.0]), torch.tensor([0.0]))
    assert pos > neg


def test_speculation_penalty_only_above_the_positive_rate():
    penalty = SpeculationPenaltyLoss(positive_rate=0.5)
    labels = torch.zeros(8)
    assert penalty(torch.full((8,), -3.0), labels) == 0
    logits = torch.full((8,), 2.0, requires_grad=True)
    value = penalty(logits, labels)
    value.backward()
    assert value > 0 and (logits.grad > 0).all()  # gradient descent lowers the inflated probabilities


def test_adaptive_sparsity_loss_is_zero_at_target_and_grows_away():
    assert adaptive_sparsity_loss(torch.tensor(0.3), 0.3) == 0
    assert adaptive_sparsity_loss(torch.tensor(0.9), 0.3) > adaptive_sparsity_loss(torch.tensor(0.5), 0.3)


def test_cbat_loss_components_follow_weights():
    base = cbat.preset("baseline")
    logits, labels = torch.randn(16), torch.randint(0, 2, (16,)).float()
    parts = CBATLoss(base, 0.5)(logits, labels)
    assert set(parts) == {"bce", "total"} and torch.equal(parts["bce"], parts["total"])

    cfg = dataclasses.replace(cbat.preset("cbat_v2"), d_model=16, n_heads=2)
    model = cbat.build_model(cfg, seed=0).train()
    enhancer = F.one_hot(torch.randint(0, 4, (4, 200)), 4).float().transpose(1, 2)
    promoter = F.one_hot(torch.randint(0, 4, (4, 100)), 4).float().transpose(1, 2)
    loss_fn = CBATLoss(cfg, 0.5)
    aux = {}
    parts = loss_fn(model(enhancer, promoter, aux=aux), labels[:4], aux)
    assert set(parts) == {"bce", "immax", "speculation", "sparsity", "total"}
    expected = parts["bce"] + sum(loss_fn.weights[n] * parts[n] for n in ("immax", "speculation", "sparsity"))
    assert math.isclose(parts["total"].item(), expected.item(), rel_tol=1e-6)
    assert parts["sparsity"].requires_grad

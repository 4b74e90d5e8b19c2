"""Training losses: BCE (the main task) plus the log's three auxiliary losses, each reported on its own.

``CBATLoss`` combines them with the weights of a ``CBATConfig`` (``immax_weight``, ``speculation_weight``,
``sparsity_loss_weight``); a weight of 0 switches a loss off. Components are returned by name so the
trainer can log each one, its share of the total and the conflict of its gradient with the BCE gradient.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from cbat.config import CBATConfig


class AdaptiveIMMAXLoss(nn.Module):
    """Logistic loss with class-dependent confidence margins (IMMAX), margins adapted to the class ratio.

    IMMAX ("Balancing the Scales", Cortes, Mao, Mohri & Zhong, 2025, arXiv 2502.10381) replaces the
    margin-free surrogate by the class-imbalanced (rho_+, rho_-)-margin loss. With labels y in {-1, +1},
    a score h(x) and the logistic function Phi(u) = log(1 + exp(-u)), the loss used here is

        L(h, x, y) = Phi( y * h(x) / rho_y ),

    so a sample of class y only stops paying once its signed score exceeds about rho_y. The paper treats
    (rho_+, rho_-) as hyper-parameters guided by its class-sensitive bound (larger margins for the rarer
    class); here they follow the observed class counts m_+ and m_- (running totals over the labels seen
    in training) as

        rho_+ = (m_- / m_+) ** exponent,   rho_- = 1            (when positives are the minority)

    and symmetrically when negatives are the minority, with ``exponent`` = 1/4 by default (the
    n_y^(-1/4) margin rule of LDAM, Cao et al. 2019). Balanced data give rho_+ = rho_- = 1, i.e. plain BCE.
    """

    def __init__(self, exponent: float = 0.25, prior_counts: tuple[float, float] = (1.0, 1.0)) -> None:
        super().__init__()
        self.exponent = exponent
        # Running [negatives, positives]; the prior avoids a zero count before the first positive.
        self.register_buffer("counts", torch.tensor(prior_counts, dtype=torch.float64), persistent=True)

    def _margin_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        # float64 tensors on the counts' device: the loss reads them with no host read, so a GPU never waits
        negatives, positives = self.counts.unbind()
        ratio = (torch.maximum(negatives, positives) / torch.minimum(negatives, positives)) ** self.exponent
        minority_positive = positives <= negatives
        return torch.where(minority_positive, 1.0, ratio), torch.where(minority_positive, ratio, 1.0)

    def margins(self) -> tuple[float, float]:
        """Current (rho_neg, rho_pos)."""
        return tuple(float(m) for m in self._margin_tensors())

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.float()
        if self.training:
            positives = labels.sum(dtype=torch.float64)
            self.counts += torch.stack([labels.numel() - positives, positives])
        rho_neg, rho_pos = self._margin_tensors()
        signs = 2.0 * labels - 1.0
        rho = torch.where(labels > 0.5, rho_pos, rho_neg).to(signs.dtype)
        return F.softplus(-signs * logits.float() / rho).mean()


class SpeculationPenaltyLoss(nn.Module):
    """Penalise "speculative" positive mass: the batch's mean predicted probability above the positive rate.

    ``loss = relu(mean(sigmoid(logits)) - pi) ** 2`` where ``pi`` is the observed positive rate (the
    training set's, given at construction; the batch's own rate when None). Only upward drift is
    penalised: this is the log's v1 recall inflation, where all predicted probabilities moved up together.
    """

    def __init__(self, positive_rate: Optional[float] = None) -> None:
        super().__init__()
        self.positive_rate = positive_rate

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rate = labels.float().mean() if self.positive_rate is None else self.positive_rate
        return F.relu(torch.sigmoid(logits.float()).mean() - rate).pow(2)


def adaptive_sparsity_loss(norm_entropy: torch.Tensor, target: float) -> torch.Tensor:
    """Squared distance of the mean normalised attention entropy (1 = uniform, 0 = one key) from ``target``.

    The log's ``_adaptive_loss``: with ``sparsity_target`` below the current entropy it pushes attention to
    be sharper; it is the force behind hypothesis H2 (forced sparsity drops diffuse weak signal).
    """
    return (norm_entropy.float() - target).pow(2)


class CBATLoss(nn.Module):
    """BCE plus the auxiliary losses switched on in ``cfg``; ``forward`` returns named components.

    Parameters
    ----------
    cfg : the model config; its ``*_weight`` fields weight the auxiliary losses.
    positive_rate : the training set's positive rate (speculation penalty reference, IMMAX prior).
    pos_weight : BCE weight of positives (class-imbalance handling), 1 for none.
    """

    AUX = ("immax", "speculation", "sparsity")

    def __init__(self, cfg: CBATConfig, positive_rate: float, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)), persistent=False)
        self.immax = AdaptiveIMMAXLoss()
        self.speculation = SpeculationPenaltyLoss(positive_rate)
        self.weights = {"immax": cfg.immax_weight, "speculation": cfg.speculation_weight,
                        "sparsity": cfg.sparsity_loss_weight}

    @property
    def active_aux(self) -> tuple[str, ...]:
        """Names of the auxiliary losses with a non-zero weight."""
        return tuple(name for name in self.AUX if self.weights[name] > 0)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor,
                aux: Optional[dict] = None) -> dict[str, torch.Tensor]:
        """Unweighted components by name plus ``total`` = bce + sum(weight * aux).

        ``aux`` is the dict the model's forward filled (``model(e, p, aux=aux)``); the sparsity loss reads
        its ``attention_entropy``.
        """
        labels = labels.float()
        parts = {"bce": F.binary_cross_entropy_with_logits(logits.float(), labels, pos_weight=self.pos_weight)}
        active = self.active_aux
        if "immax" in active:
            parts["immax"] = self.immax(logits, labels)
        if "speculation" in active:
            parts["speculation"] = self.speculation(logits, labels)
        if "sparsity" in active:
            entropy = (aux or {}).get("attention_entropy")
            if entropy is not None:  # None when no adaptive attention ran
                parts["sparsity"] = adaptive_sparsity_loss(entropy, self.cfg.sparsity_target)
        total = parts["bce"]
        for name in active:
            if name in parts:
                total = total + self.weights[name] * parts[name]
        parts["total"] = total
        return parts

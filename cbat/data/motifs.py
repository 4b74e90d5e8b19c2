"""Real JASPAR position frequency matrices (offline, via ``pyjaspar``) and the synthetic benchmark's vocabularies.

Matrix ids and the database release are pinned so the benchmark does not change when pyjaspar adds a
release.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

JASPAR_RELEASE = "JASPAR2024"

# name -> JASPAR matrix id
MOTIF_IDS = {
    "CTCF": "MA0139.1", "YY1": "MA0095.4",
    "SPI1": "MA0080.7", "EBF1": "MA0154.5", "IRF4": "MA1419.2",
    "GATA1": "MA2388.1", "GATA1::TAL1": "MA0140.3", "KLF1": "MA0493.3",
    "HNF4A": "MA1494.2", "FOXA2": "MA0047.4", "CDX2": "MA0465.3", "GATA6": "MA1396.2",
    "TP63": "MA0525.2", "KLF5": "MA0599.1", "GRHL2": "MA1105.3",
    # decoys: common enhancer-side (AP-1, C/EBP, TEAD) and promoter-side (NRF1, ETS, SP) factors
    "FOS::JUN": "MA0099.4", "CEBPB": "MA0466.4", "TEAD1": "MA0090.4",
    "NRF1": "MA0506.3", "ELK1": "MA0028.3", "SP1": "MA0079.5",
}

# Cell lines as TF vocabularies. Within a cell line, enhancer TF k is compatible with promoter TF k+1
# (cyclically): every TF appears on both sides, so single-sequence motif content says nothing about the label.
CELL_LINE_TFS = {
    "GM12878": ("SPI1", "EBF1", "IRF4"),
    "K562": ("GATA1", "GATA1::TAL1", "KLF1"),
    "Stomach": ("HNF4A", "FOXA2", "CDX2", "GATA6"),
    "NHEK": ("TP63", "KLF5", "GRHL2"),
}
SHARED_TFS = ("CTCF", "YY1")
ENHANCER_DECOYS = ("FOS::JUN", "CEBPB", "TEAD1", "YY1")
PROMOTER_DECOYS = ("NRF1", "ELK1", "SP1", "YY1")


def compatible_partner(cell_line: str, enhancer_tf: str) -> str:
    """The promoter TF that an enhancer TF loops with in ``cell_line`` (the planted pairing rule)."""
    tfs = CELL_LINE_TFS[cell_line]
    return tfs[(tfs.index(enhancer_tf) + 1) % len(tfs)]


@dataclass(frozen=True)
class Motif:
    """One JASPAR matrix: ``probs`` is ``[length, 4]`` (A, C, G, T), rows summing to 1."""

    name: str
    matrix_id: str
    probs: np.ndarray

    @property
    def length(self) -> int:
        return self.probs.shape[0]

    def log_odds(self, background: float = 0.25) -> np.ndarray:
        """Position weight matrix ``[length, 4]`` in bits against a uniform background."""
        return np.log2(self.probs / background)


@lru_cache(maxsize=None)
def get_motif(name: str) -> Motif:
    """The pinned JASPAR matrix for ``name`` with a pseudocount of 0.5 % per base."""
    if name not in MOTIF_IDS:
        raise KeyError(f"unknown motif {name!r}; known: {sorted(MOTIF_IDS)}")
    from pyjaspar import jaspardb  # slow-ish import; only when a motif is first needed

    record = jaspardb(release=JASPAR_RELEASE).fetch_motif_by_id(MOTIF_IDS[name])
    counts = np.array([record.counts[base] for base in "ACGT"], dtype=np.float64).T
    freqs = counts / counts.sum(axis=1, keepdims=True)
    probs = (freqs + 0.005) / (1 + 4 * 0.005)
    return Motif(name=name, matrix_id=MOTIF_IDS[name], probs=probs)

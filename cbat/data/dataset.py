"""``EPIDataset``: enhancer/promoter pairs as uint8 codes, labels, per-pair metadata and ground truth."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

from cbat.data.encoding import decode, onehot

META_COLUMNS = ("pair_id", "cell_line", "chrom", "enhancer_id", "promoter_id")
TRUTH_COLUMNS = ("pair_index", "side", "motif_id", "motif_name", "start", "end", "strand", "role")


@dataclass
class EPIDataset:
    """Enhancer-promoter pairs.

    Attributes
    ----------
    enhancer, promoter : numpy.ndarray
        uint8 codes ``[N, Le]`` and ``[N, Lp]`` (see :mod:`cbat.data.encoding` for the code table).
    labels : numpy.ndarray
        int64 0/1, ``[N]``.
    meta : pandas.DataFrame
        One row per pair with at least ``pair_id, cell_line, chrom, enhancer_id, promoter_id``.
    truth : pandas.DataFrame or None
        Planted motifs (synthetic data): ``pair_index, side, motif_id, motif_name, start, end, strand, role``;
        ``start``/``end`` are 0-based half-open bp within the side's sequence.
    """

    enhancer: np.ndarray
    promoter: np.ndarray
    labels: np.ndarray
    meta: pd.DataFrame
    truth: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.enhancer.dtype != np.uint8 or self.promoter.dtype != np.uint8:
            raise TypeError("EPIDataset: enhancer and promoter must be uint8 code matrices")
        if self.enhancer.shape[0] != n or self.promoter.shape[0] != n or len(self.meta) != n:
            raise ValueError(f"EPIDataset: {self.enhancer.shape[0]} enhancers, {self.promoter.shape[0]} promoters, "
                             f"{n} labels and {len(self.meta)} meta rows; expected equal counts")
        missing = [c for c in META_COLUMNS if c not in self.meta.columns]
        if missing:
            raise ValueError(f"EPIDataset: meta lacks column(s) {missing}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.meta = self.meta.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def cell_lines(self) -> list[str]:
        """Cell lines present, sorted."""
        return sorted(self.meta["cell_line"].unique())

    @property
    def enhancer_len(self) -> int:
        return self.enhancer.shape[1]

    @property
    def promoter_len(self) -> int:
        return self.promoter.shape[1]

    def fingerprint(self) -> str:
        """A hash of the pairs, in order: sequences, labels and the meta columns a split reads (``META_COLUMNS``,
        and the ``held_out`` flags where the data carry them). A sweep stores it, so data that changed on disk
        since (rows reordered, edited, added, moved in or out of the held-out test pairs) are found before a run
        resumes or a diagnostic reads pairs by their index. (``scaffold`` is left out: the benchmark's files carried
        it before fingerprints read flags, and their sweeps would no longer resume.)"""
        from cbat.data.splits import flag_column

        digest = hashlib.blake2b(digest_size=16)
        for codes in (self.enhancer, self.promoter, self.labels):
            digest.update(str(codes.shape).encode())
            digest.update(np.ascontiguousarray(codes).tobytes())
        digest.update(pd.util.hash_pandas_object(self.meta[list(META_COLUMNS)].astype(str), index=False).to_numpy()
                      .tobytes())
        if "held_out" in self.meta:
            digest.update(b"held_out" + flag_column(self.meta, "held_out").tobytes())
        return digest.hexdigest()

    def onehot(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Float one-hot tensors ``([B, 4, Le], [B, 4, Lp])`` for the pairs at ``index``."""
        index = np.atleast_1d(np.asarray(index))
        return onehot(self.enhancer[index]), onehot(self.promoter[index])

    def subset(self, index) -> "EPIDataset":
        """A new dataset with the pairs at ``index``; ``truth.pair_index`` is renumbered to match."""
        index = np.atleast_1d(np.asarray(index))
        if index.dtype == bool:
            index = np.flatnonzero(index)
        truth = None
        if self.truth is not None:
            new_position = pd.Series(np.arange(len(index)), index=index)
            truth = self.truth[self.truth["pair_index"].isin(index)].copy()
            truth["pair_index"] = new_position.loc[truth["pair_index"]].to_numpy()
            truth = truth.sort_values(["pair_index", "side", "start"], kind="stable").reset_index(drop=True)
        return EPIDataset(self.enhancer[index], self.promoter[index], self.labels[index],
                          self.meta.iloc[index].reset_index(drop=True), truth)

    def to_table(self) -> pd.DataFrame:
        """A flat table (``enhancer_seq, promoter_seq, label`` + meta) that :func:`cbat.data.load` reads back."""
        table = self.meta.copy()
        table.insert(0, "enhancer_seq", [decode(row) for row in self.enhancer])
        table.insert(1, "promoter_seq", [decode(row) for row in self.promoter])
        table.insert(2, "label", self.labels)
        return table

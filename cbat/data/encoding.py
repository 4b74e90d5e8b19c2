"""DNA text <-> uint8 codes <-> float one-hot, all vectorised through lookup tables.

Codes: ``A C G T`` = 0..3, ``N`` = 4, the IUPAC ambiguity codes ``R Y S W K M B D H V`` = 5..14.
One-hot rule (``ONEHOT_TABLE``): a code becomes the uniform distribution over the bases it stands for,
so ``N`` -> 0.25 each, ``R`` (A/G) -> 0.5 A + 0.5 G, ``B`` (C/G/T) -> 1/3 each. Lowercase (soft-masked)
bases are accepted and read as uppercase. Sequences shorter than a fixed length are padded with ``N`` on
both sides (centred); longer ones are cropped around their centre.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads on the first one-hot: generating or reading data needs only numpy
    import torch

BASES = "ACGT"
SYMBOLS = "ACGTNRYSWKMBDHV"
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "N": "ACGT", "R": "AG", "Y": "CT", "S": "CG", "W": "AT",
         "K": "GT", "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG"}
N_CODE = SYMBOLS.index("N")
_INVALID = 255


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    onehot = np.zeros((len(SYMBOLS), 4), dtype=np.float32)
    for code, symbol in enumerate(SYMBOLS):
        for base in IUPAC[symbol]:
            onehot[code, BASES.index(base)] = 1.0 / len(IUPAC[symbol])
    ascii_to_code = np.full(256, _INVALID, dtype=np.uint8)
    for code, symbol in enumerate(SYMBOLS):
        ascii_to_code[ord(symbol)] = ascii_to_code[ord(symbol.lower())] = code
    complement = str.maketrans("ACGTNRYSWKMBDHV", "TGCANYRSWMKVHDB")
    revcomp = np.array([SYMBOLS.index(s.translate(complement)) for s in SYMBOLS], dtype=np.uint8)
    return onehot, ascii_to_code, revcomp


ONEHOT_TABLE, _ASCII_TO_CODE, _COMPLEMENT = _build_tables()
_ONEHOT_T = np.ascontiguousarray(ONEHOT_TABLE.T)  # [4, n_codes]
_SYMBOL_BYTES = np.frombuffer(SYMBOLS.encode("ascii"), dtype=np.uint8)


class SequenceError(ValueError):
    """A sequence that cannot be encoded; the message names the source, record and field."""


def encode(seq: str, where: str = "sequence") -> np.ndarray:
    """Encode one DNA string as uint8 codes.

    Parameters
    ----------
    seq : str
        Bases; case-insensitive ACGT, N and IUPAC codes.
    where : str
        Text naming the record and field, used in error messages.

    Returns
    -------
    numpy.ndarray
        uint8 codes, shape ``[len(seq)]``.
    """
    if not isinstance(seq, str) or len(seq) == 0:
        raise SequenceError(f"{where}: empty sequence; expected bases A, C, G, T, N or IUPAC codes")
    raw = np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)
    codes = _ASCII_TO_CODE[raw]
    bad = np.flatnonzero(codes == _INVALID)
    if bad.size:
        char = seq[bad[0]]
        raise SequenceError(f"{where}: invalid character {char!r} at position {bad[0] + 1}; expected A, C, G, "
                            f"T, N or IUPAC codes ({SYMBOLS})")
    return codes


def fit_length(codes: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or centre-pad (with ``N``) one code vector to ``length``."""
    size = codes.shape[0]
    if size >= length:
        start = (size - length) // 2
        return codes[start:start + length]
    out = np.full(length, N_CODE, dtype=np.uint8)
    start = (length - size) // 2
    out[start:start + size] = codes
    return out


def encode_many(seqs, length: int | None = None, where: str = "sequence", names=None) -> np.ndarray:
    """Encode strings into a ``[N, length]`` uint8 matrix (centred crop/pad when lengths differ).

    Parameters
    ----------
    seqs : sequence of str
    length : int, optional
        Fixed output length; by default the longest sequence.
    where : str
        Source and field for error messages (e.g. ``"pairs.csv: enhancer_seq"``).
    names : sequence of str, optional
        Record names for error messages; defaults to ``row <i+1>``.
    """
    seqs = list(seqs)
    if not seqs:
        raise SequenceError(f"{where}: no sequences")
    label = (lambda i: f"{where}, {names[i]}") if names is not None else (lambda i: f"{where}, row {i + 1}")
    encoded = [encode(s, label(i)) for i, s in enumerate(seqs)]
    width = length if length is not None else max(c.shape[0] for c in encoded)
    return np.stack([fit_length(c, width) for c in encoded])


def decode(codes: np.ndarray) -> str:
    """Codes back to an uppercase DNA string."""
    return _SYMBOL_BYTES[np.asarray(codes)].tobytes().decode("ascii")


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of codes along the last axis (IUPAC codes complemented too)."""
    return _COMPLEMENT[codes][..., ::-1]


@cache
def _onehot_torch_t() -> torch.Tensor:
    import torch

    return torch.from_numpy(_ONEHOT_T)


def onehot(codes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 codes ``[B, L]`` -> float32 one-hot ``[B, 4, L]`` by one table lookup."""
    import torch

    if torch.is_tensor(codes):
        return _onehot_torch_t()[:, codes.long()].movedim(0, -2).contiguous()
    # Indexing the transposed table writes [4, B, L] directly: one gather, one cheap axis swap.
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(_ONEHOT_T[:, codes], 0, -2)))

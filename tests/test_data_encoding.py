"""Encoding rule (IUPAC -> uniform over the bases it stands for), one-hot via table, EPIDataset behaviour."""
import numpy as np
import pandas as pd
import pytest
import torch

from cbat.data import EPIDataset, SequenceError, decode, encode, onehot


def test_iupac_rule_and_lowercase():
    x = onehot(encode("ACGTNRacgtb")[None])[0]  # [4, L]
    assert x.shape == (4, 11)
    assert torch.equal(x[:, :4], torch.eye(4))
    assert torch.allclose(x[:, 4], torch.full((4,), 0.25))               # N -> 0.25 each
    assert torch.allclose(x[:, 5], torch.tensor([0.5, 0.0, 0.5, 0.0]))   # R -> A/G
    assert torch.equal(x[:, 6:10], torch.eye(4))                         # soft-masked bases
    assert torch.allclose(x[:, 10], torch.tensor([0.0, 1 / 3, 1 / 3, 1 / 3]))  # B -> C/G/T
    assert torch.allclose(x.sum(0), torch.ones(11))


def test_decode_round_trip_and_reverse_complement():
    from cbat.data.encoding import reverse_complement
    seq = "ACGTNRYSWKMBDHV"
    assert decode(encode(seq)) == seq
    assert decode(reverse_complement(encode("AACGTR"))) == "YACGTT"


@pytest.mark.parametrize("seq, fragment", [("ACGU", "'U' at position 4"), ("", "empty sequence"),
                                           ("AC-G", "'-' at position 3")])
def test_bad_sequences_name_position(seq, fragment):
    with pytest.raises(SequenceError, match=fragment):
        encode(seq, "record 7")


def _tiny_dataset():
    meta = pd.DataFrame({"pair_id": ["a", "b", "c"], "cell_line": ["X", "Y", "X"], "chrom": ["chr1"] * 3,
                         "enhancer_id": ["e1", "e2", "e3"], "promoter_id": ["p", "p", "q"]})
    truth = pd.DataFrame({"pair_index": [0, 2, 2], "side": ["enhancer"] * 3, "motif_id": ["m"] * 3,
                          "motif_name": ["M"] * 3, "start": [0, 1, 3], "end": [2, 3, 5], "strand": ["+"] * 3,
                          "role": ["causal", "decoy", "causal"]})
    codes = np.stack([encode("ACGTAC"), encode("GGGGGG"), encode("TTTTNN")])
    return EPIDataset(codes, codes[:, :4].copy(), np.array([1, 0, 1]), meta, truth)


def test_dataset_onehot_and_subset_renumber_truth():
    ds = _tiny_dataset()
    e, p = ds.onehot([2, 0])
    assert e.shape == (2, 4, 6) and p.shape == (2, 4, 4) and e.dtype == torch.float32
    assert torch.allclose(e[0, :, 4], torch.full((4,), 0.25))
    sub = ds.subset([2, 1])
    assert list(sub.meta["pair_id"]) == ["c", "b"] and list(sub.labels) == [1, 0]
    assert list(sub.truth["pair_index"]) == [0, 0] and list(sub.truth["start"]) == [1, 3]
    assert ds.cell_lines == ["X", "Y"]


def test_dataset_rejects_mismatched_parts():
    ds = _tiny_dataset()
    with pytest.raises(ValueError, match="expected equal counts"):
        EPIDataset(ds.enhancer[:2], ds.promoter, ds.labels, ds.meta)

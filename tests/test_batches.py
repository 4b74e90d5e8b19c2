import numpy as np
import torch

from cbat.batches import DeviceBatches
from cbat.data import encode, onehot


def test_device_batches_match_the_dataset_encoding_including_iupac_codes():
    enhancer = np.stack([encode("ACGTNRYacgtK"), encode("TTTTAAAACCCG")])
    promoter = np.stack([encode("GGGNNN"), encode("acgtWS")])
    codes = type("Codes", (), {"enhancer": enhancer, "promoter": promoter})()
    batches = DeviceBatches(codes, "cpu")
    e, p = batches.onehot([1, 0])
    assert torch.equal(e, onehot(enhancer[[1, 0]])) and torch.equal(p, onehot(promoter[[1, 0]]))
    assert e.shape == (2, 4, 12) and p.dtype == torch.float32
    # the trainer passes a slice of its epoch order already on the device
    e_t, p_t = batches.onehot(torch.tensor([1, 0, 1]))
    assert torch.equal(e_t, onehot(enhancer[[1, 0, 1]])) and torch.equal(p_t, onehot(promoter[[1, 0, 1]]))

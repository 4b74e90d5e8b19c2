"""Trace rows say what they measured (``kind``) and where (``site``), so readers never parse names."""
import torch

import cbat


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    codes = [torch.randint(0, 4, (2, length), generator=gen) for length in (300, 200)]
    return [torch.nn.functional.one_hot(c, 4).float().transpose(1, 2) for c in codes]


def test_every_hook_row_carries_kind_and_site():
    model = cbat.build_model(cbat.preset("cbat_v3", d_model=16, n_heads=2), seed=0)
    enhancer, promoter = _batch()
    with cbat.record(model, mode="summary") as trace:
        model(enhancer, promoter).sum().backward()
        trace.log_scalar("loss.bce", 0.7)
    frame = trace.summary()
    sites = frame.groupby("kind")["site"].unique().map(set).to_dict()
    assert sites["attn"] == {"anchors.gather", "anchors.broadcast", "cross_ep", "cross_pe"}
    assert sites["anchors"] == {"anchors"}
    assert {"blocks.0", "head", "stem_e"} <= sites["grad"]
    assert sites["loss"] == {"bce"}
    assert frame.loc[frame["kind"] != "loss", "block"].isin([-1, 0]).all()

    model = cbat.build_model(cbat.preset("cbat_v2", d_model=16, n_heads=2), seed=0)
    with cbat.record(model, mode="summary") as trace:
        model(enhancer, promoter)
    frame = trace.summary()
    assert set(frame.loc[frame["kind"] == "gate", "site"]) == {"attn", "joint", "ffn"}
    assert "joint" in set(frame.loc[frame["kind"] == "attn", "site"])

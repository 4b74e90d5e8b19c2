"""Trainer: reproducible on CPU, checkpoints reload, resume equals an uninterrupted run, early stopping,
NaN/inf faults name step and block, traces carry loss components and gradient cosines."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import cbat
import cbat.train as train_module
from cbat.train import NumericalFault, TrainSettings, load_checkpoint, predict, train

ENHANCER_BP, PROMOTER_BP = 120, 80


class TinyDataset:
    """Random pairs following the EPIDataset contract; positives carry a planted A-run in the enhancer."""

    def __init__(self, n=64, seed=0):
        rng = np.random.default_rng(seed)
        self.labels = np.tile([0, 1], n // 2)
        self.enhancer = rng.integers(0, 4, (n, ENHANCER_BP)).astype(np.uint8)
        self.promoter = rng.integers(0, 4, (n, PROMOTER_BP)).astype(np.uint8)
        self.enhancer[self.labels == 1, 40:60] = 0
        self.meta = pd.DataFrame({"pair_id": np.arange(n), "chrom": "chr1",
                                  "cell_line": np.where(np.arange(n) % 4 < 2, "GM12878", "K562")})
        self.truth = None

    def __len__(self):
        return len(self.labels)

    def onehot(self, index):
        eye = torch.eye(4)
        as_long = lambda codes: torch.as_tensor(codes[index], dtype=torch.long)  # noqa: E731
        return eye[as_long(self.enhancer)].transpose(1, 2), eye[as_long(self.promoter)].transpose(1, 2)


class Split:
    def __init__(self, n):
        index = np.arange(n)
        self.train, self.val, self.test, self.name = index[: n // 2], index[n // 2: 3 * n // 4], index[3 * n // 4:], "t"


SMALL = dict(d_model=16, n_heads=2)
FAST = TrainSettings(epochs=2, batch_size=16, hook_every=2, progress=False, device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def data():
    ds = TinyDataset()
    return ds, Split(len(ds))


@pytest.fixture(scope="module")
def v2_run(data, tmp_path_factory):
    cfg = cbat.preset("cbat_v2", **SMALL)
    out = tmp_path_factory.mktemp("v2")
    return train(cfg, *data, FAST, seed=3, out_dir=out), out


def test_same_seed_same_metrics_and_other_seed_differs(data):
    cfg = cbat.preset("baseline", **SMALL)
    first, second = (train(cfg, *data, FAST, seed=1) for _ in range(2))
    assert first.metrics == second.metrics
    np.testing.assert_array_equal(first.predictions["logit"], second.predictions["logit"])
    other = train(cfg, *data, FAST, seed=2)
    assert not np.array_equal(first.predictions["logit"], other.predictions["logit"])


def test_outputs_follow_the_run_folder_contract(v2_run, data):
    result, out = v2_run
    assert {"model.pt", "trace.parquet", "predictions.parquet"} <= {p.name for p in out.iterdir()}
    assert not (out / "state.pt").exists()
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert list(predictions.columns) == ["pair_index", "cell_line", "label", "logit", "prob"]
    np.testing.assert_array_equal(predictions["pair_index"], data[1].test)
    model, cfg = load_checkpoint(out / "model.pt")
    assert cfg == result.cfg
    np.testing.assert_allclose(predict(model, data[0], data[1].test), predictions["logit"], rtol=1e-5, atol=1e-6)
    test = result.metrics["test"]
    assert set(test["per_cell_line"]) == {"GM12878", "K562"} and test["pooled"]["n"] == len(data[1].test)


def test_trace_holds_losses_grad_cosines_and_final_attention(v2_run):
    trace = v2_run[0].trace
    losses = trace[trace["name"].str.startswith("loss.")]
    assert {"loss.bce", "loss.immax", "loss.speculation", "loss.sparsity", "loss.total"} <= set(losses["name"])
    cosines = losses[losses["statistic"] == "grad_cosine"]
    assert set(cosines["name"]) == {"loss.immax", "loss.speculation", "loss.sparsity"}
    assert cosines["value"].dropna().between(-1, 1).all()
    assert cosines[cosines["name"] == "loss.immax"]["value"].notna().all()  # IMMAX always has a gradient
    assert (losses[losses["statistic"] == "grad_norm"]["value"] >= 0).all()
    final = trace[trace["phase"] == "final"]
    assert final["step"].eq(v2_run[0].steps).all()
    assert (final["name"] == "blocks.0.cross_ep.attn.pattern").any()
    assert trace[trace["phase"] == "train"]["name"].str.endswith("grad_norm").any()


def test_resume_after_interruption_equals_uninterrupted(data, tmp_path, monkeypatch):
    cfg = cbat.preset("baseline", **SMALL)
    # the lr schedule is derived from the step counter, so a resumed run continues it exactly
    settings = dataclasses.replace(FAST, epochs=3, lr_warmup_steps=3, lr_schedule="cosine")
    whole = train(cfg, *data, settings, seed=4)
    original, calls = train_module._Run.train_epoch, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(train_module._Run, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, *data, settings, seed=4, out_dir=tmp_path)
    assert (tmp_path / "state.pt").exists()
    monkeypatch.setattr(train_module._Run, "train_epoch", original)
    resumed = train(cfg, *data, settings, seed=4, out_dir=tmp_path, resume=True)
    assert resumed.metrics == whole.metrics and resumed.history == whole.history
    pd.testing.assert_frame_equal(resumed.trace, whole.trace)


def test_lr_ramps_up_over_the_warmup_then_follows_the_cosine(data, monkeypatch):
    seen, original = [], train_module._Run._set_lr

    def spy(self, step):
        original(self, step)
        seen.append(self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(train_module._Run, "_set_lr", spy)
    settings = dataclasses.replace(FAST, lr=0.01, lr_warmup_steps=2, lr_schedule="cosine")  # 2 steps per epoch
    train(cbat.preset("baseline", **SMALL), *data, settings, seed=0)
    cosine = [0.5 * (1 + np.cos(np.pi * step / 4)) for step in range(4)]
    assert seen == pytest.approx([0.01 * ramp * c for ramp, c in zip([0.5, 1, 1, 1], cosine)])
    seen.clear()
    train(cbat.preset("baseline", **SMALL), *data, dataclasses.replace(settings, lr_schedule="constant"), seed=0)
    assert seen == pytest.approx([0.005, 0.01, 0.01, 0.01])


def test_early_stopping_on_flat_validation_aupr(data):
    cfg = cbat.preset("baseline", **SMALL)
    settings = dataclasses.replace(FAST, epochs=6, patience=2, lr=1e-12, weight_decay=0.0, warmup_epochs=0)
    result = train(cfg, *data, settings, seed=0)
    assert len(result.history) == 3 and result.best_epoch == 1
    # patience counts only after the warm-up: epochs 4 and 5 are the two bad ones
    warm = train(cfg, *data, dataclasses.replace(settings, warmup_epochs=3), seed=0)
    assert len(warm.history) == 5 and warm.best_epoch == 1


def test_min_delta_stops_a_plateau_but_keeps_the_best_weights(data, monkeypatch):
    scripted = iter([0.5, 0.9, 0.905, 0.908, 0.95, 0.96])  # validation AUPR per epoch
    real = train_module.evaluate

    def scripted_validation(labels, probs, *args, **kwargs):
        out = real(labels, probs, *args, **kwargs)
        if not args:  # validation passes only the threshold; the test split also passes cell lines
            out["pooled"]["aupr"] = next(scripted, out["pooled"]["aupr"])
        return out

    monkeypatch.setattr(train_module, "evaluate", scripted_validation)
    cfg = cbat.preset("baseline", **SMALL)
    settings = dataclasses.replace(FAST, epochs=6, patience=2, warmup_epochs=0, min_delta=0.01)
    # 0.905 and 0.908 are new bests (kept) but within 0.01 of 0.9: two bad epochs, so it stops after epoch 4
    result = train(cfg, *data, settings, seed=0)
    assert len(result.history) == 4 and result.best_epoch == 4
    scripted = iter([0.5, 0.9, 0.905, 0.908, 0.95, 0.96])
    assert len(train(cfg, *data, dataclasses.replace(settings, min_delta=0.0), seed=0).history) == 6


def test_nan_stops_the_run_naming_step_and_block(data, monkeypatch):
    def poisoned(cfg, seed=None):
        model = cbat.build_model(cfg, seed=seed)
        with torch.no_grad():
            next(model.blocks[0].ffn.parameters()).fill_(float("inf"))
        return model

    monkeypatch.setattr(train_module, "build_model", poisoned)
    with pytest.raises(NumericalFault, match=r"non-finite loss at step 0 \(epoch 1\), .*blocks\.0"):
        train(cbat.preset("baseline", **SMALL), *data, FAST, seed=0)


def test_settings_round_trip_and_clear_errors():
    settings = TrainSettings(epochs=3, lr=0.01, max_steps=7)
    assert TrainSettings.from_yaml(settings.to_yaml()) == settings
    with pytest.raises(ValueError, match="'batch_size'"):
        TrainSettings(batch_size=0)
    with pytest.raises(ValueError, match=r"'lr_schedule' is 'linear'; expected one of \['constant', 'cosine'\]"):
        TrainSettings(lr_schedule="linear")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['epoch'\]"):
        TrainSettings.from_dict({"epoch": 3})


def test_a_run_on_permuted_labels_is_marked_not_learnt(data):
    ds, parts = data
    shuffled = TinyDataset()
    shuffled.labels = np.random.default_rng(0).permutation(ds.labels)
    cfg = cbat.preset("baseline", **SMALL)
    noise = train(cfg, shuffled, parts, dataclasses.replace(FAST, epochs=3), seed=0)
    assert not noise.learnt["learnt"] and noise.learnt["reason"]
    planted = train(cfg, ds, parts, dataclasses.replace(FAST, epochs=8, lr=1e-2), seed=0)  # 32 pairs: a brisk lr
    assert planted.learnt["learnt"], planted.learnt

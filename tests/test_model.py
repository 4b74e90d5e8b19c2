import pytest
import torch

import cbat


def _onehot(batch, length, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.one_hot(torch.randint(0, 4, (batch, length), generator=gen), 4).float().transpose(1, 2)


@pytest.mark.parametrize("name", cbat.PRESETS)
@pytest.mark.parametrize("e_len, p_len", [(120, 80), (3000, 2000)])
def test_every_preset_maps_pairs_to_one_logit_each(name, e_len, p_len):
    model = cbat.build_model(cbat.preset(name), seed=0)
    batch = 3 if e_len < 1000 else 1
    logits = model(_onehot(batch, e_len, 1), _onehot(batch, p_len, 2))
    assert logits.shape == (batch,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", cbat.PRESETS)
def test_bf16_autocast_runs_and_stays_close_to_float32(name):
    model = cbat.build_model(cbat.preset(name), seed=0)
    e, p = _onehot(4, 300, 1), _onehot(4, 200, 2)
    full = model(e, p)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(e, p)
        low.float().sum().backward()
    assert torch.isfinite(low).all()
    assert (low.float() - full).abs().max() < 0.1
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", cbat.PRESETS)
def test_no_module_is_called_twice_in_one_forward(name):
    model = cbat.build_model(cbat.preset(name), seed=0)
    calls = {}
    for module_name, module in model.named_modules():
        module.register_forward_pre_hook(lambda m, a, n=module_name: calls.__setitem__(n, calls.get(n, 0) + 1))
    with cbat.record(model, mode="summary"):  # hook points are called too when someone listens
        model(_onehot(2, 300, 1), _onehot(2, 200, 2))
    assert calls and max(calls.values()) == 1, {n: c for n, c in calls.items() if c > 1}


@pytest.mark.parametrize("name", cbat.PRESETS)
def test_models_move_between_dtypes_and_devices(name):
    model = cbat.build_model(cbat.preset(name), seed=0).to("cpu", torch.float64)
    assert model(_onehot(1, 120, 1).double(), _onehot(1, 80, 2).double()).dtype == torch.float64


def test_same_seed_same_weights_and_different_seed_different_weights():
    a, b, c = (cbat.build_model(cbat.preset("cbat_v2"), seed=s) for s in (5, 5, 6))
    e, p = _onehot(2, 300, 1), _onehot(2, 200, 2)
    assert torch.equal(a(e, p), b(e, p))
    assert not torch.equal(a(e, p), c(e, p))


@pytest.mark.parametrize("enhancer, promoter, message", [
    (torch.zeros(2, 300), torch.zeros(2, 4, 200), "enhancer: expected a float one-hot tensor"),
    (torch.zeros(2, 4, 300), torch.zeros(2, 5, 200), "promoter: expected a float one-hot tensor"),
    (torch.zeros(2, 4, 300), torch.zeros(3, 4, 200), "batch"),
    (torch.zeros(2, 4, 5), torch.zeros(2, 4, 200), "shorter than one token"),
])
def test_bad_inputs_get_a_clear_error(enhancer, promoter, message):
    with pytest.raises(ValueError, match=message):
        cbat.build_model(cbat.preset("baseline"))(enhancer, promoter)


def test_attention_entropy_is_reported_to_the_caller_that_asks():
    e, p = _onehot(2, 300, 1), _onehot(2, 200, 2)
    v2 = cbat.build_model(cbat.preset("cbat_v2"), seed=0).eval()  # eval: no dropout, same path twice
    aux = {}
    logits = v2(e, p, aux=aux)
    entropy = aux["attention_entropy"]
    assert entropy.requires_grad and 0 < entropy.item() <= 1
    assert torch.allclose(v2(e, p), logits, atol=1e-5)  # asking changes the path, not the result
    no_cross = cbat.build_model(cbat.preset("no_cross"), seed=0).train()
    aux = {}
    no_cross(e, p, aux=aux)
    assert aux == {}  # no adaptive attention ran
    # Nothing is left on the modules between forwards: the entropy goes only to the caller's dict.
    assert not any(torch.is_tensor(v) for m in v2.modules() for k, v in vars(m).items() if "entropy" in k)


def test_build_model_names_what_it_expected_for_a_preset_name():
    with pytest.raises(TypeError, match=r"expected a CBATConfig \(e.g. cbat.preset\('baseline'\)\), got str"):
        cbat.build_model("baseline")

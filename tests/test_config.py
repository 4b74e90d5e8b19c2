import dataclasses
import json

import numpy as np
import pytest

import cbat
from cbat.config import CBATConfig, ConfigError
from cbat.train import TrainSettings


@pytest.mark.parametrize("name", cbat.PRESETS)
def test_presets_round_trip_through_yaml_and_json(name):
    cfg = cbat.preset(name)
    assert cfg.name == name
    assert CBATConfig.from_yaml(cfg.to_yaml()) == cfg
    assert CBATConfig.from_json(cfg.to_json()) == cfg


def test_round_trip_through_files(tmp_path):
    cfg = dataclasses.replace(cbat.preset("cbat_v2"), window_size=None, name="v2_global")
    for suffix, text in ((".yaml", cfg.to_yaml()), (".json", cfg.to_json())):
        path = tmp_path / f"v2{suffix}"
        path.write_text(text)
        assert cbat.load_config(path) == cfg
    assert cbat.load_config("baseline") == cbat.preset("baseline")


def test_presets_follow_the_design_table():
    base, v1, v2, v3 = (cbat.preset(n) for n in ("baseline", "cbat_v1", "cbat_v2", "cbat_v3"))
    assert (base.local, base.sparsity, base.direction, base.n_anchors, base.gate, base.window_size) == \
        ("none", "softmax", "e_from_p", 0, "none", None)
    assert (v1.local, v1.sparsity, v1.direction, v1.gate) == ("reshape2d", "hard_topk", "e_from_p", "sigmoid")
    assert (v2.local, v2.ms_kernels, v2.direction, v2.anchor_mode, v2.gate) == \
        ("ms_conv", (7, 15, 31), "bidirectional", "concat", "temp_sigmoid")
    assert v2.window_size is not None and v2.pos_modulation and v2.sparsity in ("temp_softmax", "sparsemax")
    assert min(v2.sparsity_loss_weight, v2.immax_weight, v2.speculation_weight) > 0
    assert v3.anchor_mode == "gather_broadcast" and v3.window_size is None and not v3.pos_modulation
    assert cbat.preset("no_cross").interaction == "none"


def test_replace_keeps_validation():
    with pytest.raises(ConfigError, match="window_size"):
        dataclasses.replace(cbat.preset("baseline"), window_size=0)


def test_numpy_scalars_are_plain_values_and_still_checked():
    """np.int64(32) from a numpy grid read "field 'd_model' is np.int64(32); expected a positive integer", while
    np.float64 passed and was kept as a numpy type (and np.float32 lr in TrainSettings likewise)."""
    cfg = dataclasses.replace(cbat.preset("cbat_v2"), d_model=np.int64(32), dropout=np.float64(0.1),
                              ms_kernels=[np.int64(7), 15], rope=np.bool_(True))
    assert cfg == dataclasses.replace(cbat.preset("cbat_v2"), d_model=32, dropout=0.1, ms_kernels=(7, 15))
    assert type(cfg.d_model) is int and type(cfg.dropout) is float and type(cfg.rope) is bool
    assert all(type(k) is int for k in cfg.ms_kernels)
    settings = TrainSettings(epochs=np.int32(3), lr=np.float64(1e-3))
    assert type(settings.epochs) is int and type(settings.lr) is float and settings.lr == 1e-3
    with pytest.raises(ConfigError, match="field 'd_model' is -2; expected a positive integer"):
        dataclasses.replace(cbat.preset("baseline"), d_model=np.int64(-2))
    with pytest.raises(ValueError, match="training setting 'epochs' is 2.5; expected a positive integer"):
        TrainSettings(epochs=np.float64(2.5))


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"my.yaml: unknown key\(s\) \['windw_size'\]"):
        CBATConfig.from_yaml("windw_size: 8\n", source="my.yaml")


@pytest.mark.parametrize("change, field", [
    ({"sparsity": "topk"}, "sparsity"),
    ({"local": "conv2d"}, "local"),
    ({"gate": "tanh"}, "gate"),
    ({"d_model": 30, "n_heads": 4}, "d_model"),
    ({"block_recipe": ["cross_attn", "cross_attn"]}, "block_recipe"),
    ({"block_recipe": ["self_attn"]}, "block_recipe"),
    ({"n_anchors": 4, "anchor_mode": "concat"}, "joint_attn"),
    ({"temperature": 0.0}, "temperature"),
    ({"ms_kernels": [7, 16]}, "ms_kernels"),
    ({"sparsity_target": 1.5}, "sparsity_target"),
    # values the model would only fail on later (torch's dropout check) or turn into NaN logits
    ({"dropout": 1.5}, "'dropout' is 1.5; expected a probability"),
    ({"rope_base": 0.0}, "'rope_base' is 0.0; expected > 0"),
    ({"temperature": float("nan")}, "'temperature' is nan; expected a finite number"),
    ({"gate_residual": float("nan")}, "'gate_residual'"),
    ({"d_model": True}, "'d_model' is True; expected a positive integer"),
    # types YAML lets through that used to build something else or fail with a TypeError
    ({"rope": "false"}, "'rope' is 'false'; expected true or false"),
    ({"pos_modulation": "false"}, "'pos_modulation' is 'false'; expected true or false"),
    ({"window_size": True}, "'window_size' is True; expected None"),
    ({"ms_kernels": [True]}, "'ms_kernels' is \\(True,\\); expected a list of odd"),
    ({"ms_kernels": "7"}, "'ms_kernels' is '7'; expected a list of odd"),
])
def test_bad_configs_fail_with_the_field_named(change, field):
    data = {**cbat.preset("baseline").to_dict(), **change}
    with pytest.raises(ConfigError, match=field):
        CBATConfig.from_dict(data)


@pytest.mark.parametrize("name, text", [("bad.yaml", "d_model: [32\n"), ("bad.json", '{"d_model": 32,')])
def test_a_file_that_does_not_parse_is_one_config_error_naming_it(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        cbat.load_config(path)
    assert str(info.value).startswith(f"{path}: not valid ") and "\n" not in str(info.value)


def test_no_cross_control_rejects_attention():
    data = {**cbat.preset("no_cross").to_dict(), "block_recipe": ["cross_attn", "ffn"]}
    with pytest.raises(ConfigError, match="no_cross"):
        CBATConfig.from_dict(data)


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        cbat.preset("cbat_v9")
    with pytest.raises(ConfigError, match="not found"):
        CBATConfig.from_file(tmp_path / "nope.yaml")
    bad = tmp_path / "cfg.txt"
    bad.write_text(json.dumps({}))
    with pytest.raises(ConfigError, match="expected a .yaml"):
        CBATConfig.from_file(bad)


def test_yaml_reads_exponent_floats_and_tab_indented_json():
    """PyYAML read `lr: 1e-3` as the string "1e-3" (YAML 1.1 floats need a dot), and refused JSON indented with tabs."""
    from cbat.config import parse_yaml

    assert parse_yaml("lr: 1e-3\nrate: -2.5E+2\nsteps: 1_000\nname: 1.2.3\nquoted: '1e-3'", "s") == \
        {"lr": 0.001, "rate": -250.0, "steps": 1000, "name": "1.2.3", "quoted": "1e-3"}
    assert parse_yaml('{\n\t"lr": 1e-3\n}', "s") == {"lr": 0.001}

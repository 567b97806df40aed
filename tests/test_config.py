import pytest

from lfviz import AttentionConfig


@pytest.mark.parametrize("kwargs, fix", [
    (dict(window=7), "even"),
    (dict(window=0), "positive"),
    (dict(window=-4), "positive"),
    (dict(window=[8, 5]), "even"),
    (dict(window=[]), "one even window per layer"),
    (dict(window=8.0), "int"),
    (dict(dilation=0), ">= 1"),
    (dict(dilation=-2), ">= 1"),
    (dict(dilation=[1, [1, 0]]), ">= 1"),
    (dict(dilation=[1, []]), "one int per head"),
    (dict(global_tokens=(3, 3)), "twice"),
    (dict(global_tokens=(-1,)), "negative"),
    (dict(global_tokens=(True,)), "ints"),
])
def test_bad_values_say_what_to_fix(kwargs, fix):
    with pytest.raises(ValueError, match=fix):
        AttentionConfig(**kwargs)


def test_list_lengths_checked_against_the_model():
    with pytest.raises(ValueError, match="3 entries but the model has 2 layers"):
        AttentionConfig(window=[8, 8, 8]).resolve(2, 4)
    with pytest.raises(ValueError, match="1 entries but the model has 2 layers"):
        AttentionConfig(dilation=[2]).resolve(2, 4)
    with pytest.raises(ValueError, match="layer 1 has 3 entries but the model has 4 heads"):
        AttentionConfig(dilation=[1, [1, 2, 3]]).resolve(2, 4)


def test_global_range_checked_against_the_input():
    cfg = AttentionConfig(global_tokens=(5, 0))
    assert cfg.check_globals(6) == (0, 5)
    with pytest.raises(ValueError, match="out of range: the input has 5 tokens"):
        cfg.check_globals(5)


def test_resolve_per_layer_and_per_head():
    specs = AttentionConfig(window=[4, 6], dilation=[2, [1, 2, 3, 1]]).resolve(2, 4)
    assert [s.window for s in specs] == [4, 6]
    assert [s.one_sided for s in specs] == [2, 3]
    assert specs[0].dilation == (2, 2, 2, 2) and specs[1].dilation == (1, 2, 3, 1)


def test_lists_become_tuples_and_round_trip():
    cfg = AttentionConfig(window=[4, 6], dilation=[1, [1, 2]], global_tokens=[0, 3])
    assert cfg.window == (4, 6) and cfg.dilation == (1, (1, 2)) and cfg.global_tokens == (0, 3)
    assert AttentionConfig.from_dict(cfg.to_dict()) == cfg
    assert hash(cfg) == hash(AttentionConfig.from_dict(cfg.to_dict()))
    assert cfg.uses_dilation and not AttentionConfig().uses_dilation


def test_per_layer_controls_become_configuration_text():
    """The lab's per-layer sliders (window, dilation on chosen heads) as the sidebar's fields, collapsed where
    layers or heads agree, and accepted back by the parser."""
    from lfviz.textspec import config_from_text, layer_settings_text

    same = layer_settings_text([512, 512], [1, 1], [[0, 1, 2], [0, 1, 2]], 3)
    assert same == {"window": "512", "dilation": "1"}
    every_head = layer_settings_text([64, 128], [2, 2], [[0, 1, 2], [0, 1, 2]], 3)
    assert every_head == {"window": "64,128", "dilation": "2"}
    per_layer = layer_settings_text([64, 64], [1, 3], [[0, 1, 2], [0, 1, 2]], 3)
    assert per_layer["dilation"] == "1,3"
    per_head = layer_settings_text([64, 64], [1, 2], [[], [1]], 3)
    assert per_head["dilation"] == "1;1,2,1"
    cfg = config_from_text(per_head["window"], per_head["dilation"], "")
    assert cfg.resolve(2, 3)[1].dilation == (1, 2, 1)
    with pytest.raises(ValueError, match="one of each per layer"):
        layer_settings_text([64], [1, 2], [[], []], 3)

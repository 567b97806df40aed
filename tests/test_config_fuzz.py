"""Property-based: whatever text arrives (sidebar, URL, CLI), configuration parsing either gives a valid
AttentionConfig or a ValueError with a message, never another exception, and valid values round-trip."""
from hypothesis import given, settings, strategies as st

from lfviz import AttentionConfig
from lfviz.textspec import config_from_text, config_to_text

junk = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
numberish = st.lists(st.integers(-5, 5000).map(str) | st.sampled_from(["", " ", ";", ",", "x", "1e3", "0x10"]),
                     max_size=12).map(lambda parts: ",".join(parts))


@settings(max_examples=300, deadline=None)
@given(window=junk | numberish, dilation=junk | numberish, globals_=junk | numberish)
def test_any_text_gives_a_config_or_a_value_error(window, dilation, globals_):
    try:
        cfg = config_from_text(window, dilation, globals_)
    except ValueError as e:
        assert str(e)  # says what to fix
        return
    assert isinstance(cfg, AttentionConfig)
    again = config_to_text(cfg)
    assert config_from_text(again["window"], again["dilation"], again["global"]) == cfg


@settings(max_examples=200, deadline=None)
@given(window=st.lists(st.integers(1, 64).map(lambda x: 2 * x), min_size=1, max_size=6),
       dilation=st.lists(st.integers(1, 8) | st.lists(st.integers(1, 8), min_size=4, max_size=4), min_size=6,
                         max_size=6),
       globals_=st.lists(st.integers(0, 500), unique=True, max_size=10))
def test_valid_configs_resolve_and_round_trip(window, dilation, globals_):
    cfg = AttentionConfig(window=window if len(window) > 1 else window[0], dilation=dilation, global_tokens=globals_)
    if isinstance(cfg.window, tuple) and len(cfg.window) != 6:
        return
    specs = cfg.resolve(6, 4)
    assert len(specs) == 6 and all(len(s.dilation) == 4 and s.window % 2 == 0 for s in specs)
    again = config_to_text(cfg)
    assert config_from_text(again["window"], again["dilation"], again["global"]) == cfg

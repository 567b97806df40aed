"""Whatever users paste: the engine answers with a result or a ValueError naming the fix, never a traceback."""
import pytest

import lfviz

ODD = {
    "only special characters": "!!! ??? ... ### $$$ %%% &&& *** ((( )))",
    "emoji": "I love 🤖🔥 and ❤️ longformers 👩‍👩‍👧",
    "right-to-left": "مرحبا بالعالم שלום עולם hello",
    "zero-width inside words": "a\u200bb\u200cc\u200dd\ufeffe",
    "combining marks": "e\u0301 a\u0308 n\u0303 " * 5,
    "control characters": "tab\tnew\nline\r\x00null",
    "html and script": '<script>alert(1)</script> "><img src=x onerror=alert(1)> </script>',
}


@pytest.mark.parametrize("name", ODD)
def test_odd_text_runs(embedded, name):
    res = embedded.run(ODD[name], config=lfviz.AttentionConfig(window=8, global_tokens=(0,)))
    assert res.n >= 3 and len(res.tokens) == res.n
    assert res.capture.band(0).shape == (12, res.n, 2 * min(4, res.n - 1) + 1)  # never wider than the text


@pytest.mark.parametrize("text", ["", "   \n\t", "\u200b\u200b\u200b", "\ufeff \u200d"])
def test_text_without_words_is_refused(embedded, text):
    with pytest.raises(ValueError, match="paste or upload a document"):
        embedded.run(text)


def test_a_one_megabyte_paste_is_truncated_with_a_warning(embedded):
    with pytest.warns(UserWarning, match="only the first 4,096 tokens"):
        res = embedded.run("word " * 200_000, config=lfviz.AttentionConfig(window=64), capture=False)
    assert res.n == 4096 and "200,002 tokens" in res.warnings[0]


@pytest.mark.parametrize("config", [
    lfviz.AttentionConfig(window=8, dilation=10 ** 6),  # dilation far beyond the text
    lfviz.AttentionConfig(window=100_000),  # window far beyond the text
    lfviz.AttentionConfig(window=16, global_tokens=tuple(range(40))),  # every token global
    lfviz.AttentionConfig(window=2, global_tokens=()),  # no global token, smallest window
])
def test_extreme_but_valid_configurations(embedded, config):
    res = embedded.run("word " * 38, config=config)  # 40 tokens
    dense = res.capture.weights(5).dense()
    assert abs(float(dense.sum(-1).mean()) - 1.0) < 1e-3

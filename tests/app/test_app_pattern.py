"""AppTest of the Pattern page, driven through its keyed widgets and the sidebar's session keys.

The configuration lives in plain session keys (the sidebar widgets write there); the tests set and read those keys
directly."""
import json
import re

import numpy as np
from apptools import open_page, values

from lfviz.config import AttentionConfig
from lfviz.attention.mask import dense_mask

SENTENCE = "The contract ends on termination. The budget was approved by the board. "


def page(document: str):
    return open_page("pattern", document)


def charts(at) -> dict[str, dict]:
    """Plotly specs by the first word(s) of their title."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[spec["layout"]["title"]["text"].split("<br>")[0].split(":")[0]] = spec
    return out


def z_of(spec) -> np.ndarray:
    return values(spec["data"][0]["z"])


def n_tokens(at) -> int:
    return int(re.match(r"([\d,]+) tokens", at.subheader[0].value).group(1).replace(",", ""))


def longformer_pairs(at) -> list[int]:
    table = at.dataframe[0].value
    return table[table["pattern"] == "Longformer"]["pairs per head"].tolist()


def test_short_document_exact_pattern_costs_and_no_bigbird():
    at = page(SENTENCE * 12)
    n = n_tokens(at)
    assert n < 256
    figs = charts(at)
    assert {"Longformer", "Full attention"} <= set(figs) and "BigBird block-sparse" not in figs
    assert any("No BigBird pattern" in i.value and "704" in i.value for i in at.info)
    lf = figs["Longformer"]
    assert lf["data"][0]["x"][0] == "0: [CLS]"  # one cell per token, labelled with it
    assert np.array_equal(z_of(lf), dense_mask(AttentionConfig(window=512).resolve(1, 1)[0], n, (0,))[0].numpy())
    assert (z_of(figs["Full attention"]) == 1).all()
    assert "BigBird" not in set(at.dataframe[0].value["pattern"])
    wide = longformer_pairs(at)

    at.session_state["window"] = "16"
    at.session_state["dilation"] = "1,2,1,1,1,1"
    at.session_state["layer"] = 1
    at.run()
    assert not at.exception
    narrow = longformer_pairs(at)
    assert len(narrow) == 6 and all(a < b for a, b in zip(narrow, wide))
    z = z_of(charts(at)["Longformer"])  # layer 1, dilation 2: keys 2 apart, the global column 0
    assert np.flatnonzero(z[50]).tolist() == [0, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62, 64, 66]
    assert (z[0] == 1).all() and (z[:, 0] == 1).all()  # the global token's row and column


def bars_at(trace, layer):
    """Runs of positions drawn for one layer (bars from a - 0.5 to b + 0.5, None between bars)."""
    xs, ys = values(trace["x"]), values(trace["y"])
    pts = [(x, y) for x, y in zip(xs, ys) if x is not None and round(x) == layer]
    return [(round(pts[i][1] + 0.5), round(pts[i + 1][1] - 0.5)) for i in range(0, len(pts), 2)]


def test_long_document_bigbird_zoom_and_reach():
    at = page(SENTENCE * 60)
    n = n_tokens(at)
    assert 704 <= n <= 1024
    figs = charts(at)
    assert "BigBird block-sparse" in figs and not at.info
    size = -(-n // 256)  # binned into at most 256 cells of `size` tokens
    labels = figs["Longformer"]["data"][0]["x"]
    assert size > 1 and len(labels) == -(-n // size) and labels[1] == f"{size}–{2 * size - 1}"
    reach = figs["Receptive field"]
    current = next(t for t in reach["data"] if t["name"] == "current configuration")
    assert bars_at(current, 1) == [(0, 0), (n // 2 - 256, n // 2 + 256)]  # the global token, a gap, the band
    assert bars_at(current, 2) == [(0, n - 1)]  # global token 0: everything reached after 2 layers

    at.slider(key="pattern_zoom").set_value((100, 164)).run()
    lf = charts(at)["Longformer"]
    assert len(lf["data"][0]["x"]) == 64 and lf["data"][0]["x"][0].startswith("100: ")

    at.select_slider(key="pattern_block").set_value(256).run()
    assert not at.exception and "BigBird block-sparse" not in charts(at)
    assert any("2,816 tokens with block size 256" in i.value for i in at.info)

    at.session_state["global"] = ""
    at.session_state["window"] = "16"
    at.number_input(key="pattern_source").set_value(10).run()
    reach = charts(at)["Receptive field"]
    assert [t["name"] for t in reach["data"] if t["mode"] == "lines"] == ["current configuration", "full attention"]
    assert bars_at(reach["data"][0], 2) == [(0, 26)]  # 8 neighbours per side per layer, from token 10


def test_run_the_three_patterns_on_the_model():
    from apptools import chart, open_page

    doc = "The board approved the budget for the new bridge. The mayor objected to the cost. " * 20
    at = open_page("pattern", doc, window="32")
    at.button(key="pr_run").click().run()
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "keys per query" in list(d.value.get("measure", [])))
    assert list(table.columns) == ["measure", "Longformer", "BigBird", "Reformer LSH"]  # one column per pattern
    distance = table.set_index("measure").loc["distance from full attention"]
    assert all(float(v) > 0 for v in distance)
    for name in ("Longformer", "BigBird", "Reformer LSH"):
        assert chart(at, f"{name}: layer 0, head 0")
    assert any("buckets hold tokens" in c.value for c in at.caption)
    assert any("training mode" in c.value for c in at.caption)  # HF's eval-mode BigBird has no random blocks
    at.session_state["window"] = "64"
    at.run()
    assert any("run the patterns again" in i.value for i in at.info)

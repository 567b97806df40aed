"""Per-head statistics from the split layout, checked against the same numbers computed on dense matrices
rebuilt with `weights_to_dense` (the reference), over windows, dilations, global sets and short lengths."""
import math

import pytest
import torch

from lfviz.analysis import headstats
from lfviz.model.capture import Capture
from lfviz.analysis.compare import received as received_by_columns
from lfviz.config import LayerSpec
from lfviz.attention.layout import weights_from_dense, weights_to_dense
from lfviz.attention.mask import dense_mask

CASES = [  # (n, window, dilation per head, global tokens)
    (23, 6, (1, 2, 3), (0, 7)),
    (40, 8, (1, 1, 4), ()),
    (17, 4, (2, 1, 1), (16,)),
    (9, 64, (1, 3, 1), (0, 4, 8)),  # window wider than the document
    (31, 2, (5, 1, 2), (3, 30)),
]


def random_weights(n, window, dilation, global_tokens, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    H = len(dilation)
    mask = dense_mask(LayerSpec(window, dilation), n, global_tokens)  # (H, n, n)
    probs = torch.randn(H, n, n).masked_fill(~mask, -1e9).softmax(-1) * mask
    w = weights_from_dense(probs, window, dilation, global_tokens)
    return w.to(dtype=dtype)


def dense_reference(w):
    """The three metrics per head from the dense (H, n, n) matrix: per-row values, mean over rows."""
    p = weights_to_dense(w).float()
    H, n, _ = p.shape
    i = torch.arange(n)
    dist = (i.view(-1, 1) - i.view(1, -1)).abs().float()
    mass = p.sum(-1)
    q = p / mass.unsqueeze(-1)
    g = list(w.global_tokens)
    return {"mean_distance": (q * dist).sum(-1).mean(-1),
            "entropy": -torch.special.xlogy(q, q).sum(-1).mean(-1),
            "global_share": q[:, :, g].sum(-1).mean(-1) if g else torch.zeros(H)}


@pytest.mark.parametrize("n,window,dilation,global_tokens", CASES)
def test_head_stats_match_the_dense_reference(n, window, dilation, global_tokens):
    w = random_weights(n, window, dilation, global_tokens)
    got, want = headstats.head_stats(w), dense_reference(w)
    for k in headstats.METRICS:
        assert got[k].shape == (len(dilation),)
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n,window,dilation,global_tokens", CASES)
def test_received_matches_the_dense_column_sums(n, window, dilation, global_tokens):
    w = random_weights(n, window, dilation, global_tokens, seed=1)
    want = weights_to_dense(w).sum(1)  # (H, n)
    got = headstats.received(w)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, received_by_columns(w), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.sum(-1), torch.full((len(dilation),), float(n)), atol=1e-4, rtol=1e-5)


def test_fp16_captures_are_converted_before_the_math():
    w32 = random_weights(23, 6, (1, 2, 3), (0, 7), seed=2)
    w16 = w32.to(dtype=torch.float16)
    for k, v in headstats.head_stats(w16).items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, headstats.head_stats(w32)[k], atol=2e-3, rtol=2e-3)
    assert headstats.received(w16).dtype == torch.float32


def test_known_values_on_a_hand_built_pattern():
    # window 2, no global: token i attends i-1, i, i+1 equally where they exist
    n = 5
    probs = torch.zeros(1, n, n)
    for i in range(n):
        keys = [j for j in (i - 1, i, i + 1) if 0 <= j < n]
        probs[0, i, keys] = 1 / len(keys)
    w = weights_from_dense(probs, 2, (1,), ())
    s = headstats.head_stats(w)
    # distances per row: 1/2, 2/3, 2/3, 2/3, 1/2; entropies: log 2, log 3 x 3, log 2
    assert s["mean_distance"].item() == pytest.approx((0.5 * 2 + 3 * 2 / 3) / 5, abs=1e-6)
    assert s["entropy"].item() == pytest.approx((2 * math.log(2) + 3 * math.log(3)) / 5, abs=1e-6)
    assert s["global_share"].item() == 0.0
    assert headstats.received(w)[0].tolist() == pytest.approx([0.5 + 1 / 3, 0.5 + 2 / 3, 1, 2 / 3 + 0.5, 1 / 3 + 0.5])


def test_empty_rows_are_skipped():
    w = random_weights(12, 4, (1, 2), (0,), seed=3)
    w.band[:, 10:] = 0  # two padding rows
    w.to_global[:, 10:] = 0
    p = weights_to_dense(w)[:, :10]
    i = torch.arange(12)
    want = (p * (i[:10].view(-1, 1) - i.view(1, -1)).abs()).sum(-1) / p.sum(-1)
    torch.testing.assert_close(headstats.head_stats(w)["mean_distance"], want.mean(-1), atol=1e-5, rtol=1e-5)
    assert torch.isnan(headstats.row_stats(w, 0)["entropy"][10:]).all()


@pytest.mark.parametrize("rows,cols", [(slice(0, 23), slice(0, 23)), (slice(3, 15), slice(5, 20)),
                                       (slice(10, 14), slice(0, 4)), (slice(20, 23), slice(0, 23))])
def test_dense_span_equals_weights_to_dense(rows, cols):
    w = random_weights(23, 6, (1, 2, 3), (0, 7, 21), seed=4)
    for head in range(3):
        torch.testing.assert_close(headstats.dense_span(w, head, rows, cols), weights_to_dense(w, rows, cols)[head])


def test_stats_table_has_one_row_per_layer_and_head():
    layers = {0: random_weights(20, 4, (1, 2), (0,), seed=5), 2: random_weights(20, 8, (1, 1), (0,), seed=6)}
    table = headstats.stats_table(Capture(layers))
    assert list(table.columns) == ["layer", "head", "window", "dilation", *headstats.METRICS]
    assert table[["layer", "head"]].values.tolist() == [[0, 0], [0, 1], [2, 0], [2, 1]]
    assert table["window"].tolist() == [4, 4, 8, 8] and table["dilation"].tolist() == [1, 2, 1, 1]
    want = dense_reference(layers[2])["entropy"]
    assert table[table.layer == 2]["entropy"].tolist() == pytest.approx(want.tolist(), abs=1e-4)


def test_global_summary():
    w = random_weights(15, 4, (1, 1), (0, 9), seed=7)
    tokens = [f"t{i}" for i in range(15)]
    table = headstats.global_summary(w, 1, tokens, top=3)
    assert table["position"].tolist() == [0, 9] and table["token"].tolist() == ["t0", "t9"]
    dense = weights_to_dense(w)[1]
    assert table["received (sum)"].tolist() == pytest.approx([float(dense[1:, 0].sum() - dense[9, 0]),
                                                              float(dense[:, 9].sum() - dense[0, 9] - dense[9, 9])],
                                                             abs=1e-4)
    top = int(dense[9].argmax())
    assert table["attends most to"][1].startswith(f"{top} t{top} (")

import torch

from lfviz.config import LayerSpec
from lfviz.attention.mask import dense_mask


def test_plain_band():
    m = dense_mask(LayerSpec(4, (1,)), 6)[0]
    expected = torch.tensor([[abs(i - j) <= 2 for j in range(6)] for i in range(6)])
    assert torch.equal(m, expected)


def test_dilation_keeps_count_and_spreads_span():
    m = dense_mask(LayerSpec(4, (3,)), 20)[0]
    assert m[10].nonzero().flatten().tolist() == [4, 7, 10, 13, 16]  # i + k*d, |k| <= 2


def test_global_rows_and_columns():
    m = dense_mask(LayerSpec(2, (1,)), 8, global_tokens=(0, 7))[0]
    assert m[0].all() and m[7].all()  # global rows see everything
    assert m[:, 0].all() and m[:, 7].all()  # everyone sees the globals
    assert m[3].nonzero().flatten().tolist() == [0, 2, 3, 4, 7]  # band + each global once


def test_padding_attends_nothing_and_is_never_attended():
    valid = torch.tensor([True] * 5 + [False] * 3)
    m = dense_mask(LayerSpec(4, (1,)), 8, global_tokens=(1,), valid=valid)[0]
    assert not m[5:].any() and not m[:, 5:].any()


def test_per_head_dilation():
    m = dense_mask(LayerSpec(2, (1, 2)), 10)
    assert m[0, 5].nonzero().flatten().tolist() == [4, 5, 6]
    assert m[1, 5].nonzero().flatten().tolist() == [3, 5, 7]

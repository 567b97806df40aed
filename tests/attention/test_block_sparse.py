"""BigBird's block-sparse kernel (`lfviz.attention.block_sparse`) against its reference, the generic sparse path
given the predicate's counts (`sparse.pattern_attention`), on several lengths (padded or not), blocks, random-block
counts, head counts and chunkings, causal or not, with the picture it pools; against Hugging Face's BigBird output
given HF's own plan (training mode, and eval mode's all-zero plan counted as HF counts it); and models run under it
give the same states as under the generic path."""
import numpy as np
import pytest
import torch

from lfviz.attention import bigbird, block_sparse, sparse
from lfviz.attention.block_sparse import block_sparse_attention, key_slots
from lfviz.attention.sparse import BigBirdPattern, attention_pattern, pattern_attention

from test_bigbird import BLOCK, N, R, hf_layer0, hf_model, hf_plan

CASES = [  # heads, length, head dim, block, random blocks
    (2, 45, 8, 4, 2),  # padded: 12 blocks, the last one token
    (3, 300, 16, 20, 2),  # a multiple of the block
    (2, 301, 16, 20, 3),
    (1, 97, 8, 8, 1),
    (2, 70, 4, 10, 0),  # no random blocks
    (4, 35, 8, 7, 0),  # 5 blocks: blocks 1 and nb - 2 are neighbours of both global blocks
]


def qkv(H, n, hd, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(H, n, hd, generator=g) * 2 for _ in range(3))


@pytest.mark.parametrize("H, n, hd, block, r", CASES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk_bytes", [None, 1])  # 1: a query block per chunk
def test_the_kernel_equals_the_generic_path(H, n, hd, block, r, causal, chunk_bytes):
    q, k, v = qkv(H, n, hd)
    pattern = BigBirdPattern(block=block, num_random=r, seed=3)
    plan = pattern.plan(1, H, pattern.num_blocks(n))
    got = block_sparse_attention(q, k, v, plan, block, 0.3, causal, chunk_bytes=chunk_bytes)
    want = pattern_attention(q, k, v, pattern.rows(1, k), 0.3, causal)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("H, n, hd, block, r", CASES[:4])
@pytest.mark.parametrize("causal", [False, True])
def test_the_pictured_layer_equals_the_generic_paths_picture(H, n, hd, block, r, causal):
    """run_active on the pictured layer: the same output, picture (mean attention per cell) and keys per query from
    the kernel as from the generic path (and the picture's rows sum to 1)."""
    q, k, v = qkv(H, n, hd, seed=1)
    found = {}
    for kernel in ("generic", "block-sparse"):
        with attention_pattern(BigBirdPattern(block=block, num_random=r, seed=2, kernel=kernel), 0, cells=9) as f:
            found[kernel] = sparse.run_active(0, q, k, v, 0.25, causal), f
    (want, ref), (got, mine) = found["generic"], found["block-sparse"]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(mine["picture"], ref["picture"], atol=1e-5, rtol=0)
    torch.testing.assert_close(mine["picture"].sum(-1), torch.ones(H, 9), atol=1e-5, rtol=0)
    assert mine["keys_per_query"] == pytest.approx(ref["keys_per_query"], rel=1e-9)


def test_a_block_drawn_twice_counts_once_unless_repeats():
    """The predicate is a set: a plan naming a block twice (or a window or global block) attends it once;
    repeats=True counts a repeated random block again (Hugging Face's eval-mode softmax)."""
    H, n, hd, block, nb = 2, 64, 8, 4, 16
    q, k, v = qkv(H, n, hd, seed=2)
    plan = BigBirdPattern(block=block, num_random=3).plan(0, H, nb)
    plan[0, 3] = [9, 9, 0]  # query block 4: block 9 twice, global block 0 again
    plan[1, 5] = [5, 7, 2]  # query block 6: its own window twice
    counts = bigbird.block_mask(nb, plan).to(torch.int32)
    of = torch.arange(n) // block
    rows = lambda s, e: counts[:, of[s:e]][:, :, of]
    torch.testing.assert_close(block_sparse_attention(q, k, v, plan, block, 0.3),
                               pattern_attention(q, k, v, rows, 0.3), atol=1e-5, rtol=0)
    slots, keep = key_slots(nb, plan, repeats=True)
    assert keep[0, 3, 5:].all() and not keep[0, 0, 2]  # random slots count; block 1's window block 0 does not
    counts[0, 4, 9] += 1
    counts[0, 4, 0] += 1
    counts[1, 6, [5, 7]] += 1
    torch.testing.assert_close(block_sparse_attention(q, k, v, plan, block, 0.3, repeats=True),
                               pattern_attention(q, k, v, rows, 0.3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("train", [True, False])
def test_with_hugging_faces_plan_the_kernel_gives_hugging_faces_output(train):
    """HF's BigBird layer 0 (block 4, 2 random blocks) on the same q, k, v and plan: the kernel's output is HF's
    context. Eval mode: HF's all-zero plan, block 0 counted once more per random slot (repeats=True)."""
    model = hf_model(train)
    q, k, v, context = hf_layer0(model)
    plan = hf_plan(model, 0)
    assert plan.shape == (2, N // BLOCK - 2, R) and plan.any() == train
    got = block_sparse_attention(q, k, v, plan, BLOCK, 16 ** -0.5, repeats=not train)
    torch.testing.assert_close(got.transpose(0, 1).reshape(1, N, 32), context, atol=1e-5, rtol=0)


def test_a_plan_that_does_not_fit_says_so():
    q, k, v = qkv(2, 40, 4)
    with pytest.raises(ValueError, match=r"it needs \(2, 8, r\)"):
        block_sparse_attention(q, k, v, np.zeros((2, 7, 1), dtype=np.int64), 4, 0.5)
    with pytest.raises(ValueError, match="kernel must be one of block-sparse, generic"):
        BigBirdPattern(kernel="dense")


def test_keys_per_query_counts_a_short_last_block():
    blocks = bigbird.block_mask(12, np.zeros((1, 10, 0), dtype=np.int64))
    of = torch.arange(45) // 4
    want = blocks[:, of][:, :, of].sum().item() / 45
    assert block_sparse.keys_per_query(blocks, 45, 4) == pytest.approx(want)


def test_models_give_the_same_states_on_both_kernels(embedded, tiny_causal):
    text = "The tenant pays rent monthly. The landlord repairs the roof and the gutters. " * 10
    for runner in (embedded, tiny_causal):
        states = []
        for kernel in ("generic", "block-sparse"):
            with attention_pattern(BigBirdPattern(block=16, num_random=2, kernel=kernel), picture_layer=1) as found:
                states.append((runner.run(text, capture=False).last_hidden_state, found["picture"]))
        torch.testing.assert_close(states[1][0], states[0][0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(states[1][1], states[0][1], atol=1e-5, rtol=0)

"""BigBird's ITC pattern (`lfviz.attention.bigbird`) against Hugging Face's BigBirdModel block-sparse attention:
given HF's own random plan (training mode, where it draws one) the attended pairs are exactly the pairs where HF's
probabilities are non-zero; in eval mode HF has no random blocks at all (its plan is all zeros), which the
predicate with an all-zero plan reproduces. lfviz's generic sparse path given HF's q, k, v and plan reproduces
HF's output in both modes (eval: block 0 counted once more per random slot). lfviz's own seeded plan follows HF's
rules."""
import numpy as np
import pytest
import torch
from transformers import BigBirdConfig, BigBirdModel

from lfviz.attention import bigbird

BLOCK, R, N = 4, 2, 64  # 16 blocks: block-sparse needs more than (5 + 2r) blocks


def hf_model(train: bool) -> BigBirdModel:
    torch.manual_seed(0)
    cfg = BigBirdConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128, attention_type="block_sparse",
                        block_size=BLOCK, num_random_blocks=R, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    model = BigBirdModel(cfg, add_pooling_layer=False)
    return model.train() if train else model.eval()


def hf_plan(model: BigBirdModel, layer: int) -> np.ndarray:
    """The random plan HF's layer draws in its forward (it seeds numpy with the layer's seed, then plans)."""
    attn = model.encoder.layer[layer].attention.self
    np.random.seed(attn.seed)
    lengths, counts = attn._get_rand_attn_plan(N, BLOCK, R)
    plan = attn._bigbird_block_rand_mask_with_head(N, N, BLOCK, BLOCK, 2, lengths, counts)
    return np.stack(plan)  # (H, nb - 2, r)


def hf_layer0(model: BigBirdModel):
    """HF's layer 0 on N random tokens: its q, k, v (H, n, d) and the context it returned (1, n, 32)."""
    seen = []
    hook = lambda m, args, kwargs, out: seen.append((m, kwargs.get("hidden_states", args[0] if args else None), out[0]))
    handle = model.encoder.layer[0].attention.self.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(torch.randint(5, 100, (1, N), generator=torch.Generator().manual_seed(1)))
    finally:
        handle.remove()
    module, hidden, context = seen[0]
    heads = lambda x: x[0].view(N, 2, 16).transpose(0, 1)  # (H, n, d)
    return heads(module.query(hidden)), heads(module.key(hidden)), heads(module.value(hidden)), context


@pytest.mark.parametrize("train", [True, False])
def test_the_pattern_is_where_hugging_faces_probabilities_are_nonzero(train):
    model = hf_model(train)
    ids = torch.randint(5, 100, (1, N), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(ids, output_attentions=True)
    for layer in range(2):
        plan = hf_plan(model, layer)
        if not train:
            assert not plan.any()  # eval mode: no random blocks (block 0 is global anyway)
        probs = out.attentions[layer][0]  # (H, n, n)
        assert torch.equal(probs > 0, bigbird.token_mask(N, BLOCK, plan))
        if train:
            torch.testing.assert_close(probs.sum(-1), torch.ones(2, N), atol=1e-5, rtol=0)
        else:  # HF's softmax counted block 0 once more per random slot: the distinct keys miss r x its weight
            missing = 1 - probs.sum(-1)
            torch.testing.assert_close(missing[:, BLOCK:-BLOCK], R * probs[:, BLOCK:-BLOCK, :BLOCK].sum(-1),
                                       atol=1e-5, rtol=0)
    if train:  # the random blocks differ between the two layers' plans: the check covered them
        assert not np.array_equal(hf_plan(model, 0), hf_plan(model, 1))


def test_lfvizs_plan_follows_the_rules_and_its_seed():
    nb = 16
    plan = bigbird.random_plan(nb, 3, heads=4, seed=7)
    assert plan.shape == (4, nb - 2, 3) and np.array_equal(plan, bigbird.random_plan(nb, 3, heads=4, seed=7))
    assert not np.array_equal(plan, bigbird.random_plan(nb, 3, heads=4, seed=8))
    for h in range(4):
        for qb in range(1, nb - 1):
            drawn = set(plan[h, qb - 1].tolist())
            assert len(drawn) == 3 and not drawn & {0, nb - 1, qb - 1, qb, qb + 1}
    assert nb - 2 not in plan[:, 0] and 1 not in plan[:, nb - 3]
    mask = bigbird.block_mask(nb, plan)
    assert mask[:, [0, nb - 1]].all() and mask[:, :, [0, nb - 1]].all()
    per_row = mask.sum(-1)  # window, two global columns, r random: 8 key blocks (7 next to a global block)
    assert (per_row[:, 2:-2] == 8).all() and (per_row[:, [1, -2]] == 7).all()
    with pytest.raises(ValueError, match="at least 11 blocks"):
        bigbird.random_plan(6, 3)


@pytest.mark.parametrize("train", [True, False])
def test_the_same_weights_under_lfvizs_bigbird_give_hugging_faces_output(train):
    """lfviz's generic sparse path (`attention.sparse`), given HF's q, k, v and HF's plan, reproduces HF's block-sparse
    attention output. In eval mode that takes counting block 0 once more per random slot, as HF's softmax does."""
    from lfviz.attention.sparse import pattern_attention

    model = hf_model(train)
    q, k, v, context = hf_layer0(model)
    blocks = bigbird.block_mask(N // BLOCK, hf_plan(model, 0)).to(torch.int32)  # (H, nb, nb)
    if not train:
        blocks[:, 1:-1, 0] += R  # the all-zero plan: block 0 again in each random slot
    of = torch.arange(N) // BLOCK
    rows = lambda s, e: blocks[:, of[s:e]][:, :, of]
    got = pattern_attention(q, k, v, rows, 16 ** -0.5)
    torch.testing.assert_close(got.transpose(0, 1).reshape(1, N, 32), context, atol=1e-5, rtol=0)

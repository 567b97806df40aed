"""Reformer's LSH pattern (`lfviz.attention.lsh`) against Hugging Face's ReformerModel LSH attention on a tiny
config: given HF's rotations, lfviz's buckets of HF's shared query/key vectors equal HF's, and its chunked layout
(sort by bucket per round, each chunk with the chunk before it, cyclic; self only when alone) is exactly where HF's
attention probabilities are non-zero."""
import pytest
import torch
from transformers import ReformerConfig, ReformerModel

from lfviz.attention import lsh

H, D, R, B, C, N = 2, 16, 2, 4, 4, 32


def hf_model() -> ReformerModel:
    torch.manual_seed(0)
    cfg = ReformerConfig(attn_layers=["lsh", "lsh"], attention_head_size=D, num_attention_heads=H, hidden_size=32,
                         feed_forward_size=32, vocab_size=100, axial_pos_embds=False, max_position_embeddings=64,
                         num_buckets=B, num_hashes=R, lsh_attn_chunk_length=C, lsh_num_chunks_before=1,
                         lsh_num_chunks_after=0, hash_seed=0, is_decoder=False, hidden_dropout_prob=0.0,
                         lsh_attention_probs_dropout_prob=0.0)
    return ReformerModel(cfg).eval()


def test_buckets_and_the_chunked_pattern_equal_hugging_faces():
    model = hf_model()
    seen = []

    def hook(module, args, kwargs, out):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        seen.append((module, hidden.detach(), out.buckets, out.attention_probs))

    handles = [layer.attention.self_attention.register_forward_hook(hook, with_kwargs=True)
               for layer in model.encoder.layers]
    ids = torch.randint(5, 100, (1, N), generator=torch.Generator().manual_seed(3))
    try:
        with torch.no_grad():
            model(ids, output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == 2
    torch.manual_seed(0)  # HF seeds torch with hash_seed, then draws its rotations
    rotations = torch.randn(H, D, R, B // 2)
    for module, hidden, hf_buckets, probs in seen:
        qk = module.query_key(hidden)[0].view(N, H, D).transpose(0, 1)  # (H, n, d): the shared projection
        mine = lsh.hash_buckets(qk, rotations)  # (H, R, n)
        assert torch.equal(mine + B * torch.arange(R).view(1, R, 1), hf_buckets[0])  # HF offsets round r by r*B
        q, k = lsh.chunk_keys(lsh.sorted_slots(mine), C)
        assert torch.equal(probs[0] > 0, lsh.attended(q, k))  # (H, R*n/c, c, 2c)
        mask = lsh.token_mask(mine, C)
        assert not mask.diagonal(dim1=-2, dim2=-1).any()  # never itself: every query has others here
        assert (mask.sum(-1) == 2 * C - 1).all()  # its chunk and the previous one, less itself


def test_own_rotations_are_seeded_and_buckets_group_similar_vectors():
    rot = lsh.random_rotations(1, 8, 3, 8, seed=1)
    assert rot.shape == (1, 8, 3, 4) and torch.equal(rot, lsh.random_rotations(1, 8, 3, 8, seed=1))
    base = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(0))
    near = base + 1e-4 * torch.randn(1, 5, 8, generator=torch.Generator().manual_seed(1))
    b = lsh.hash_buckets(torch.cat([near, -base], dim=1), rot)  # (1, 3, 6)
    assert (b[:, :, :5] == b[:, :, :1]).all() and (b[:, :, 5] != b[:, :, 0]).all()  # opposite: another bucket
    with pytest.raises(ValueError, match="even"):
        lsh.random_rotations(1, 8, 1, 3)
    with pytest.raises(ValueError, match="multiple of its chunk length"):
        lsh.chunk_keys(torch.arange(10).view(1, 10), 4)


def test_a_query_alone_in_its_chunk_may_attend_itself():
    q = torch.tensor([[[5]]])  # one chunk of one slot: nothing but itself
    assert lsh.attended(q, q.clone()).all()

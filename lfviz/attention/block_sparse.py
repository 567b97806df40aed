"""BigBird's block-sparse attention as a kernel (the CPU's path, and any device's for the pictured layer): per query
block, its key blocks gathered into one dense window, batched matmuls and one softmax over it, instead of scoring
every key and masking (`sparse.pattern_attention`, the reference it is tested against).

Layout (Hugging Face's `BigBirdBlockSparseAttention`, `bigbird.py`), nb blocks of `block` tokens:
- query blocks 0 and nb - 1 attend every key: their 2 * block rows are computed densely against all n keys;
- every middle query block qb gets K = 5 + r key slots: [0, nb - 1, qb - 1, qb, qb + 1] and its r random blocks
  `plan[h, qb - 1]`. A slot repeating an earlier slot's block (qb - 1 = 0 for qb = 1, qb + 1 = nb - 1 for
  qb = nb - 2, a random block drawn twice) is masked, so each attended key counts once, as in the predicate;
  `repeats=True` counts a repeated random block again, as Hugging Face's eval mode does with its all-zero plan.
- A text that is not a multiple of `block` is padded at the end: the padding keys (only in the last block, always
  slot 1: a later slot repeating it is masked) are masked, the padding rows (only in the last block, a global one) are never computed.
Causal: keys after the query are masked too (the diagonal block holds the query itself, so no row is empty); the
slots always after a middle query block (nb - 1 and qb + 1) are not computed at all, nor query block 0's keys past
its own block.
Middle blocks run `CHUNK_BYTES` of scores at a time, so the working set stays in cache.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CHUNK_BYTES = 4 << 20


def key_slots(num_blocks: int, plan: np.ndarray | torch.Tensor, repeats: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The key blocks of each middle query block: slots (H, nb - 2, 5 + r) long and keep (H, nb - 2, 5 + r) bool,
    False where a slot repeats an earlier one (with `repeats`, only the window slots that repeat a global one)."""
    nb = num_blocks
    plan = torch.as_tensor(np.asarray(plan), dtype=torch.long)  # (H, nb - 2, r)
    H, r = plan.shape[0], plan.shape[-1]
    qb = torch.arange(1, nb - 1).view(1, nb - 2, 1)
    fixed = torch.cat([torch.zeros_like(qb), torch.full_like(qb, nb - 1), qb - 1, qb, qb + 1], -1)  # (1, nb - 2, 5)
    slots = torch.cat([fixed.expand(H, nb - 2, 5), plan], -1)
    earlier = torch.ones(5 + r, 5 + r, dtype=torch.bool).tril(-1)  # [i, j]: slot j comes before slot i
    if repeats:
        earlier[5:] = False  # a random slot counts whatever it repeats
    keep = ~((slots.unsqueeze(-1) == slots.unsqueeze(-2)) & earlier).any(-1)
    return slots, keep


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan, block: int, scale: float,
                           causal: bool = False, repeats: bool = False, pool: torch.Tensor | None = None,
                           chunk_bytes: int | None = None) -> torch.Tensor:
    """q, k, v: (H, n, hd); plan: (H, nb - 2, r) random key blocks of the middle query blocks (nb = ceil(n / block),
    at least 3). Returns (H, n, hd): each row's softmax over its attended keys (module docstring).
    pool: an (H, m, m) float32 tensor the probabilities are added to, summed per (query cell, key cell) of an m x m
    grid (`sparse.pattern_attention`'s picture)."""
    H, n, hd = q.shape
    nb = -(-n // block)
    plan = np.asarray(plan)
    if nb < 3 or plan.shape[:2] != (H, nb - 2):
        raise ValueError(f"a plan of shape {plan.shape} does not fit {H} heads and {nb} blocks of {block} "
                         f"(it needs ({H}, {nb - 2}, r), and at least 3 blocks)")
    dev, npad, fill, full = q.device, nb * block, -torch.inf, (nb - 1) * block
    rows_last = n - full  # real rows of the last block
    # queries blocks first, heads second ((nb, H, block, hd), scaled): a chunk of query blocks is one contiguous
    # batch; the last block's padding rows are never read
    qf = torch.empty(nb, H, block, hd, device=dev)
    qf[:nb - 1] = q[:, :full].view(H, nb - 1, block, hd).transpose(0, 1)
    qf[nb - 1, :, :rows_last] = q[:, full:]
    qf.mul_(scale)
    # keys and values heads first, zero-padded to whole blocks: (H * nb) blocks to gather from
    kf, vf = (F.pad(x.float(), (0, 0, 0, npad - n)).contiguous() for x in (k, v))
    out = torch.empty(nb, H, block, hd, device=dev)
    m = 0 if pool is None else pool.shape[-1]
    cell = torch.arange(n, device=dev) * m // n if m else None  # each position's picture cell
    if m:
        cell = torch.cat([cell, cell.new_zeros(npad - n)])  # padding rows are never added; any cell will do

    # the global query blocks: every key (causal: every key up to the row); padding rows are left out
    for b, rows in ((0, block), (nb - 1, rows_last)):
        seen = b * block + rows if causal else n  # causal: the keys up to the block's last row
        keys, values = kf[:, :seen], vf[:, :seen]
        scores = qf[b, :, :rows] @ keys.transpose(1, 2)  # (H, rows, seen)
        if causal:
            scores.masked_fill_(torch.arange(seen, device=dev) > torch.arange(rows, device=dev).view(-1, 1) + b * block,
                                fill)
        probs = torch.softmax(scores, -1)
        out[b, :, :rows] = probs @ values
        if m:
            picture = torch.zeros(H, rows, m, device=dev).index_add_(2, cell[:seen], probs)
            pool.index_add_(1, cell[b * block:b * block + rows], picture)

    # the middle query blocks: K key blocks gathered per block, one (block, K * block) softmax per row
    slots, keep = key_slots(nb, plan, repeats)
    slots, keep = slots.to(dev).transpose(0, 1), keep.to(dev).transpose(0, 1)  # (nb - 2, H, K)
    diagonal = 3  # the slot of the query's own block
    if causal:  # slots 1 (nb - 1) and 4 (qb + 1) are after every middle query block: never computed
        cols = [0, 2, 3] + list(range(5, slots.shape[-1]))
        slots, keep, diagonal = slots[..., cols], keep[..., cols], 2
    K = slots.shape[-1]
    rows_of = slots + nb * torch.arange(H, device=dev).view(1, H, 1)  # (nb - 2, H, K) rows of the (H * nb) blocks
    # slots whose keys are all masked: repeats, and (causal) blocks after the query block
    off = ~keep | (slots > torch.arange(1, nb - 1, device=dev).view(-1, 1, 1)) if causal else ~keep
    kflat, vflat = kf.view(H * nb, block * hd), vf.view(H * nb, block * hd)  # a 2-D gather is the fast one
    pad_from = n - (nb - 2) * block  # slot 1 holds the last block: its keys past n are padding
    head_cell = torch.arange(H, device=dev).view(1, H, 1, 1) * m  # the picture: head h's first query cell
    above = torch.ones(block, block, dtype=torch.bool, device=dev).triu(1)  # causal, the diagonal block
    cb = max(1, min(nb - 2, (chunk_bytes or CHUNK_BYTES) // (4 * H * block * K * block)))  # query blocks a chunk
    for c0 in range(0, nb - 2, cb):
        c1 = min(nb - 2, c0 + cb)
        c = c1 - c0
        idx = rows_of[c0:c1].reshape(-1)
        kg = torch.index_select(kflat, 0, idx).view(c, H, K * block, hd)
        scores = torch.matmul(qf[c0 + 1:c1 + 1], kg.transpose(-1, -2))  # (c, H, block, K * block)
        by_slot = scores.view(c, H, block, K, block)
        if off[c0:c1].any():
            by_slot.permute(0, 1, 3, 2, 4)[off[c0:c1]] = fill
        if pad_from < 2 * block and not causal:  # (causal: slot 1 is not computed)
            scores[..., pad_from:2 * block] = fill
        if causal:
            by_slot[:, :, :, diagonal].masked_fill_(above, fill)
        probs = torch.softmax(scores, -1)
        del scores, by_slot
        vg = torch.index_select(vflat, 0, idx).view(c, H, K * block, hd)
        if probs.requires_grad or vg.requires_grad:  # out= refuses autograd
            out[c0 + 1:c1 + 1] = torch.matmul(probs, vg)
        else:  # straight into the output's contiguous block rows
            torch.matmul(probs, vg, out=out[c0 + 1:c1 + 1])
        if m:  # each probability added to its (head, query cell, key cell): one flat index_add
            key_cell = cell[slots[c0:c1].unsqueeze(-1) * block + torch.arange(block, device=dev)].view(c, H, 1, -1)
            row_cell = cell[block * (c0 + 1):block * (c1 + 1)].view(c, 1, block, 1)
            flat = (head_cell + row_cell) * m + key_cell  # (c, H, block, K * block)
            pool.view(-1).index_add_(0, flat.view(-1), probs.view(-1))
    # back to (H, n, hd), in q's memory layout (a model's heads are a view of (n, H, hd): its reshape stays free)
    result = torch.empty_like(q, dtype=torch.float32)
    result[:, :full].view(H, nb - 1, block, hd).copy_(out[:nb - 1].transpose(0, 1))
    result[:, full:] = out[nb - 1, :, :rows_last]
    return result.to(q.dtype)


def keys_per_query(blocks: torch.Tensor, n: int, block: int) -> float:
    """Mean attended keys per query (distinct, before causality) of an (H, nb, nb) bool block table over n
    tokens: each query block's rows times the tokens of its key blocks (the last block may be short)."""
    nb = blocks.shape[-1]
    size = torch.full((nb,), float(block))
    size[-1] = n - (nb - 1) * block
    return float((blocks.float() @ size * size).sum()) / (blocks.shape[0] * n)

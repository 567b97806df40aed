"""BigBird's ITC block-sparse pattern (Zaheer et al. 2020; Hugging Face's `BigBirdBlockSparseAttention`), as a
predicate on blocks of `block` tokens, nb = n / block blocks:

- query blocks 0 and nb - 1 are global: they attend every key block;
- every other query block qb attends key blocks 0 and nb - 1 (global columns), its window qb - 1, qb, qb + 1,
  and the random key blocks of its head's plan, `plan[h, qb - 1]` (r of them).

The random plan is data. `random_plan` draws lfviz's own, seeded, under the rules Hugging Face's planner follows
(never a window or global block; block 1 never draws nb - 2 and block nb - 2 never draws 1). Hugging Face draws
its plan only in training mode: in eval mode (`not model.training`) its plan is all zeros, that is block 0, already
global, so its eval-mode BigBird has *no* random attention, and its softmax counts block 0's keys r + 1 times
(measured: a middle row's weights over distinct keys sum to 1 - r x its weight on block 0); `EVAL_NOTE` says so
where BigBird is explained.
"""
from __future__ import annotations

import numpy as np
import torch

EVAL_NOTE = ("Hugging Face's BigBird draws its random blocks only in training mode: in eval mode (inference) its "
             "random plan is all zeros, i.e. block 0, which is global anyway, so a deployed BigBird attends its "
             "window and the global blocks only (and its softmax counts block 0 once more per random slot). lfviz "
             "draws a seeded random plan to show what training sees.")


def min_length(block: int, num_random: int) -> int:
    """Below (5 + 2r) blocks' worth of tokens Hugging Face's BigBird switches to full attention."""
    return (5 + 2 * num_random) * block


def random_plan(num_blocks: int, num_random: int, heads: int = 1, seed: int = 0) -> np.ndarray:
    """(heads, nb - 2, r) int: each middle query block's random key blocks, drawn without replacement from the
    blocks that are neither its window nor global (seeded; each head its own draw)."""
    nb, r = num_blocks, num_random
    rng = np.random.default_rng(seed)
    plan = np.zeros((heads, max(0, nb - 2), r), dtype=np.int64)
    for h in range(heads):
        for qb in range(1, nb - 1):
            banned = {0, nb - 1, qb - 1, qb, qb + 1} | ({nb - 2} if qb == 1 else set())
            banned |= {1} if qb == nb - 2 else set()
            pool = np.array([b for b in range(nb) if b not in banned], dtype=np.int64)
            if len(pool) < r:
                raise ValueError(f"{nb} blocks leave {len(pool)} blocks to draw {r} random ones from: use a longer "
                                 f"text, a smaller block or fewer random blocks (at least {5 + 2 * r} blocks)")
            plan[h, qb - 1] = rng.choice(pool, size=r, replace=False)
    return plan


def block_mask(num_blocks: int, plan: np.ndarray) -> torch.Tensor:
    """(H, nb, nb) bool: query block x key block attended, per head (the predicate of the module docstring).
    plan: (H, nb - 2, r) random key blocks of the middle query blocks (`random_plan`, or Hugging Face's)."""
    plan = np.asarray(plan, dtype=np.int64)
    H, nb = plan.shape[0], num_blocks
    mask = torch.zeros(H, nb, nb, dtype=torch.bool)
    mask[:, [0, nb - 1], :] = True  # global query blocks
    mask[:, :, [0, nb - 1]] = True  # global key blocks
    q = torch.arange(nb)
    for offset in (-1, 0, 1):  # the window of three blocks
        k = q + offset
        ok = (k >= 0) & (k < nb)
        mask[:, q[ok], k[ok]] = True
    if plan.shape[-1] and nb > 2:
        h = torch.arange(H).view(H, 1, 1).expand(H, nb - 2, plan.shape[-1])
        rows = torch.arange(1, nb - 1).view(1, nb - 2, 1).expand_as(h)
        mask[h, rows, torch.from_numpy(plan)] = True
    return mask


def token_mask(n: int, block: int, plan: np.ndarray) -> torch.Tensor:
    """(H, n, n) bool: the block mask at token level (n a multiple of `block`). For tests and small views only:
    long texts stay at block level."""
    if n % block:
        raise ValueError(f"BigBird needs a length that is a multiple of its block size ({block}); got {n}")
    blocks = block_mask(n // block, plan)
    return blocks.repeat_interleave(block, 1).repeat_interleave(block, 2)

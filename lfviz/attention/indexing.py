"""Index helpers both kernels share: residue classes (how dilation becomes an undilated band) and position tensors
cached per device.

Dilation d: key i + k*d for |k| <= w is the undilated band of the residue class i mod d. The sequence is
regrouped into d interleaved subsequences of m = ceil(n / d) slots, run undilated, and put back in order.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def to_classes(x: torch.Tensor, d: int) -> torch.Tensor:
    """(h, n, c) -> (d, h, m, c), m = ceil(n / d): position t*d + r goes to residue class r, slot t (zero-padded)."""
    if d == 1:
        return x[None]
    h, n, c = x.shape
    m = -(-n // d)
    return F.pad(x, (0, 0, 0, m * d - n)).view(h, m, d, c).permute(2, 0, 1, 3)


def from_classes(x: torch.Tensor, n: int) -> torch.Tensor:
    """(d, h, m, c) -> (h, n, c): the inverse of `to_classes`."""
    d, h, m, c = x.shape
    return x.permute(1, 2, 0, 3).reshape(h, m * d, c)[:, :n]


def mask_to_classes(mask: torch.Tensor, d: int) -> torch.Tensor:
    """(n,) bool -> (d, m): `to_classes` for a per-position flag (padding slots False)."""
    if d == 1:
        return mask[None]
    m = -(-mask.shape[0] // d)
    return F.pad(mask, (0, m * d - mask.shape[0]), value=False).view(m, d).t()


@functools.lru_cache(maxsize=256)
def positions(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A tuple of positions as a long tensor on `device`, made once: a fresh host-to-GPU copy for every layer
    would make the host wait for the GPU each time."""
    return torch.tensor(values, dtype=torch.long, device=device)

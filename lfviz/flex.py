"""Longformer's local attention (band + global columns) through FlexAttention: the GPU path.

Same contract as `banded._dilated` and checked against the dense reference like every fast path
(tests/test_flex.py on the CPU, tests/test_gpu.py on CUDA).

- Dilation d: the n positions are regrouped into d residue classes of m = ceil(n / d) slots (`banded.to_classes`);
  each class is an undilated band, and the classes are FlexAttention's batch. Attending over the dilated span
  directly would visit d times as many key blocks for the same number of keys.
- Keys: the m slots of a class, then the G global tokens' keys (local projections) appended, so one softmax
  covers band + global columns as Longformer defines it. Global *rows* stay out of this mask (one block row would
  do all the work); `banded.banded_attention` computes them apart.
- The block mask comes from the band's geometry (`band_block_mask`), not from evaluating the mask over m x m;
  the mask function reads one int32 code per key (bool/int8 reads were 15x slower when measured on an H100).
- Weights for capture: FlexAttention returns each row's log-sum-exp; `banded._band_core` rebuilds the band block
  by block as p = exp(q.k - lse), straight into the storage dtype, without a second softmax or the values.
"""
from __future__ import annotations

import functools
import importlib.util
import threading
from collections import OrderedDict

import torch
from torch._dynamo.exc import TorchDynamoException
from torch.nn.attention.flex_attention import AuxRequest, BlockMask, flex_attention

from .banded import _band_core, from_classes, mask_to_classes, to_classes

BLOCK = 128  # FlexAttention's block size, queries and keys
NO_KEY, BAND_KEY, GLOBAL_KEY = 0, 1, 2  # per-key codes read by the mask function

_LOCK = threading.Lock()  # torch.compile is not safe to enter from several threads (browser tabs) at once


def key_codes(key_ok: torch.Tensor, num_global: int) -> torch.Tensor:
    """(d, m) bool band-allowed keys -> (d, K) int32 codes over the key axis of `flex_local`: the m slots (BAND_KEY
    or NO_KEY), then GLOBAL_KEY for the G appended keys, then NO_KEY up to K, the next multiple of BLOCK (the
    kernel may read codes of a last, partial block)."""
    d, m = key_ok.shape
    K = -(-(m + num_global) // BLOCK) * BLOCK
    codes = torch.full((d, K), NO_KEY, dtype=torch.int32, device=key_ok.device)
    codes[:, :m] = key_ok.to(torch.int32) * BAND_KEY
    codes[:, m:m + num_global] = GLOBAL_KEY
    return codes


def band_mask_mod(codes: torch.Tensor, w: int):
    """The mask predicate (`mask.attends`) in the layout of one residue class: query slot q attends key slot kv
    within w slots that is a band key, and every appended global key."""
    w = torch.tensor(w, dtype=torch.int32, device=codes.device)  # a tensor, not a constant: no recompile per window

    def mask_mod(b, h, q_idx, kv_idx):
        code = codes[b, kv_idx]
        return (code == GLOBAL_KEY) | ((code == BAND_KEY) & ((q_idx - kv_idx).abs() <= w))

    return mask_mod


def band_block_mask(codes: torch.Tensor, m: int, num_global: int, w: int) -> BlockMask:
    """FlexAttention's BlockMask for `band_mask_mod` from the band's geometry, O(d * (m / BLOCK)^2) and no sync.

    A (query block, key block) pair is listed when some key of the block is a band key within w of the query
    block's rows, or a global key; it is *full* (no mask evaluated) when every key of the block is a band key
    within w of every row. Listing a pair that turns out empty costs time, never correctness.
    """
    d, K = codes.shape
    nq, nk = -(-m // BLOCK), -(-(m + num_global) // BLOCK)
    dev = codes.device
    qb = torch.arange(nq, device=dev).view(nq, 1)
    kb = torch.arange(nk, device=dev).view(1, nk)
    q_first, q_last = qb * BLOCK, (qb * BLOCK + BLOCK).clamp(max=m) - 1
    k_first, k_last = kb * BLOCK, kb * BLOCK + BLOCK - 1
    near = (k_first <= q_last + w) & (k_last >= q_first - w)  # (nq, nk): some pair within w
    within = (k_last - q_first <= w) & (q_last - k_first <= w)  # every pair within w
    per_block = codes[:, :nk * BLOCK].view(d, 1, nk, BLOCK)
    band_keys = per_block == BAND_KEY
    listed = (near & band_keys.any(-1)) | (per_block == GLOBAL_KEY).any(-1)  # (d, nq, nk)
    full = within & band_keys.all(-1)
    partial = listed & ~full

    def ordered(blocks):  # (d, nq, nk) bool -> counts (d, 1, nq), indices (d, 1, nq, nk): listed ones first
        counts = blocks.sum(-1, dtype=torch.int32)
        order = torch.argsort(blocks.to(torch.int32), dim=-1, descending=True, stable=True)
        return counts[:, None], order.to(torch.int32)[:, None]

    return BlockMask.from_kv_blocks(*ordered(partial), *ordered(full), BLOCK_SIZE=BLOCK,
                                    mask_mod=band_mask_mod(codes, w), seq_lengths=(m, m + num_global),
                                    compute_q_blocks=torch.is_grad_enabled())  # only a backward pass needs them


_LAYOUTS: OrderedDict = OrderedDict()  # layout_key -> (key_ok per class, block mask); most recent last
_LAYOUTS_MAX = 32
_LAYOUTS_LOCK = threading.Lock()


def _layout(key_ok: torch.Tensor, d: int, num_global: int, w: int, layout_key=None):
    """Band-allowed keys per residue class (d, m) and the block mask. With a `layout_key` (a hashable that
    determines key_ok) they are built once and reused, e.g. by every layer of one forward pass."""
    key = None if layout_key is None else (layout_key, d, num_global, w, key_ok.device)
    if key is not None:
        with _LAYOUTS_LOCK:
            if key in _LAYOUTS:
                _LAYOUTS.move_to_end(key)
                return _LAYOUTS[key]
    ok = mask_to_classes(key_ok, d)
    layout = ok, band_block_mask(key_codes(ok, num_global), ok.shape[1], num_global, w)
    if key is not None:
        with _LAYOUTS_LOCK:
            _LAYOUTS[key] = layout
            while len(_LAYOUTS) > _LAYOUTS_MAX:
                _LAYOUTS.popitem(last=False)
    return layout


@functools.cache
def _compiled():
    return torch.compile(flex_attention, dynamic=True)


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


MIN_HEAD_DIM = 16  # Triton's matrix tiles are at least 16 wide: FlexAttention refuses head_dim 8 on a GPU
_FAILED: dict[tuple[str, int], str] = {}  # (device type, head_dim) -> why compiling failed there


class FlexUnavailable(RuntimeError):
    """FlexAttention could not be compiled for this device and head size (an old GPU, an untileable head size)."""


def available(device: torch.device, head_dim: int = 64) -> bool:
    """Whether `flex_local` runs fused on `device`: a CUDA GPU, Triton to compile for it, heads wide enough, and
    no earlier failure to compile for this head size."""
    dev = torch.device(device)
    return (dev.type == "cuda" and head_dim >= MIN_HEAD_DIM and _triton_installed()
            and (dev.type, head_dim) not in _FAILED)


def flex_local(q, k, v, key_ok, w: int, d: int, gk, gv, need_weights: bool, weights_dtype=torch.float32,
               compiled: bool | None = None, layout_key=None):
    """Band + global columns with dilation d, the contract of `banded._dilated`.

    q (scaled), k, v: (h, n, hd);  key_ok: (n,) bool, keys allowed in the band;  gk, gv: (h, G, hd).
    Returns out (h, n, hd) and, if need_weights, band (h, n, 2w + 1), to_global (h, n, G), received (h, n) fp32.
    compiled: run FlexAttention's fused kernel (default: on CUDA). Uncompiled, FlexAttention evaluates the mask
    over every (query, key) pair: right, but quadratic, for tests on small inputs. Compiled on the CPU it gives no
    log-sum-exp, so capture there always runs uncompiled.
    layout_key: a hashable that determines key_ok (e.g. the length and the global positions when there is no
    padding): the block mask is then made once for all layers instead of once per layer.
    """
    h, n, hd = q.shape
    G = gk.shape[1]
    d = min(d, n)  # as in banded._dilated: d >= n reaches the token itself only
    m = -(-n // d)
    compiled = q.is_cuda if compiled is None else compiled
    if compiled and need_weights and not q.is_cuda:
        compiled = False
    qc, kc, vc = (to_classes(x, d) for x in (q, k, v))  # (d, h, m, hd)
    ok, block_mask = _layout(key_ok, d, G, w, layout_key)  # (d, m), BlockMask
    if G:  # the global keys after every class's own keys: (d, h, m + G, hd)
        kc = torch.cat([kc, gk.unsqueeze(0).expand(d, h, G, hd)], dim=2)
        vc = torch.cat([vc, gv.unsqueeze(0).expand(d, h, G, hd)], dim=2)
    attend = _compiled() if compiled else flex_attention
    aux = AuxRequest(lse=True) if need_weights else None
    try:
        with _LOCK:
            result = attend(qc, kc, vc, block_mask=block_mask, scale=1.0, return_aux=aux)
    except TorchDynamoException as e:  # compilation failed: remembered, so "auto" stops choosing this path
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        _FAILED[(q.device.type, hd)] = why
        raise FlexUnavailable(f"FlexAttention could not be compiled for {q.device.type} with head size {hd} "
                              f"({why})") from e
    out, lse = (result[0], result[1].lse) if need_weights else (result, None)
    out = from_classes(out, n)
    if not need_weights:
        return out, None, None, None
    _, band, tog, rec = _band_core(qc, kc[:, :, :m], None, ok, w, gk, None, True, weights_dtype=weights_dtype,
                                   lse=lse)
    return out, from_classes(band, n), from_classes(tog, n), from_classes(rec.unsqueeze(-1), n)[..., 0]

"""`nn.Linear` applied through oneDNN on the CPU: the encoder's projections and feed-forward layers.

PyTorch runs an fp32 `F.linear` on the CPU through MKL's sgemm, which on AMD processors takes its AVX2 code path;
oneDNN picks its kernels by the instruction sets the CPU has (AVX-512 where present). On this project's 2-core
AMD EPYC (Zen 5) the encoder's shapes (4,096 rows, 384 -> 384 / 1,536 -> 384 / 384 -> 1,536) ran 2-3x faster
through oneDNN (bench/README.md, CPU section). Both are fp32 products with fp32 accumulation; only the order of the
additions differs (the results agree to fp32 rounding, tests/attention/test_banded.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


ONEDNN = _onednn_available()


def linear(x: torch.Tensor, lin: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """lin(x) for x (..., in), then the exact (erf) GELU if `gelu`: through oneDNN for an fp32 CPU input outside
    autograd (the GELU fused into the product: no second pass over the output; no hooks of `lin` run: it is used
    as weights only), else lin's own forward and `F.gelu`."""
    w = lin.weight
    if (ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
            and not torch.is_grad_enabled() and x.dim() >= 2 and type(lin) is nn.Linear):
        if gelu:
            return torch.ops.mkldnn._linear_pointwise(x, w, lin.bias, "gelu", [None], "none")  # "none": erf
        return torch.ops.mkldnn._linear_pointwise(x, w, lin.bias, "none", [None], "")
    return F.gelu(lin(x)) if gelu else lin(x)

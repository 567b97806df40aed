"""`nn.Linear` applied through oneDNN on CPUs where it is the faster product: the encoder's projections and
feed-forward layers.

PyTorch runs an fp32 `F.linear` on the CPU through MKL's sgemm, which on AMD processors takes its AVX2 code path;
oneDNN picks its kernels by the instruction sets the CPU has. On a 2-core AMD EPYC with AVX-512 (Zen 5) the
encoder's shapes (4,096 rows, 384 -> 384 / 1,536 -> 384 / 384 -> 1,536) ran 2-3x faster through oneDNN
(bench/README.md, CPU section); on a 2-core AMD EPYC with AVX2 alone MKL was as fast or faster on every one of them
(384 -> 1,536 with the GELU: 34 ms against 43-51 ms; 1,536 -> 384: 28-34 against 34-35 ms), so oneDNN serves only
where the CPU has AVX-512 (`USE_ONEDNN`). Both are fp32 products with fp32 accumulation; only the order of the
additions differs (the results agree to fp32 rounding, tests/attention/test_banded.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


ONEDNN = _onednn_available()
USE_ONEDNN = ONEDNN and torch.backends.cpu.get_cpu_capability().startswith("AVX512")  # see the module's text


def linear(x: torch.Tensor, lin: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """lin(x) for x (..., in), then the exact (erf) GELU if `gelu`: through oneDNN for an fp32 CPU input outside
    autograd where it is the faster product (`USE_ONEDNN`; the GELU fused into the product: no second pass over the
    output; no hooks of `lin` run: it is used as weights only), else lin's own forward and `F.gelu`."""
    w = lin.weight
    if (USE_ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
            and not torch.is_grad_enabled() and x.dim() >= 2 and type(lin) is nn.Linear):
        if gelu:
            return torch.ops.mkldnn._linear_pointwise(x, w, lin.bias, "gelu", [None], "none")  # "none": erf
        return torch.ops.mkldnn._linear_pointwise(x, w, lin.bias, "none", [None], "")
    return F.gelu(lin(x)) if gelu else lin(x)

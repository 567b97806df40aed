"""Longformer self-attention as a module: HF's parameters, lfviz's kernel, settings passed per call.

Window, dilation and global tokens are arguments of `forward`, never module state, so one cached model can
serve concurrent runs with different configurations.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import LayerSpec
from . import sparse
from .banded import GlobalProjections, banded_attention
from .indexing import positions
from .layout import AttentionWeights
from .linear import linear


class BandedSelfAttention(nn.Module):
    """Drop-in for HF's `LongformerSelfAttention` (same parameter names: query, key, value, *_global)."""

    def __init__(self, hidden_size: int, num_heads: int, layer_idx: int = 0):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not a multiple of the number of heads {num_heads}")
        self.num_heads, self.head_dim, self.layer_idx = num_heads, hidden_size // num_heads, layer_idx
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            setattr(self, name, nn.Linear(hidden_size, hidden_size))

    @classmethod
    def from_hf(cls, hf_attn: nn.Module, layer_idx: int) -> "BandedSelfAttention":
        """Share (not copy) the projections of an HF `LongformerSelfAttention`."""
        mod = cls.__new__(cls)
        nn.Module.__init__(mod)
        mod.num_heads, mod.head_dim, mod.layer_idx = hf_attn.num_heads, hf_attn.head_dim, layer_idx
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            setattr(mod, name, getattr(hf_attn, name))
        return mod

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (n, D) -> (H, n, hd)
        return x.view(x.shape[0], self.num_heads, self.head_dim).transpose(0, 1)

    def _same(self, a: nn.Linear, b: nn.Linear) -> bool:
        """Whether two projections hold equal weights and biases (a converted model's global projections start as
        copies of the local ones: `model.convert`), checked once per version of the tensors."""
        tensors = (a.weight, b.weight, a.bias, b.bias)
        key = tuple((t.data_ptr(), t._version) if t is not None else None for t in tensors)
        seen = self.__dict__.setdefault("_same_seen", {})
        if key not in seen:
            seen[key] = (a.weight.shape == b.weight.shape and torch.equal(a.weight, b.weight)
                         and (a.bias is None) == (b.bias is None) and (a.bias is None or torch.equal(a.bias, b.bias)))
        return seen[key]

    def project(self, hidden: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
        """hidden (n, D) through one of the local projections (query, key, value), as heads (H, n, hd)."""
        return self._heads(linear(hidden, lin))

    def forward(self, hidden: torch.Tensor, spec: LayerSpec, global_tokens: tuple[int, ...] = (),
                valid: torch.Tensor | None = None, need_weights: bool = False, capture=None,
                weights_dtype: torch.dtype = torch.float32, impl: str = "auto"
                ) -> tuple[torch.Tensor, AttentionWeights | None]:
        """hidden: (n, D). Returns the context (n, D) before the output projection, and the weights if asked.

        `capture` is not used here: it identifies the run to the forward hooks of `capture.capture_attention`.
        impl: which kernel computes the band ("auto", "blocked", "flex"; see `banded.banded_attention`).
        """
        n, D = hidden.shape
        q, k, v = (self.project(hidden, lin) for lin in (self.query, self.key, self.value))
        if sparse.active() is not None:  # another pattern (BigBird, LSH) on the same weights: no capture
            return sparse.run_active(self.layer_idx, q, k, v).transpose(0, 1).reshape(n, D), None
        qg = kg = vg = None
        if global_tokens:
            idx = positions(tuple(global_tokens), hidden.device)
            # global projections equal to the local ones (a converted model) are the local ones: nothing to project
            if self._same(self.query_global, self.query):
                qg = q[:, idx]
            else:
                qg = self._heads(self.query_global(hidden[idx]))  # (H, G, hd): only the global rows need queries
            if self._same(self.key_global, self.key) and self._same(self.value_global, self.value):
                kg, vg = k, v
            elif len(global_tokens) < self.head_dim:  # cheaper through the G global queries than for every position
                kg, vg = GlobalProjections(hidden, self.key_global, self.value_global, self.num_heads), None
            else:
                kg, vg = self._heads(self.key_global(hidden)), self._heads(self.value_global(hidden))
        out, weights = banded_attention(q, k, v, spec, global_tokens, valid, qg, kg, vg, need_weights,
                                        weights_dtype=weights_dtype, impl=impl)
        return out.transpose(0, 1).reshape(n, D), weights

"""lfviz's Longformer forward over a Hugging Face `LongformerModel`'s weights.

Embeddings, output projections and feed-forward blocks are HF's own modules (shared, not copied); only the
self-attention is lfviz's, so any window per layer, dilation per head and global set works, and nothing
is padded to a multiple of the window.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention.linear import linear
from ..attention.self_attention import BandedSelfAttention
from ..config import LayerSpec


class EncoderLayer(nn.Module):
    def __init__(self, hf_layer: nn.Module, layer_idx: int):
        super().__init__()
        self.attention = BandedSelfAttention.from_hf(hf_layer.attention.self, layer_idx)
        self.attention_output = hf_layer.attention.output  # dense + residual LayerNorm
        self.intermediate = hf_layer.intermediate
        self.output = hf_layer.output

    def forward(self, hidden, spec, global_tokens, valid, need_weights, capture, impl="auto"):
        context, _ = self.attention(hidden, spec=spec, global_tokens=global_tokens, valid=valid,
                                    need_weights=need_weights, capture=capture,
                                    weights_dtype=capture.dtype if capture is not None else torch.float32,
                                    impl=impl)
        ao, inter, o = self.attention_output, self.intermediate, self.output
        if ao.training or o.training or torch.is_grad_enabled():  # HF's modules as they are (dropout, autograd)
            attn = ao(context, hidden)
            return o(inter(attn), attn)
        # HF's LongformerSelfOutput, Intermediate and Output in eval mode (dropout: identity), their dense layers
        # through oneDNN where the CPU has AVX-512 (`attention.linear`: 2-3x MKL's sgemm there), else MKL
        attn = ao.LayerNorm(linear(context, ao.dense) + hidden)
        act = inter.intermediate_act_fn
        if getattr(act, "act", None) is F.gelu:  # HF's GELUActivation (exact GELU): fused into the product
            mid = linear(attn, inter.dense, gelu=True)
        else:
            mid = act(linear(attn, inter.dense))
        return o.LayerNorm(linear(mid, o.dense) + attn)


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor  # (n, D)
    hidden_states: tuple[torch.Tensor, ...] | None  # embeddings + one per layer, each (n, D)


class LongformerEncoder(nn.Module):
    """Longformer encoder for one sequence (no batch dimension)."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.config = hf_model.config
        self.embeddings = hf_model.embeddings
        self.layers = nn.ModuleList(EncoderLayer(l, i) for i, l in enumerate(hf_model.encoder.layer))

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_heads(self) -> int:
        return self.config.num_attention_heads

    def attention_modules(self) -> list[BandedSelfAttention]:
        return [layer.attention for layer in self.layers]

    def forward(self, input_ids: torch.Tensor, specs: tuple[LayerSpec, ...], global_tokens: tuple[int, ...] = (),
                valid: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None, capture=None,
                output_hidden_states: bool = False, impl: str = "auto") -> EncoderOutput:
        """input_ids: (n,). `capture` (a CaptureSession or None) decides which layers compute weights.
        impl: the attention kernel ("auto": FlexAttention on a CUDA GPU, the blocked kernel elsewhere)."""
        if len(specs) != len(self.layers):
            raise ValueError(f"got {len(specs)} layer specs for a model with {len(self.layers)} layers")
        ids = input_ids.view(1, -1)
        tt = None if token_type_ids is None else token_type_ids.view(1, -1)
        hidden = self.embeddings(input_ids=ids, token_type_ids=tt)[0]  # (n, D)
        states = [hidden] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            need = capture is not None and capture.wants(i)
            hidden = layer(hidden, specs[i], global_tokens, valid, need, capture, impl)
            if states is not None:
                states.append(hidden)
        return EncoderOutput(hidden, tuple(states) if states is not None else None)

"""What every runner can say about itself, so analysis and app code ask a runner what it can do instead of
comparing `task` strings.

`Runner` (Longformer encoders) and `CausalRunner` (Hugging Face causal LMs) both derive from `RunnerBase`.
"""
from __future__ import annotations

import torch

from ..config import AttentionConfig


class RunnerBase:
    """Shared facts of a loaded model. Subclasses set model_id, model, tokenizer, device, description, config,
    converted, and define num_layers, num_heads, max_tokens, native_windows and run()."""

    task: str = ""
    causal: bool = False  # keys only at or before each query (a language model): the window counts previous tokens

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def native_windows(self) -> tuple[int, ...]:
        """Each layer's two-sided window under the model's own pattern (lfviz's convention, see config.py)."""
        raise NotImplementedError

    @property
    def trained_sparse(self) -> bool:
        """Whether the model was trained with a sparse pattern (some layer windowed): then its native pattern, not
        full attention, is what it does best."""
        return False

    def native_config(self) -> AttentionConfig:
        """The model's own pattern as an AttentionConfig (text form "native")."""
        return AttentionConfig.native(self)

    def default_config(self) -> AttentionConfig:
        """What `run` uses when given no configuration: the native pattern of a model trained sparse, else lfviz's
        default (window 512)."""
        return self.native_config() if self.trained_sparse else AttentionConfig()

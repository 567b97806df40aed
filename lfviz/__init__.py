"""lfviz: see and understand Longformer attention (banded, global, dilated), captured from a real model."""
from .capture import Capture, capture_attention
from .config import AttentionConfig, LayerSpec
from .layout import AttentionWeights, weights_from_dense, weights_to_dense
from .loading import load_runner
from .predictions import Predictions, diff_predictions
from .result import RunResult, load_result
from .runner import Runner

__all__ = ["AttentionConfig", "LayerSpec", "AttentionWeights", "Capture", "capture_attention", "load_runner",
           "Runner", "RunResult", "load_result", "Predictions", "diff_predictions", "weights_from_dense",
           "weights_to_dense"]

"""lfviz: see and understand Longformer attention (banded, global, dilated), captured from a real model."""
from .attention.layout import AttentionWeights, weights_from_dense, weights_to_dense
from .config import AttentionConfig, LayerSpec
from .model.capture import Capture, capture_attention
from .model.loading import load_runner
from .model.predictions import Predictions, diff_predictions
from .model.result import RunResult, load_result
from .model.runner import Runner

__all__ = ["AttentionConfig", "LayerSpec", "AttentionWeights", "Capture", "capture_attention", "load_runner",
           "Runner", "RunResult", "load_result", "Predictions", "diff_predictions", "weights_from_dense",
           "weights_to_dense"]

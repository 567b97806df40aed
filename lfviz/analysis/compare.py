"""Baseline vs variant: how a configuration change moves attention and hidden states, layer by layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.causal_runner import perplexity
from .headstats import received


def attention_change(base, variant) -> list[float]:
    """Per captured layer: total-variation distance between the baseline's and the variant's distribution of
    received attention (0 = same, 1 = disjoint), averaged over heads. Works across different windows."""
    out = []
    for layer in base.captured_layers:
        if layer not in variant.captured_layers:
            continue
        a, b = received(base.weights(layer)), received(variant.weights(layer))
        a, b = a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
        out.append(float(0.5 * (a - b).abs().sum(-1).mean()))
    return out


def hidden_change(base_states, variant_states) -> list[float]:
    """Per layer (embeddings first): mean over tokens of 1 - cosine(baseline, variant); empty when either run
    has no hidden states (e.g. an export saved without them)."""
    if base_states is None or variant_states is None:
        return []
    return [float((1 - F.cosine_similarity(a.float(), b.float(), dim=-1)).mean())
            for a, b in zip(base_states, variant_states)]


def token_strip_values(result) -> tuple[list[float], str]:
    """Per-token scores for the lab's token strip and their title: similarity to the first query (or to the
    document) when the model gives one, else the attention each token receives in the last captured layer."""
    p = result.predictions
    if p.token_scores and p.kind == "next-token":
        return p.token_scores[0], "Tokens by next-token loss (nats; higher = harder to predict from what came before)"
    if p.token_scores:
        return p.token_scores[0], f"Tokens by similarity to '{p.token_score_labels[0][:50]}'"
    last = result.capture.weights(result.capture.captured_layers[-1])
    return received(last).mean(0).tolist(), "Tokens by attention received (last layer)"


def loss_increase(base, variant) -> list[float]:
    """Per token: the variant's next-token loss minus the baseline's (nats; > 0 where the variant predicts that
    token worse, e.g. a window against full attention). Both runs of a causal LM on the same tokens."""
    (a,), (b,) = base.predictions.token_scores, variant.predictions.token_scores
    if len(a) != len(b):
        raise ValueError(f"the runs have {len(a)} and {len(b)} tokens: compare runs of the same text")
    return [y - x for x, y in zip(a, b)]


def region_perplexity(result, start: int = 1, stop: int | None = None) -> float:
    """Perplexity of a causal LM's run over tokens [start, stop): exp of their mean next-token loss."""
    return perplexity(result.predictions.token_scores[0], start, stop)

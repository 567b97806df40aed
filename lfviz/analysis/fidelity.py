"""Fidelity to full attention: how far a configuration's run stays from the same weights under full attention,
and where (which tokens, which layers) it drifts.

The reference is *these weights under full attention* (every token attends every token; a causal LM every earlier
token), at the same positions. For the embedded models (a converted encoder, SmolLM2) that is how they were
trained, so it is the behaviour a sparse pattern approximates. For a checkpoint pretrained as a Longformer it is
not the model's own mode: say so (`REFERENCE_NOTE`).

Measures (`measure`), all from two `RunResult`s of the same text, hidden states included:
- per layer (embeddings first): mean over tokens of 1 - cos(hidden state under full attention, under the pattern);
- per token: 1 - cos of its last hidden state (encoders), or its next-token loss increase in nats (causal LMs);
- per document: the cosine of the mean-pooled embeddings (encoders), the perplexity ratio (causal LMs), and the
  change of every prediction the model makes;
- `gap`: one number the placement advisor lowers, 0 when the run is exactly full attention.
`attention_from_afar`: per key, the attention full attention gives it from queries the pattern does not let
attend it (what the window loses, by key), computed in query chunks during the full-attention run.

A model trained with a sliding window (Gemma 2/3, Mistral, gpt-oss, ...: `runner.trained_sparse`) never learned
longer distances, so full attention is not its truth: Gemma 3 270M on 2,000 tokens has perplexity 19.8 under its
native pattern and 195 with every layer full. For such a model the reference is its **native pattern**
(`reference_config`), and every measure says which reference is in force (`reference_name`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..attention.logits import soft_cap, softmax_with_sink
from ..attention.mask import attends
from ..config import AttentionConfig
from ..model.predictions import diff_predictions
from ..model.probe import probe_queries_keys
from .compare import loss_increase

OBJECTIVES = {
    "embedding": "1 - cosine between the document's mean-pooled embedding and full attention's",
    "perplexity": "perplexity under the pattern / perplexity under full attention - 1 (0: as full attention)",
    "prediction": "|change| of one prediction's score from full attention",
}
REFERENCE_NOTE = ("The reference is these weights under full attention. This checkpoint was pretrained as a "
                  "Longformer, so full attention is not its own mode: a gap here is distance from full attention, "
                  "not an error of the model.")
CHUNK_BYTES = 32 * 2**20  # fp32 scores per query chunk in `attention_from_afar`


def full_attention(n: int) -> AttentionConfig:
    """Full attention on an n-token text: a window covering it (cut to the text by the kernel), nothing global."""
    return AttentionConfig(window=2 * max(1, int(n)))


def reference_config(runner, n: int) -> AttentionConfig:
    """What a pattern is measured against on an n-token text: the model's native pattern (no global token) when
    it was trained with a sliding window, else full attention."""
    return AttentionConfig.native(runner) if getattr(runner, "trained_sparse", False) else full_attention(n)


def reference_name(config_or_result) -> str:
    """"the native pattern" or "full attention": which reference a config (or a RunResult's config) is."""
    cfg = getattr(config_or_result, "config", config_or_result)
    return "the native pattern" if getattr(cfg, "is_native", False) else "full attention"


def is_causal(result) -> bool:
    return result.predictions.kind == "next-token"


def default_objective(result) -> str:
    return "perplexity" if is_causal(result) else "embedding"


def _pooled_cosine(full, result) -> float:
    return float(F.cosine_similarity(full.last_hidden_state.mean(0), result.last_hidden_state.mean(0), dim=0))


def _perplexity(result) -> float:
    return result.predictions.summary()["perplexity"]


def gap(full, result, objective: str = "auto", label: str | None = None) -> float:
    """One number for how far `result` is from `full` (the same text under full attention); 0 = identical.
    objective: "embedding", "perplexity" (causal LMs), "prediction" (with `label`: one of the predictions), or
    "auto" (perplexity for causal LMs, embedding otherwise)."""
    objective = default_objective(full) if objective == "auto" else objective
    if full.input_ids != result.input_ids:
        raise ValueError("the two runs read different tokens: compare runs of the same text")
    if objective == "embedding":
        return 1.0 - _pooled_cosine(full, result)
    if objective == "perplexity":
        if not is_causal(full):
            raise ValueError("perplexity needs a causal language model: use the 'embedding' objective here")
        return _perplexity(result) / _perplexity(full) - 1.0
    if objective == "prediction":
        a, b = full.predictions.summary(), result.predictions.summary()
        if label not in a or label not in b or a[label] is None or b[label] is None:
            have = ", ".join(repr(x) for x in list(a)[:8]) or "none (add queries on the Document page)"
            raise ValueError(f"no prediction {label!r} in both runs: pick one of {have}")
        return abs(b[label] - a[label])
    raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)} or 'auto'")


@dataclass
class Fidelity:
    objective: str
    gap: float  # `gap`: 0 = as full attention
    document: dict[str, float]  # per-document numbers, named
    per_layer: list[float]  # mean over tokens of 1 - cos, embeddings first ([] without hidden states)
    per_token: list[float]  # blind spots, see per_token_label (NaN where undefined)
    per_token_label: str
    predictions: list[dict] = field(default_factory=list)  # `diff_predictions(full, result)` rows


def layer_divergence(full, result) -> torch.Tensor:
    """(L + 1, n) 1 - cos of every token's hidden state, embeddings first; (0, n) without hidden states."""
    if full.hidden_states is None or result.hidden_states is None:
        return torch.zeros(0, result.n)
    return torch.stack([1 - F.cosine_similarity(a.float(), b.float(), dim=-1)
                        for a, b in zip(full.hidden_states, result.hidden_states)])


def measure(full, result, objective: str = "auto", label: str | None = None) -> Fidelity:
    """Everything fidelity shows for `result` against `full` (same text, same weights, the reference: full
    attention, or the native pattern of a model trained sparse; `reference_name(full)` says which)."""
    objective = default_objective(full) if objective == "auto" else objective
    value = gap(full, result, objective, label)
    per_layer = layer_divergence(full, result)
    ref = reference_name(full)
    if is_causal(full):
        ours, theirs = _perplexity(result), _perplexity(full)
        document = {"perplexity": ours, f"perplexity ({ref})": theirs, "perplexity ratio": ours / theirs}
        per_token, what = loss_increase(full, result), f"next-token loss increase over {ref} (nats)"
    else:
        document = {"pooled-embedding cosine": _pooled_cosine(full, result)}
        last = 1 - F.cosine_similarity(full.last_hidden_state.float(), result.last_hidden_state.float(), dim=-1)
        per_token, what = last.tolist(), f"1 - cos of the token's last hidden state against {ref}"
    document["mean 1 - cos (last layer)"] = float(
        (1 - F.cosine_similarity(full.last_hidden_state, result.last_hidden_state, dim=-1)).mean())
    return Fidelity(objective, value, document, per_layer.mean(1).tolist(), per_token, what,
                    diff_predictions(full.predictions, result.predictions))


def _far_probe(specs, n: int, causal: bool, received: torch.Tensor, reference=None):
    """A probe (see `model.probe`) adding, per key, the reference's weight from queries that the layer's band
    (`specs`, no global tokens; `mask.attends`) does not let attend it, averaged over heads. Heads that share a
    dilation share one (C, n) band mask per query chunk. reference: the reference's specs when it is not full
    attention (a native pattern: its own windows mask the scores too); the model's softcap and sinks apply."""
    none = torch.zeros(n, dtype=torch.bool)
    valid = torch.ones(n, dtype=torch.bool)

    def probe(layer, q, k, scale, softcap=None, sinks=None):
        spec = specs[layer].for_length(n)
        H = q.shape[0]
        kt = k.float().transpose(1, 2)
        keys = torch.arange(n)
        chunk = max(1, CHUNK_BYTES // (4 * H * n))
        groups = {d: [h for h in range(H) if spec.dilation[h] == d] for d in set(spec.dilation)}
        ref = None if reference is None else reference[layer].for_length(n)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            scores = soft_cap((q[:, s:e].float() * scale) @ kt, softcap)  # (H, C, n)
            if causal:
                scores.masked_fill_(keys.view(1, n) > keys[s:e].view(-1, 1), float("-inf"))
            if ref is not None:  # the native pattern's own band (one dilation per layer: the native one is 1)
                seen = attends(keys[s:e].view(-1, 1), keys.view(1, n), one_sided=ref.one_sided,
                               dilation=max(ref.dilation), is_global=none, is_valid=valid, causal=causal)
                scores.masked_fill_(~seen.to(scores.device), float("-inf"))
            probs = softmax_with_sink(scores, None if sinks is None else sinks.to(scores.device), head_dim=-3)[0]
            for d, heads in groups.items():
                part = probs[heads].sum(0) if len(heads) < H else probs.sum(0)  # (C, n)
                # the band reaches keys [s - w*d, e + w*d): outside it every key is beyond the window for these
                # queries, so only that slice needs the predicate ((C, C + 2wd) instead of (C, n))
                lo, hi = max(0, s - spec.one_sided * d), min(n, e + spec.one_sided * d)
                near = attends(keys[s:e].view(-1, 1), keys[lo:hi].view(1, -1), one_sided=spec.one_sided,
                               dilation=d, is_global=none, is_valid=valid, causal=causal)  # (C, hi - lo)
                part[:, lo:hi].masked_fill_(near.to(part.device), 0.0)
                received.add_(part.sum(0).cpu() / H)
    return probe


def attention_from_afar(runner, text: str, config: AttentionConfig, question: str | None = None, queries=()):
    """Run `text` under the reference (`reference_config`: full attention, or the native pattern of a model trained
    sparse; hidden states kept) and measure, per key, how much attention the reference gives it from beyond
    `config`'s window and dilation (summed over queries, averaged over heads, summed over layers): the keys the
    pattern cuts off most. Returns (the reference RunResult, (n,) numpy); `reference_name(result)` says which.
    One forward plus one pass over the scores per layer, in query chunks (no n x n storage)."""
    n = len(runner.tokenize(text, question).input_ids)
    specs = config.resolve(runner.num_layers, runner.num_heads)
    reference = reference_config(runner, n)
    ref_specs = reference.resolve(runner.num_layers, runner.num_heads) if reference.is_native else None
    received = torch.zeros(n, dtype=torch.float64)
    causal = getattr(runner, "causal", False)
    with probe_queries_keys(runner, _far_probe(specs, n, causal, received, ref_specs)):
        full = runner.run(text, config=reference, queries=queries, question=question, capture=False,
                          output_hidden_states=True)
    return full, received.numpy()


def finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def blind_spots(fidelity: Fidelity, top: int = 10) -> list[int]:
    """The `top` positions whose per-token value is largest (most hurt), largest first."""
    v = np.nan_to_num(np.asarray(fidelity.per_token, dtype=float), nan=-np.inf)
    order = np.argsort(-v, kind="stable")[:top]
    return [int(i) for i in order if np.isfinite(v[i])]

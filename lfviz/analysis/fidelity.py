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
attend it (what the window loses, by key), computed during the full-attention run without n x n storage (past
`FAR_ROWS` tokens from every step-th query: `far_step`).

A model trained with a sliding window (Gemma 2/3, Mistral, gpt-oss, ...: `runner.trained_sparse`) never learned
longer distances, so full attention is not its truth: Gemma 3 270M on 2,000 tokens has perplexity 19.8 under its
native pattern and 195 with every layer full. For such a model the reference is its **native pattern**
(`reference_config`), and every measure says which reference is in force (`reference_name`).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..attention.dense import observe
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
FAR_ROWS = 1024  # query rows the far sums read at most (`far_step`): past it, every step-th query, times step
NEAR_ROWS = 128  # query rows per chunk of the band's own probabilities (`_FarSums._near`)


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


class _FarSums:
    """Per key, the reference's attention from queries that the layer's band (`specs`, no global tokens;
    `mask.attends`) does not let attend it, averaged over heads, summed over layers, added to `received` (n,).

    Where the reference run computes a layer's attention on the dense path (`dense.py`: a full-attention layer),
    the sums come from what that run computes anyway (`dense.observe`): on its flash path each query's
    log-sum-exp (`rows`: every key's column sum by a second flash call, `column_sums`, less what the band's own
    queries give it, `_near`), else each chunk's probabilities (`observe`: softcaps, sinks). Elsewhere (a native
    pattern's windowed layer) the layer's queries and keys, handed over by the probe (`model.probe`), are scored
    again in query chunks (`two_pass`). reference: the reference's specs when it is not full attention (its own
    windows mask the scores too); the model's softcap and sinks apply."""

    def __init__(self, specs, n: int, causal: bool, received: torch.Tensor, reference=None, heads: int | None = None,
                 step: int = 1):
        self.specs, self.n, self.causal, self.received, self.reference = specs, n, causal, received, reference
        self.step = max(1, int(step))  # the sums read the queries 0, step, 2 step, ..., times step (`far_step`)
        self.heads = heads if heads is not None else len(specs[0].dilation)  # query heads
        self.none, self.valid, self.keys = torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool), \
            torch.arange(n)
        self.pending = None  # (layer, q, k, scale, softcap, sinks) of the layer whose attention runs now; q and k
        # are the lazy probe's functions that give them (only a layer scored again asks)
        self.observed = 0  # query rows of the pending layer the dense path handed over
        self.fused, self.two_passes = [], []  # layers done each way (what the tests check)
        self.from_rows = []  # of the fused layers, those done from the flash path's log-sum-exp (`rows`)
        self._bands: dict = {}
        self._no_far: dict = {}

    def _beyond(self, s: int, e: int, one_sided: int, d: int, device, step: int = 1
                ) -> tuple[int, int, torch.Tensor]:
        """The keys lo..hi-1 that the band of the queries s, s + step, ... (< e) can reach (one side: w * d) and,
        over them, (rows, hi - lo) bool: True where the key is beyond the band (`mask.attends`). Outside lo..hi
        every key is beyond it. The same for every layer with this band: kept."""
        rows = self.keys[s:e:step]
        key = (s, int(rows[-1]), one_sided, d, step)
        if key not in self._bands:
            lo, hi = max(0, s - one_sided * d), min(self.n, int(rows[-1]) + 1 + one_sided * d)
            near = attends(rows.view(-1, 1), self.keys[lo:hi].view(1, -1), one_sided=one_sided,
                           dilation=d, is_global=self.none, is_valid=self.valid, causal=self.causal)
            self._bands[key] = (lo, hi, (~near).to(device))
        return self._bands[key]

    def _add(self, layer: int, s: int, probs: torch.Tensor) -> None:
        """probs (H, C, n) fp32: the reference's probabilities of the sampled queries s, s + step, ... (C of them;
        s a multiple of `step`) at `layer`."""
        H, C, n = probs.shape
        spec = self.specs[layer].for_length(n)
        flat = probs.reshape(H * C, n)
        e = s + (C - 1) * self.step + 1
        for d in sorted(set(spec.dilation)):  # heads that share a dilation share one band
            heads = [h for h in range(H) if spec.dilation[h] == d]
            weight = torch.zeros(H, C, dtype=probs.dtype, device=probs.device)
            weight[heads] = 1.0
            far = (weight.view(1, H * C) @ flat)[0]  # (n,) every key's sum over these heads and queries
            lo, hi, beyond = self._beyond(s, e, spec.one_sided, d, probs.device, self.step)
            near_keys = probs[:, :, lo:hi] if len(heads) == H else probs[heads, :, lo:hi]  # (h, C, hi - lo)
            far[lo:hi] = (near_keys * beyond).sum((0, 1))  # where the band reaches: only what comes from beyond
            self.received.add_(far.cpu() * (self.step / H))

    def _near(self, qs: torch.Tensor, k: torch.Tensor, lse: torch.Tensor, one_sided: int, d: int) -> torch.Tensor:
        """(n,) float64: per key, the probability the band's own sampled queries give it (summed over these heads),
        from qs (h, m, hd) the sampled queries (scaled; m = ceil(n / step)), k (h, n, hd) keys and lse (h, m) each
        sampled query's log-sum-exp: the scores of queries s, s + step, ... against the keys their band reaches
        only, in query chunks (`_beyond`'s masks)."""
        n, step = self.n, self.step
        near = torch.zeros(n, dtype=torch.float64, device=qs.device)
        for a in range(0, qs.shape[1], NEAR_ROWS):
            b = min(qs.shape[1], a + NEAR_ROWS)
            lo, hi, beyond = self._beyond(a * step, min(n, b * step), one_sided, d, qs.device, step)
            p = torch.baddbmm(-lse[:, a:b, None], qs[:, a:b], k[:, lo:hi].transpose(1, 2)).exp_()  # (h, C, hi - lo)
            near[lo:hi] += p.masked_fill_(beyond, 0.0).sum((0, 1))
        return near

    def no_far(self, one_sided: int, d: int) -> torch.Tensor:
        """(n,) bool: the keys whose every query (every later one when causal) is in the band, so that nothing
        reaches them from beyond it: exactly 0 there, as the probabilities' own sums give (`rows` subtracts)."""
        if (one_sided, d) not in self._no_far:
            n, count = self.n, torch.zeros(self.n, dtype=torch.long)
            for s in range(0, n, NEAR_ROWS):
                e = min(n, s + NEAR_ROWS)
                lo, hi, beyond = self._beyond(s, e, one_sided, d, "cpu")
                count[lo:hi] += (~beyond).sum(0)
            reach = n - self.keys if self.causal else torch.full((n,), n)
            self._no_far[(one_sided, d)] = count == reach
        return self._no_far[(one_sided, d)]

    def rows(self, q, k, lse, scale: float, causal: bool) -> None:
        """`dense.observe`'s callback on the flash path: the pending layer's q, k (H, n, hd) and each query's
        log-sum-exp lse (H, n); the probabilities are exp(scale q_i . k_j - lse_i). Far sums: each key's column
        sum over every query (`column_sums`) less what the band's queries give it (`_near`)."""
        if self.pending is None or q.shape[1] != self.n or q.shape[0] != self.heads or self.observed:
            return  # not the layer the probe announced: `flush` scores it again
        layer = self.pending[0]
        H, n = lse.shape
        spec = self.specs[layer].for_length(n)
        step = self.step
        qs, kf, lse = q[:, ::step].float() * scale, k.float(), lse[:, ::step].float()  # the sampled queries
        columns = column_sums(qs, kf, lse, causal, step).double()  # (H, n)
        for d in sorted(set(spec.dilation)):
            heads = [h for h in range(H) if spec.dilation[h] == d]
            whole = len(heads) == H
            pick = (lambda x: x) if whole else (lambda x: x[heads])
            far = pick(columns).sum(0) - self._near(pick(qs), pick(kf), pick(lse), spec.one_sided, d)
            far = far.clamp_(min=0.0).masked_fill_(self.no_far(spec.one_sided, d).to(far.device), 0.0)
            self.received.add_(far.cpu() * (step / H))
        self.observed = n
        self.from_rows.append(layer)

    def probe(self, layer, q, k, scale, softcap=None, sinks=None) -> None:
        """`model.probe`'s callback, called before each layer's attention: that layer is the pending one."""
        self.flush()
        self.pending, self.observed = (layer, q, k, scale, softcap, sinks), 0

    def observe(self, s: int, e: int, probs: torch.Tensor) -> None:
        """`dense.observe`'s callback: a chunk of the pending layer's probabilities, as the run computes them."""
        if self.pending is None or probs.shape[-1] != self.n or probs.shape[0] != self.heads:
            return  # not the layer the probe announced (or a padded run): `flush` scores it again
        first = -(-s // self.step) * self.step  # the chunk's first sampled query
        if first < e:
            self._add(self.pending[0], first, probs[:, first - s::self.step])
        self.observed += e - s

    def flush(self) -> None:
        """Finish the pending layer: done if the dense path handed over all its rows, else scored again."""
        if self.pending is None:
            return
        layer = self.pending[0]
        if self.observed == self.n:
            self.fused.append(layer)
        else:
            if self.observed:
                raise RuntimeError(f"layer {layer}: the dense path handed over {self.observed} of {self.n} query "
                                   "rows; attention_from_afar needs all or none")
            layer, q, k, *rest = self.pending
            with torch.no_grad():  # the last layer is finished after the run, outside its inference mode
                self.two_pass(layer, q(), k(), *rest)
            self.two_passes.append(layer)
        self.pending = None

    def two_pass(self, layer, q, k, scale, softcap=None, sinks=None) -> None:
        """The layer's probabilities of the sampled queries scored again from its queries and keys, in chunks."""
        n, causal, step = self.n, self.causal, self.step
        H = q.shape[0]
        kt = k.float().transpose(1, 2)
        chunk = max(1, CHUNK_BYTES // (4 * H * n)) * step  # positions per chunk (a multiple of step)
        ref = None if self.reference is None else self.reference[layer].for_length(n)
        for s in range(0, n, chunk):
            rows = self.keys[s:min(n, s + chunk):step]
            scores = soft_cap((q[:, rows].float() * scale) @ kt, softcap)  # (H, C, n)
            if causal:
                scores.masked_fill_(self.keys.view(1, n) > rows.view(-1, 1), float("-inf"))
            if ref is not None:  # the native pattern's own band (one dilation per layer: the native one is 1)
                seen = attends(rows.view(-1, 1), self.keys.view(1, n), one_sided=ref.one_sided,
                               dilation=max(ref.dilation), is_global=self.none, is_valid=self.valid, causal=causal)
                scores.masked_fill_(~seen.to(scores.device), float("-inf"))
            probs = softmax_with_sink(scores, None if sinks is None else sinks.to(scores.device), head_dim=-3)[0]
            self._add(layer, s, probs)


def far_step(n: int) -> int:
    """The query stride of the far sums on an n-token text: 1 (every query) up to `FAR_ROWS` tokens, past it the
    smallest that reads at most `FAR_ROWS` queries."""
    return max(1, -(-int(n) // FAR_ROWS))


def attention_from_afar(runner, text: str, config: AttentionConfig, question: str | None = None, queries=(),
                        fused: bool = True, step: int | None = None):
    """Run `text` under the reference (`reference_config`: full attention, or the native pattern of a model trained
    sparse; hidden states kept) and measure, per key, how much attention the reference gives it from beyond
    `config`'s window and dilation (summed over queries, averaged over heads, summed over layers): the keys the
    pattern cuts off most. Returns (the reference RunResult, (n,) numpy); `reference_name(result)` says which.
    One forward, no n x n storage: the layers it runs on the dense path (full attention) hand over what they
    compute (`dense.observe`: each query's log-sum-exp on the flash path, then one more flash call per layer for
    the column sums; the probabilities of each query chunk under a softcap or sinks); the others' scores are
    computed again from their queries and keys (`fused=False`: every layer that way, the old two-pass measure).
    step: the sums read the queries 0, step, 2 step, ... (times step), on every path: an estimate of the same sums
    that costs n x n / step instead of n x n (default `far_step(n)`: every query up to `FAR_ROWS` tokens). On the
    3,921-token contract (MiniLM) step 4 keeps the sums' order (correlation 0.9997 with every query's, 38-39 of the
    top 40 keys the same) and every advisor row's picks; it cut the reference from 3.6 s to 2.8 s (full attention
    alone 2.4 s, a plain pass at window 128 0.96 s; 2 threads)."""
    n = len(runner.tokenize(text, question).input_ids)
    specs = config.resolve(runner.num_layers, runner.num_heads)
    reference = reference_config(runner, n)
    ref_specs = reference.resolve(runner.num_layers, runner.num_heads) if reference.is_native else None
    received = torch.zeros(n, dtype=torch.float64)
    causal = getattr(runner, "causal", False)
    step = far_step(n) if step is None else max(1, int(step))
    sums = _FarSums(specs, n, causal, received, ref_specs, runner.num_heads, step)
    with probe_queries_keys(runner, sums.probe, lazy=True), \
            (observe(sums.observe, sums.rows) if fused else nullcontext()):
        full = runner.run(text, config=reference, queries=queries, question=question, capture=False,
                          output_hidden_states=True)
    sums.flush()
    return full, received.numpy()


def column_sums(qs: torch.Tensor, k: torch.Tensor, lse: torch.Tensor, causal: bool, step: int = 1) -> torch.Tensor:
    """(H, n) fp32: per key j, sum_i exp(qs_i . k_j - lse_i) over the queries i = 0, step, 2 step, ... (every one
    with step 1; only those at or after j when causal): the attention key j receives from them in all, from qs
    (H, m, hd) those queries, scaled (m = ceil(n / step)), k (H, n, hd) keys and lse (H, m) each one's
    log-sum-exp (`dense.observe`'s `rows`), without n x m storage.

    One flash-attention call with the roles swapped (the keys ask, the queries answer; causal with step 1: both
    reversed, so that i >= j is the kernel's causal mask; with a larger step an additive mask says it): its
    log-sum-exp is lse'_j = log sum_i exp(qs_i . k_j) and its output, with the value exp(m - lse_i) for query i
    (m: the head's mid lse), the average of those values under that softmax, so c_j = exp(log output_j + lse'_j -
    m). The values stay within exp(+-spread / 2) (spread: largest minus smallest lse of the head); a head whose
    spread passes 128 (a value could leave fp32's normal range) gets -lse_i in the exponent instead, as an
    additive mask (slower, exact)."""
    H, m, hd = qs.shape
    n = k.shape[1]
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    high, low = lse.max(1, keepdim=True).values, lse.min(1, keepdim=True).values  # (H, 1)
    wide = float((high - low).max()) > 128.0
    if not wide:
        mid = (high + low) / 2
        value = torch.exp(mid - lse)[..., None].expand(H, m, hd).contiguous()  # (H, m, hd)
    if causal and step > 1:  # key j hears the sampled queries at or after it: none past the last one
        seen = (torch.arange(m, device=k.device) * step).view(1, m) >= torch.arange(n, device=k.device).view(n, 1)
        reached = int(seen[:, -1].sum())  # keys 0 .. (m - 1) * step
        mask = torch.zeros(reached, m, device=k.device).masked_fill_(~seen[:reached], float("-inf"))
        keys, out = k[:, :reached], k.new_zeros(H, n)
        if not wide:
            o, swapped = flash(keys[None], qs[None], value[None], attn_mask=mask.expand(1, H, reached, m), scale=1.0)
            out[:, :reached] = torch.exp(o[0, :, :, 0].log() + swapped[0] - mid)
            return out
        for h in range(H):  # -lse_i in the exponent, one head at a time (a (reached, m) mask each)
            _, swapped = flash(keys[None, h:h + 1], qs[None, h:h + 1], qs[None, h:h + 1],
                               attn_mask=(mask - lse[h].view(1, m))[None, None], scale=1.0)
            out[h, :reached] = torch.exp(swapped[0, 0])
        return out
    flip = (lambda x: x.flip(1)) if causal else (lambda x: x)
    if not wide:
        out, swapped = flash(flip(k)[None], flip(qs)[None], flip(value)[None], is_causal=causal, scale=1.0)
        return flip(torch.exp(out[0, :, :, 0].log() + swapped[0] - mid))
    bias = flip(-lse).view(1, H, 1, m).expand(1, H, n, m)
    _, swapped = flash(flip(k)[None], flip(qs)[None], flip(qs)[None], is_causal=causal, attn_mask=bias, scale=1.0)
    return flip(torch.exp(swapped[0]))


def finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def blind_spots(fidelity: Fidelity, top: int = 10) -> list[int]:
    """The `top` positions whose per-token value is largest (most hurt), largest first."""
    v = np.nan_to_num(np.asarray(fidelity.per_token, dtype=float), nan=-np.inf)
    order = np.argsort(-v, kind="stable")[:top]
    return [int(i) for i in order if np.isfinite(v[i])]

"""Task heads: turn the encoder's last hidden state into Predictions.

Each head reuses the checkpoint's own head module (lm_head, qa_outputs, classifier) on lfviz's hidden states;
a plain encoder (the embedded sentence model, a bare LongformerModel) gets sentence similarity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .predictions import Predictions


def mean_pool(hidden: torch.Tensor) -> torch.Tensor:
    """(n, D) -> (D,) unit vector: sentence-transformers' mean pooling + normalisation."""
    return F.normalize(hidden.float().mean(0), dim=-1)


def similarity(hidden: torch.Tensor, queries: list[str], query_embeddings: torch.Tensor) -> Predictions:
    """hidden (n, D); query_embeddings (Q, D) unit vectors."""
    doc = mean_pool(hidden)
    tok = F.normalize(hidden.float(), dim=-1)  # (n, D)
    if not queries:
        return Predictions("similarity", [], [(tok @ doc).tolist()], ["document"],
                           note="no queries given: the strip shows each token's similarity to the whole document")
    scores = (query_embeddings @ doc).tolist()
    order = sorted(range(len(queries)), key=lambda i: -scores[i])
    rows = [{"label": queries[i], "score": scores[i]} for i in order]
    strip = (tok @ query_embeddings.T).T  # (Q, n)
    return Predictions("similarity", rows, [strip[i].tolist() for i in order], [queries[i] for i in order])


def fill_mask(hidden, input_ids: list[int], lm_head, tokenizer, top_k: int) -> Predictions:
    mask_id = tokenizer.mask_token_id
    positions = [i for i, t in enumerate(input_ids) if t == mask_id]
    if not positions:
        return Predictions("fill-mask", note=f"put {tokenizer.mask_token} in the text to see fill-mask predictions")
    probs = torch.softmax(lm_head(hidden[positions]).float(), dim=-1)  # (M, V)
    top = probs.topk(top_k, dim=-1)
    rows = []
    for pos, p, ids in zip(positions, top.values.tolist(), top.indices.tolist()):
        for score, tid in zip(p, ids):
            token = tokenizer.convert_ids_to_tokens(tid)
            rows.append({"label": f"[{pos}] {token}", "score": score, "position": pos, "token": token})
    rows.sort(key=lambda r: (r["position"], -r["score"]))
    return Predictions("fill-mask", rows)


def answer_spans(hidden, input_ids, context: list[bool], qa_outputs, tokenizer, top_k: int,
                 max_answer_tokens: int = 30) -> Predictions:
    logits = qa_outputs(hidden).float()  # (n, 2)
    start, end = torch.log_softmax(logits[:, 0], -1), torch.log_softmax(logits[:, 1], -1)
    ctx = torch.tensor(context, dtype=torch.bool, device=hidden.device)
    if not ctx.any():
        return Predictions("question-answering", note="no context tokens to answer from")
    n = len(input_ids)
    pair = start.view(n, 1) + end.view(1, n)  # (n, n) log p(start) + log p(end)
    i = torch.arange(n, device=hidden.device)
    ok = (i.view(1, n) >= i.view(n, 1)) & (i.view(1, n) - i.view(n, 1) < max_answer_tokens)
    ok &= ctx.view(n, 1) & ctx.view(1, n)
    pair = pair.masked_fill(~ok, float("-inf"))
    best = pair.flatten().topk(min(top_k, int(ok.sum()))).indices.tolist()
    rows = []
    for flat in best:
        s, e = divmod(flat, n)
        text = tokenizer.decode(input_ids[s:e + 1]).strip()
        rows.append({"label": f"{text} [{s}:{e}]", "score": float(pair[s, e].exp()), "start": s, "end": e,
                     "text": text})
    return Predictions("question-answering", rows)


def classify(hidden, classifier, id2label: dict) -> Predictions:
    probs = torch.softmax(classifier(hidden[None]).float()[0], dim=-1).tolist()  # head reads the first token
    rows = [{"label": str(id2label.get(i, f"LABEL_{i}")), "score": p} for i, p in enumerate(probs)]
    rows.sort(key=lambda r: -r["score"])
    return Predictions("classification", rows)

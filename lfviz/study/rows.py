"""What a study measures on one document: one row per strategy (`SCHEMA`), each a run against the same weights
under the reference pattern (`analysis.fidelity.reference_config`: full attention, or the native pattern of a model
trained with sliding windows), and the `Worker` that holds one loaded model for it (the local engine's, and each Ray
actor's)."""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import torch

from ..analysis.advisor import advise
from ..analysis.fidelity import attention_from_afar, measure, reference_config
from ..config import AttentionConfig
from .corpus import Doc
from .strategies import Strategy, parse_strategies, placement

SCHEMA = pa.schema([
    ("doc", pa.int64()), ("id", pa.string()), ("strategy", pa.string()), ("tokens", pa.int64()),
    ("global_tokens", pa.int64()), ("positions", pa.list_(pa.int64())), ("objective", pa.string()),
    ("gap", pa.float64()),  # 0 = as the reference (`fidelity.gap`)
    ("pooled_cosine", pa.float64()), ("perplexity_ratio", pa.float64()),  # encoders / causal LMs
    ("divergence_mean", pa.float64()), ("divergence_last", pa.float64()),  # per-layer 1 - cos: mean, last layer
    ("divergence_worst_layer", pa.int64()), ("prediction_change_max", pa.float64()),
    ("truncated", pa.bool_()), ("seconds", pa.float64()), ("error", pa.string()),
])
COLUMNS = SCHEMA.names


def _row(doc: Doc, strategy: Strategy, **values) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(doc=doc.index, id=doc.id, strategy=strategy.name, positions=[], truncated=False)
    row.update(values)
    return row


def _reference(runner, doc: Doc, base: AttentionConfig, queries, far: bool):
    if far:  # the advisor shortlists from the attention full attention gives across the window
        return attention_from_afar(runner, doc.text, base, doc.question, queries)
    n = len(runner.tokenize(doc.text, doc.question).input_ids)
    full = runner.run(doc.text, config=reference_config(runner, n), queries=queries, question=doc.question,
                      capture=False, output_hidden_states=True)  # full attention, or the native pattern
    return full, None


def study_document(runner, doc: Doc, config: AttentionConfig, strategies: list[Strategy],
                   objective: str = "auto", queries=()) -> list[dict]:
    """One row per strategy for one document (see SCHEMA). Whatever fails is recorded in the row's `error`."""
    if doc.error:
        return [_row(doc, s, error=doc.error) for s in strategies]
    base = config.replace(global_tokens=())
    started = time.perf_counter()
    try:
        t = runner.tokenize(doc.text, doc.question)
        full, far = _reference(runner, doc, base, list(queries), any(s.kind == "advisor" for s in strategies))
    except Exception as e:  # noqa: BLE001 - one document's failure is its rows' error, not the study's
        return [_row(doc, s, error=f"{type(e).__name__}: {e}") for s in strategies]
    shared = (time.perf_counter() - started) / len(strategies)  # the reference run, spread over the rows
    rows = []
    for s in strategies:
        t0 = time.perf_counter()
        try:
            if s.kind == "advisor":
                positions = advise(runner, doc.text, base, min(s.k, len(t.input_ids)), objective, None,
                                   queries=list(queries), question=doc.question, reference=(full, far)).positions
            else:
                positions = placement(s, t.tokens, t.offsets, doc.text, t.question_tokens)
            res = runner.run(doc.text, config=base.replace(global_tokens=tuple(positions)), queries=list(queries),
                             question=doc.question, capture=False, output_hidden_states=True)
            fid = measure(full, res, objective)
            layers = np.asarray(fid.per_layer, dtype=float)
            changes = [abs(r["delta"]) for r in fid.predictions if r.get("delta") is not None]
            rows.append(_row(
                doc, s, tokens=res.n, global_tokens=len(positions), positions=[int(p) for p in positions],
                objective=fid.objective, gap=float(fid.gap),
                pooled_cosine=fid.document.get("pooled-embedding cosine"),
                perplexity_ratio=fid.document.get("perplexity ratio"),
                divergence_mean=float(layers.mean()) if len(layers) else None,
                divergence_last=float(layers[-1]) if len(layers) else None,
                divergence_worst_layer=int(layers.argmax()) if len(layers) else None,
                prediction_change_max=float(max(changes)) if changes else None,
                truncated=any("only the first" in w for w in t.warnings),
                seconds=round(time.perf_counter() - t0 + shared, 4)))
        except Exception as e:  # noqa: BLE001
            rows.append(_row(doc, s, tokens=len(t.input_ids), error=f"{type(e).__name__}: {e}"))
    return rows


class Worker:
    """Loads the model once and studies documents with it: the local engine's loop and each Ray actor."""

    def __init__(self, model: str, config: dict, strategies: list[str], objective: str, queries: list[str],
                 device: str = "auto", max_tokens: int | None = None, threads: int | None = None, runner=None):
        from ..model.loading import load_runner

        if threads:
            torch.set_num_threads(int(threads))
        kwargs = {} if max_tokens is None else {"max_tokens": max_tokens}
        self.runner = runner or load_runner(model, device=device, **kwargs)
        self.config = AttentionConfig.from_dict(config)
        self.plan = parse_strategies(",".join(strategies))
        self.objective, self.queries = objective, queries

    def study(self, doc: Doc) -> list[dict]:
        with torch.no_grad():
            return study_document(self.runner, doc, self.config, self.plan, self.objective, self.queries)

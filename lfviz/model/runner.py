"""The Longformer runner: tokenize, run lfviz's encoder with a configuration, capture attention, predict."""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import torch

from ..attention.banded import resolve_impl
from ..config import AttentionConfig
from . import heads
from .base import RunnerBase
from .capture import Capture, capture_attention
from .encoder import LongformerEncoder
from .result import RunResult


def device_label(device: torch.device) -> str:
    """"CPU", or "GPU (<its name>)"."""
    return f"GPU ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "CPU"


@dataclass
class Tokenized:
    input_ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]] | None  # characters of the text (never of the question); (0, 0): special or question
    context: list[bool]  # tokens an answer may come from (the document part of a question/document pair)
    question_tokens: list[int]  # positions of the question's tokens (QA's usual global tokens)
    token_type_ids: list[int] | None
    warnings: list[str]


class Runner(RunnerBase):
    """A loaded model ready to run. Shared safely between threads: settings are per call, never stored."""

    def __init__(self, model_id: str, model, tokenizer, task: str, device: torch.device,
                 description: str = "", converted: bool = False):
        self.model_id, self.model, self.tokenizer, self.task = model_id, model, tokenizer, task
        self.device, self.description, self.converted = device, description, converted
        base = getattr(model, "longformer", model)
        self.config = base.config
        self.encoder = LongformerEncoder(base).eval()
        self._query_cache: dict[str, torch.Tensor] = {}
        self._query_lock = threading.Lock()

    # -- facts the app and the checks need ----------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return self.encoder.num_layers

    @property
    def num_heads(self) -> int:
        return self.encoder.num_heads

    @property
    def max_tokens(self) -> int:
        """Longest input the position embeddings cover (HF numbers positions from pad_token_id + 1)."""
        return self.config.max_position_embeddings - (self.config.pad_token_id + 1)

    @property
    def native_windows(self) -> tuple[int, ...]:
        """The checkpoint's own `attention_window` per layer (two-sided, as lfviz's window)."""
        w = self.config.attention_window
        return tuple(w) if isinstance(w, (list, tuple)) else (w,) * self.num_layers

    @property
    def device_description(self) -> str:
        """Where and how attention runs, e.g. "GPU (NVIDIA H100 80GB HBM3), float16, FlexAttention"."""
        kernel = {"flex": "FlexAttention", "blocked": "blocked kernel"}[
            resolve_impl("auto", self.device, self.config.hidden_size // self.num_heads)]
        return f"{device_label(self.device)}, {str(self.dtype).replace('torch.', '')}, {kernel}"

    # -- input ----------------------------------------------------------------------------------------------------
    def tokenize(self, text: str, question: str | None = None) -> Tokenized:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the text is empty: paste or upload a document with some words in it")
        tok = self.tokenizer
        args = (question, text) if question else (text,)
        enc = tok(*args, add_special_tokens=True, truncation=False, return_offsets_mapping=tok.is_fast,
                  verbose=False)
        ids = list(enc["input_ids"])
        if all(i in tok.all_special_ids for i in ids):
            raise ValueError("the text has no readable characters (only spaces, invisible or control characters): "
                             "paste or upload a document with some words in it")
        seq = enc.sequence_ids() if tok.is_fast else [None if t in tok.all_special_ids else 0 for t in ids]
        doc_seq = 1 if question else 0
        context = [s == doc_seq for s in seq]
        question_tokens = [i for i, s in enumerate(seq) if question and s == 0]
        # offsets index the document only: a question token's characters are the question's, not the text's
        offsets = [tuple(o) if s == doc_seq else (0, 0) for o, s in zip(enc["offset_mapping"], seq)] \
            if tok.is_fast else None
        tt = list(enc["token_type_ids"]) if "token_type_ids" in enc and self.config.type_vocab_size > 1 else None
        notes = []
        if len(ids) > self.max_tokens:
            keep = self.max_tokens - 1
            notes.append(f"Truncated: the text has {len(ids):,} tokens but {self.model_id} has positions for "
                         f"{self.max_tokens:,}: only the first {self.max_tokens:,} tokens are used (the rest is cut off)")
            end_id = tok.sep_token_id if tok.sep_token_id is not None else ids[-1]
            ids = ids[:keep] + [end_id]
            context = context[:keep] + [False]
            offsets = offsets[:keep] + [(0, 0)] if offsets is not None else None
            tt = tt[:keep] + [tt[keep - 1]] if tt is not None else None
            question_tokens = [q for q in question_tokens if q < keep]
        tokens = tok.convert_ids_to_tokens(ids)
        unknown = sum(1 for i in ids if i == tok.unk_token_id) if tok.unk_token_id is not None else 0
        if unknown >= max(3, 0.05 * len(ids)):  # a script or emoji the vocabulary lacks
            notes.append(f"{unknown:,} of {len(ids):,} tokens ({unknown / len(ids):.0%}) are unknown to this model's "
                         f"vocabulary ({tok.unk_token}): it sees each as the same blank token, so attention and "
                         f"predictions say little about that text. The embedded model reads English.")
        return Tokenized(ids, tokens, offsets, context, question_tokens, tt, notes)

    # -- running --------------------------------------------------------------------------------------------------
    def run(self, text: str | None = None, *, input_ids=None, config: AttentionConfig | None = None,
            queries=(), question: str | None = None, capture: bool = True, capture_layers=None,
            capture_dtype: torch.dtype = torch.float32, keep_on_device: bool = False,
            output_hidden_states: bool = False, top_k: int = 5) -> RunResult:
        """Run one document with one configuration.

        text or input_ids (not both); config: AttentionConfig (default: window 512, no dilation, no global);
        queries: texts to rank by similarity (similarity models); question: asked of the text (QA models);
        capture: record attention (capture_layers: which layers, None = all; capture_dtype: storage dtype;
        keep_on_device: leave captured weights on the GPU instead of moving them to the CPU).
        """
        config = config if config is not None else AttentionConfig()
        if not isinstance(config, AttentionConfig):
            raise ValueError(f"config must be an lfviz.AttentionConfig, got {type(config).__name__}")
        if (text is None) == (input_ids is None):
            raise ValueError("give either text=... or input_ids=..., not both and not neither")
        if text is not None:
            t = self.tokenize(text, question)
        else:
            ids = [int(i) for i in (input_ids.tolist() if torch.is_tensor(input_ids) else input_ids)]
            if not ids:
                raise ValueError("input_ids is empty: give at least one token id")
            if len(ids) > self.max_tokens:
                raise ValueError(f"input_ids has {len(ids)} tokens but {self.model_id} has positions for "
                                 f"{self.max_tokens}: cut it to at most {self.max_tokens} ids")
            bad = [i for i in ids if not 0 <= i < self.config.vocab_size]
            if bad:
                raise ValueError(f"token id {bad[0]} is outside the vocabulary (0..{self.config.vocab_size - 1})")
            t = Tokenized(ids, self.tokenizer.convert_ids_to_tokens(ids), None, [True] * len(ids), [], None, [])
        for note in t.warnings:
            warnings.warn(note, stacklevel=2)
        specs = config.resolve(self.num_layers, self.num_heads)
        global_tokens = config.check_globals(len(t.input_ids))
        ids = torch.tensor(t.input_ids, dtype=torch.long, device=self.device)
        tt = torch.tensor(t.token_type_ids, device=self.device) if t.token_type_ids is not None else None
        with torch.inference_mode():
            if capture:
                store = None if keep_on_device else torch.device("cpu")
                with capture_attention(self.encoder, capture_layers, capture_dtype, store) as session:
                    out = self.encoder(ids, specs, global_tokens, token_type_ids=tt, capture=session,
                                       output_hidden_states=output_hidden_states)
                captured = session.capture
            else:
                out = self.encoder(ids, specs, global_tokens, token_type_ids=tt,
                                   output_hidden_states=output_hidden_states)
                captured = Capture()
            predictions = self._predict(out.last_hidden_state, t, queries, top_k)
        hs = tuple(h.float().cpu() for h in out.hidden_states) if out.hidden_states is not None else None
        return RunResult(t.tokens, t.input_ids, out.last_hidden_state.float().cpu(), captured, predictions, config,
                         self.model_id, list(t.warnings), hs, t.offsets, text,
                         [q for q in (queries or ()) if isinstance(q, str) and q.strip()], question)

    def warm_up(self, tokens: int = 1024) -> None:
        """Run one input of `tokens` tokens (default configuration, first token global, capture on), so that
        one-time costs (on a GPU, FlexAttention's compilation: seconds) are paid here, not by the first document."""
        n = min(tokens, self.max_tokens)
        ids = torch.randint(5, self.config.vocab_size, (n,), generator=torch.Generator().manual_seed(0))
        self.run(input_ids=ids, config=AttentionConfig(global_tokens=(0,)), capture_dtype=torch.float16,
                 keep_on_device=True)

    def embed_queries(self, queries) -> torch.Tensor:
        """(Q, D) unit vectors; each query runs alone with full attention (its window covers it)."""
        rows = []
        for q in queries:
            with self._query_lock:
                cached = self._query_cache.get(q)
            if cached is None:
                t = self.tokenize(q)
                n = len(t.input_ids)
                full = AttentionConfig(window=2 * n).resolve(self.num_layers, self.num_heads)
                ids = torch.tensor(t.input_ids, device=self.device)
                tt = torch.tensor(t.token_type_ids, device=self.device) if t.token_type_ids else None
                with torch.inference_mode():
                    cached = heads.mean_pool(self.encoder(ids, full, token_type_ids=tt).last_hidden_state)
                with self._query_lock:
                    self._query_cache[q] = cached
            rows.append(cached)
        return torch.stack(rows) if rows else torch.zeros(0, self.config.hidden_size, device=self.device)

    def _predict(self, hidden, t: Tokenized, queries, top_k: int):
        if self.task == "fill-mask":
            return heads.fill_mask(hidden, t.input_ids, self.model.lm_head, self.tokenizer, top_k)
        if self.task == "question-answering":
            return heads.answer_spans(hidden, t.input_ids, t.context, self.model.qa_outputs, self.tokenizer, top_k)
        if self.task == "classification":
            return heads.classify(hidden, self.model.classifier, self.config.id2label)
        queries = [q for q in (queries or ()) if isinstance(q, str) and q.strip()]
        return heads.similarity(hidden, queries, self.embed_queries(queries))

    def suggest_global_tokens(self, text: str, question: str | None = None) -> tuple[int, ...]:
        """Where this model's task usually puts global attention: the question tokens for QA, else the first."""
        t = self.tokenize(text, question)
        if self.task == "question-answering" and t.question_tokens:
            return tuple(t.question_tokens)
        return (0,)

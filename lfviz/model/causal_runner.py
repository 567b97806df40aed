"""The causal-LM runner: tokenize, run a Hugging Face causal LM under lfviz's causal Longformer pattern (window,
dilation, sink/global tokens), capture attention per query head, and predict the next token everywhere.

Predictions of a causal LM (kind "next-token"): the perplexity of the text (exp of the mean next-token loss over
tokens 1..n-1), and the top-k tokens that would come next after the text; token_scores holds each token's loss
(nats; NaN for the first token, which nothing predicts), the strip laid over the text.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from ..config import AttentionConfig
from . import families
from .base import RunnerBase
from .capture import Capture, CaptureSession
from .causal_lm import ATTENTION, longformer_pattern
from .predictions import Predictions
from .result import RunResult
from .runner import Tokenized, device_label


def token_losses(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """(n,) float32 next-token loss of each token given the ones before it (nats); position 0 is NaN."""
    loss = F.cross_entropy(logits[:-1].float(), input_ids[1:], reduction="none")
    return torch.cat([loss.new_full((1,), float("nan")), loss])


LOGIT_ROWS = 2048  # positions per block of the output head: the head's weight is read once per block
TILE_BYTES = 32 * 2**20  # fp32 logits of one tile (rows x columns), reused; whole, (n, V) at 4k tokens is 4.2 GB (Gemma 3)


def logit_tile(n: int, vocab_size: int) -> tuple[int, int]:
    """(rows, columns) of the output head's logits computed at a time for n positions: up to LOGIT_ROWS rows and
    TILE_BYTES of fp32 between them, the columns a multiple of 256 where that many fit (2,000 rows of Gemma 3's
    262,144 words: 2,000 x 4,096, 64 tiles a block; of SmolLM2's 49,152: 12 tiles)."""
    rows = max(1, min(n, LOGIT_ROWS))
    cols = TILE_BYTES // (4 * rows)
    return rows, max(1, min(vocab_size, cols - cols % 256 if cols >= 256 else cols))


def logit_rows(vocab_size: int) -> int:
    """The head's buffer counted in rows of vocab_size fp32 logits (what a memory estimate multiplies by V * 4):
    32 for Gemma 3 (262,144), 170 for SmolLM2 (49,152). The logits themselves are tiled (`logit_tile`)."""
    return max(1, TILE_BYTES // (4 * vocab_size))


@torch.inference_mode()  # statistics of a forward, never trained through
def next_token_stats(weight: torch.Tensor, hidden: torch.Tensor, input_ids: torch.Tensor, top_k: int,
                     rows: int | None = None, start: int = 0, post=None, bias: torch.Tensor | None = None,
                     cols: int | None = None):
    """From the last hidden state (n, D) through the output head `weight` (V, D) (plus `bias` (V,), then `post`,
    the family's elementwise logit mechanisms, if any), in tiles of `rows` positions x `cols` words into one reused
    buffer (default `logit_tile`: a few MB, never the whole (n, V) logits nor even whole rows of them):
    (n,) float32 next-token losses as `token_losses` gives them, and the top-k next tokens at every position, ids
    (n, k) and probabilities (n, k) (top_k=0: none, (n, 0)). start: rows before it are skipped (their losses NaN,
    their top-k ids -1 and probabilities NaN): a caller that already has them from a run whose hidden states
    agree there computes only the rest.

    Exact, tile by tile along the vocabulary (each row's logits are seen once, while the tile is in cache): the
    log-sum-exp from each tile's max m and sum of exp(x - m), merged into a running max and rescaled sum (float64);
    the target's logit picked in the tile that holds it; the top k merged into a running top k, a tile searched
    only for the rows whose tile max beats their running k-th value. Among equal values the index kept may differ
    from torch.topk's over the whole row (neither promises one)."""
    n, V = hidden.shape[0], weight.shape[0]
    if top_k > V:
        raise ValueError(f"top_k={top_k} is more than the vocabulary's {V} words: ask for at most {V}")
    loss = torch.full((n,), float("nan"))
    ids = torch.full((n, top_k), -1, dtype=torch.long)
    probs = torch.full((n, top_k), float("nan"))
    stop = n if top_k else n - 1  # without top-k the last row predicts nothing anyone reads
    if start >= stop:
        return loss, ids, probs
    rows = rows or logit_tile(stop - start, V)[0]
    cols = min(V, cols or logit_tile(min(rows, stop - start), V)[1])
    dev = hidden.device
    buf = torch.empty(min(rows, stop - start), cols, dtype=torch.float32, device=dev)
    w = weight.t()
    plain = post is None and bias is None and hidden.dtype == w.dtype == torch.float32
    for s in range(start, stop, rows):
        x = hidden[s:min(stop, s + rows)]
        r = len(x)
        target = input_ids[s + 1:s + 1 + r].to(dev)  # the token after each row; the last row of the text has none
        picked = torch.empty(len(target), device=dev)  # (r',) the next token's logit
        run_max = torch.full((r,), float("-inf"), dtype=torch.float64, device=dev)
        run_sum = torch.zeros(r, dtype=torch.float64, device=dev)  # sum of exp(logit - run_max) so far
        top_v = torch.full((r, top_k), float("-inf"), device=dev)  # (r, k) running top k, sorted
        top_i = torch.zeros((r, top_k), dtype=torch.long, device=dev)
        for c in range(0, V, cols):
            width = min(cols, V - c)
            tile = buf[:r, :width]
            if plain:
                torch.mm(x, w[:, c:c + width], out=tile)  # into the reused buffer: no fresh allocation per tile
            else:
                y = x @ w[:, c:c + width]
                y = y + bias[c:c + width] if bias is not None else y
                tile.copy_(post(y) if post is not None else y)
            m = tile.amax(1)  # (r,)
            if top_k:
                need = m > top_v[:, -1]  # rows where this tile holds a value above their running k-th
                sel = None if bool(need.all()) else need.nonzero()[:, 0]
                if sel is None or len(sel):
                    part = tile if sel is None else tile[sel]
                    tv, ti = part.topk(min(top_k, width), 1)
                    cand_v = torch.cat([top_v if sel is None else top_v[sel], tv], 1)
                    cand_i = torch.cat([top_i if sel is None else top_i[sel], ti + c], 1)
                    best = cand_v.topk(top_k, 1)
                    if sel is None:
                        top_v, top_i = best.values, cand_i.gather(1, best.indices)
                    else:
                        top_v[sel], top_i[sel] = best.values, cand_i.gather(1, best.indices)
            hit = ((target >= c) & (target < c + width)).nonzero()[:, 0]
            if len(hit):
                picked[hit] = tile[hit, target[hit] - c]
            # this tile's sum of exp(x - m), in place over the buffer (its logits are not needed after this)
            tile_sum = tile.sub_(m[:, None]).exp_().sum(1).double()
            m = m.double()
            new_max = torch.maximum(run_max, m)
            run_sum = run_sum * (run_max - new_max).exp() + tile_sum * (m - new_max).exp()
            run_max = new_max
        lse = (run_max + run_sum.log()).float()  # (r,)
        loss[s + 1:s + 1 + len(target)] = (lse[:len(target)] - picked).cpu()
        if top_k:
            ids[s:s + r] = top_i.cpu()
            probs[s:s + r] = (top_v - lse[:, None]).exp().cpu()
    return loss, ids, probs


def leading_bos(tokenizer) -> int | None:
    """The BOS id when the tokenizer starts every text with it by default (Gemma, Llama 3: their models expect
    it), else None (SmolLM2's adds nothing)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bos if ids and ids[0] == bos else None


def perplexity(losses, start: int = 1, stop: int | None = None) -> float:
    """exp(mean loss) over tokens [start, stop) (token 0 has no loss)."""
    region = torch.as_tensor(losses, dtype=torch.float64)[max(1, start):stop]
    return float(region.mean().exp()) if len(region) else float("nan")


class CausalRunner(RunnerBase):
    """A loaded causal LM ready to run; shared safely between threads (the pattern is per call and per thread).
    Its family (`families.py`) says how its native pattern is read and what else it needs; a family lfviz cannot
    run exactly is refused here. Logits are the decoder's last hidden state through the output head, then the
    family's logit scale (Cohere) and final-logit softcap (Gemma 2), as its own forward does."""

    task = "causal-lm"
    causal = True

    def __init__(self, model_id: str, model, tokenizer, device: torch.device, description: str = ""):
        if model.config._attn_implementation != ATTENTION:
            model.set_attn_implementation(ATTENTION)
        self.family = families.family(model.config)  # ValueError naming why, for a family lfviz cannot run exactly
        self.bos = leading_bos(tokenizer)
        self.model_id, self.model, self.tokenizer, self.device = model_id, model, tokenizer, device
        self.config = model.config
        self._native = families.native_windows(self.config, self.max_tokens)  # checks the layer types too
        # "converted": trained with full attention, so any window is a pattern these weights never learned
        self.description, self.converted = description, not self.trained_sparse

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        """Query heads: dilation is set per query head, and captures have one row set per query head."""
        return self.config.num_attention_heads

    @property
    def max_tokens(self) -> int:
        return self.config.max_position_embeddings

    @property
    def native_windows(self) -> tuple[int, ...]:
        """lfviz's causal window of each layer under the model's own pattern (2 * (S - 1) on sliding layers)."""
        return self._native

    @property
    def trained_sparse(self) -> bool:
        return families.trained_sparse(self.config)

    @property
    def device_description(self) -> str:
        return f"{device_label(self.device)}, {str(self.dtype).replace('torch.', '')}, blocked kernel (causal)"

    def tokenize(self, text: str, question: str | None = None) -> Tokenized:
        """The text's tokens as the model reads them: the BOS first when the tokenizer adds one by default (Gemma;
        SmolLM2 adds none), no other special token; a question is put before the text. Longer than the model's
        positions: cut, with a note."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the text is empty: paste or upload a document with some words in it")
        full = f"{question.strip()}\n\n{text}" if question and question.strip() else text
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=self.tokenizer.is_fast,
                             verbose=False)
        ids = list(enc["input_ids"])
        if not ids:
            raise ValueError("the text has no readable characters: paste or upload a document with some words in it")
        shift = len(full) - len(text)  # offsets into `text`: the question's own tokens get (0, 0)
        offsets = [(max(0, s - shift), max(0, e - shift)) if s >= shift else (0, 0)
                   for s, e in enc["offset_mapping"]] if self.tokenizer.is_fast else None
        question_tokens = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if s < shift] if shift and offsets else []
        if self.bos is not None:  # what the tokenizer's default adds, and what the model was trained to see first
            ids = [self.bos] + ids
            offsets = [(0, 0)] + offsets if offsets is not None else None
            question_tokens = [q + 1 for q in question_tokens]
        notes = []
        if len(ids) > self.max_tokens:
            notes.append(f"Truncated: the text has {len(ids):,} tokens but {self.model_id} has positions for "
                         f"{self.max_tokens:,}: only the first {self.max_tokens:,} tokens are used")
            ids, offsets = ids[:self.max_tokens], offsets[:self.max_tokens] if offsets else None
            question_tokens = [q for q in question_tokens if q < self.max_tokens]
        return Tokenized(ids, self.token_strings(ids), offsets, [True] * len(ids), question_tokens, None, notes)

    def token_strings(self, ids) -> list[str]:
        """Each token as the text it stands for (byte-level BPE's "Ġ" shown as the space it is)."""
        return [self.tokenizer.convert_tokens_to_string([t]) for t in self.tokenizer.convert_ids_to_tokens(ids)]

    def run(self, text: str | None = None, *, input_ids=None, config: AttentionConfig | None = None, queries=(),
            question: str | None = None, capture: bool = True, capture_layers=None,
            capture_dtype: torch.dtype = torch.float32, keep_on_device: bool = False,
            output_hidden_states: bool = False, top_k: int = 5) -> RunResult:
        """Run one text with one configuration (default: the model's native pattern when it was trained with
        sliding layers, else window 512, i.e. 256 previous tokens; no sink).
        Same arguments as `Runner.run`; queries are ignored (a language model predicts the text itself)."""
        config = config if config is not None else self.default_config()
        if (text is None) == (input_ids is None):
            raise ValueError("give either text=... or input_ids=..., not both and not neither")
        if text is not None:
            t = self.tokenize(text, question)
        else:
            ids = [int(i) for i in (input_ids.tolist() if torch.is_tensor(input_ids) else input_ids)]
            if not ids or len(ids) > self.max_tokens:
                raise ValueError(f"input_ids must hold 1 to {self.max_tokens:,} token ids, got {len(ids):,}")
            t = Tokenized(ids, self.token_strings(ids), None, [True] * len(ids), [], None, [])
        for note in t.warnings:
            warnings.warn(note, stacklevel=2)
        specs = config.resolve(self.num_layers, self.num_heads)
        global_tokens = config.check_globals(len(t.input_ids))
        ids = torch.tensor(t.input_ids, dtype=torch.long, device=self.device)
        session = None
        if capture:
            if capture_layers is not None and not all(0 <= l < self.num_layers for l in capture_layers):
                raise ValueError(f"capture layers {sorted(capture_layers)} do not exist: the model has layers "
                                 f"0..{self.num_layers - 1}")
            session = CaptureSession(capture_layers, capture_dtype, None if keep_on_device else torch.device("cpu"))
        with torch.inference_mode(), longformer_pattern(specs, global_tokens, session):
            # the decoder and the output head apart: the last hidden state without keeping every layer's
            out = self.model.get_decoder()(ids[None], output_hidden_states=output_hidden_states, use_cache=False)
            # losses and (n, k) what each position expects next, a few hundred rows of logits at a time
            losses, top_ids, probs = self.next_token_stats(out.last_hidden_state[0], ids, top_k)
        words = self.token_strings(top_ids.flatten().tolist())
        next_tokens = [[(words[i * top_k + j], round(float(p), 5)) for j, p in enumerate(row)]
                       for i, row in enumerate(probs.tolist())]
        rows = [{"label": "perplexity", "score": perplexity(losses.tolist())}]
        rows += [{"label": f"next: {w!r}", "score": p} for w, p in next_tokens[-1]]
        predictions = Predictions("next-token", rows, [losses.tolist()], ["next-token loss (nats)"],
                                  note="perplexity of the text; the strip is each token's loss given the ones before it",
                                  next_tokens=next_tokens)
        hs = tuple(h[0].float().cpu() for h in out.hidden_states) if output_hidden_states else None
        return RunResult(t.tokens, t.input_ids, out.last_hidden_state[0].float().cpu(),
                         session.capture if session else Capture(), predictions, config, self.model_id,
                         list(t.warnings), hs, t.offsets, text, [], question)

    def next_token_stats(self, hidden: torch.Tensor, ids: torch.Tensor, top_k: int, start: int = 0):
        """`next_token_stats` through this model's output head: (n,) losses, (n, k) top ids and probabilities."""
        head = self.model.get_output_embeddings()
        mechanisms, probe = families.apply_output_mechanisms, hidden[:0]  # it returns its input when none applies
        post = None if mechanisms(self.config, probe) is probe else (lambda logits: mechanisms(self.config, logits))
        return next_token_stats(head.weight, hidden, ids, top_k, start=start, post=post, bias=head.bias)

    def suggest_global_tokens(self, text: str, question: str | None = None) -> tuple[int, ...]:
        """The usual sinks of a model trained with full attention run under a window: the first four tokens. A model
        trained with a sliding window starts with none: its native pattern is what it was trained with."""
        if self.trained_sparse:
            return ()
        return tuple(range(min(4, len(self.tokenize(text, question).input_ids))))

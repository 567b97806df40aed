"""One run's outcome as plain data, and its exact round trip through a .safetensors file."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save, save_file

from ..attention.layout import AttentionWeights
from ..config import AttentionConfig
from ..textspec import format_positions
from .capture import Capture
from .predictions import Predictions

FORMAT = "lfviz-run/1"


@dataclass
class RunResult:
    """tokens/input_ids: the n tokens the model saw; last_hidden_state: (n, D) on the CPU;
    capture: per-layer attention (empty when capture was off); hidden_states: embeddings + one (n, D) per layer,
    when asked for; offsets: (start, end) character span of each token in the text ((0, 0) for special tokens);
    queries, question: what the run was asked (similarity queries, a QA question)."""

    tokens: list[str]
    input_ids: list[int]
    last_hidden_state: torch.Tensor
    capture: Capture
    predictions: Predictions
    config: AttentionConfig
    model_id: str
    warnings: list[str] = field(default_factory=list)
    hidden_states: tuple[torch.Tensor, ...] | None = None
    offsets: list[tuple[int, int]] | None = None
    text: str | None = None
    queries: list[str] = field(default_factory=list)
    question: str | None = None

    @property
    def n(self) -> int:
        return len(self.input_ids)

    def save(self, path: str | Path, layers=None, hidden_states: bool = True, dtype: torch.dtype | None = None
             ) -> Path:
        """Write tensors + metadata (config, model id, tokens, predictions, queries, question) to one .safetensors
        file. layers: export only these captured layers (None: all); hidden_states: include them; dtype: store
        captured attention and hidden states in this dtype (e.g. torch.float16 halves fp32 ones; None keeps
        them as they are, an exact round trip)."""
        path = Path(path)
        tensors, meta = self._payload(layers, hidden_states, dtype)
        save_file(tensors, str(path), metadata=meta)
        return path

    def to_bytes(self, layers=None, hidden_states: bool = True, dtype: torch.dtype | None = None) -> bytes:
        """The same .safetensors content as `save`, in memory (for a download button)."""
        tensors, meta = self._payload(layers, hidden_states, dtype)
        return save(tensors, metadata=meta)

    def export_size(self, layers=None, hidden_states: bool = True, dtype: torch.dtype | None = None) -> int:
        """Bytes of the tensors an export holds (captured attention, hidden states, ids): the file is this plus
        a header of tokens and metadata (a few hundred kB at most)."""
        chosen = self.capture.captured_layers if layers is None else layers
        size = lambda t: t.numel() * (torch.finfo(dtype).bits // 8 if dtype is not None and t.is_floating_point()
                                      else t.element_size())
        total = sum(size(t) for l in chosen if l in self.capture.layers
                    for t in (self.capture.weights(l).stored, self.capture.to_global(l), self.capture.from_global(l)))
        states = list(self.hidden_states or ()) if hidden_states else []
        return total + sum(size(h) for h in states + [self.last_hidden_state]) + 8 * self.n

    def _payload(self, layers=None, hidden_states: bool = True, dtype: torch.dtype | None = None
                 ) -> tuple[dict, dict]:
        cast = (lambda t: t.detach().cpu().to(dtype).contiguous()) if dtype is not None else \
            (lambda t: t.detach().cpu().contiguous())
        tensors = {"input_ids": torch.tensor(self.input_ids, dtype=torch.long),
                   "last_hidden_state": cast(self.last_hidden_state).clone()}  # may share storage with hidden_states[-1]
        layer_meta = {}
        for l, w in self.capture.layers.items():
            if layers is not None and l not in layers:
                continue
            tensors[f"layer.{l}.band"] = cast(w.stored)  # causal: the band's past half
            tensors[f"layer.{l}.to_global"] = cast(w.to_global)
            tensors[f"layer.{l}.from_global"] = cast(w.from_global)
            if w.sink is not None:  # a model with learned sinks: each query's sink share (rows sum to 1 minus it)
                tensors[f"layer.{l}.sink"] = cast(w.sink)
            layer_meta[str(l)] = {"dilation": list(w.dilation), "global_tokens": list(w.global_tokens),
                                  "causal": w.causal}
        for i, h in enumerate((self.hidden_states or ()) if hidden_states else ()):
            tensors[f"hidden_states.{i}"] = cast(h)
        meta = {
            "format": FORMAT, "model_id": self.model_id, "config": json.dumps(self.config.to_dict()),
            "tokens": json.dumps(self.tokens), "predictions": json.dumps(self.predictions.to_dict()),
            "warnings": json.dumps(self.warnings), "layers": json.dumps(layer_meta),
            "offsets": json.dumps(self.offsets), "text": json.dumps(self.text),
            "queries": json.dumps(list(self.queries)), "question": json.dumps(self.question),
        }
        return tensors, meta


def _metadata(data: bytes) -> dict:
    """The `__metadata__` of a .safetensors file's bytes (8-byte little-endian header length, then JSON)."""
    if len(data) < 8:
        raise ValueError("too short")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError("the header runs past the end of the file")
    header = json.loads(data[8:8 + size])
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def load_result(path: str | Path | bytes, name: str | None = None) -> RunResult:
    """Read a file written by `RunResult.save` (a path, or its bytes: an upload, read in memory and never written
    to disk); a clear ValueError if it is not one. `name` is what messages call the file (an upload's own name)."""
    if isinstance(path, (bytes, bytearray)):
        name, data = name or "the file", bytes(path)
        try:
            meta, tensors = _metadata(data), load(data)
        except (SafetensorError, ValueError, RuntimeError, UnicodeDecodeError) as e:
            raise ValueError(f"{name} is not a readable .safetensors file ({e}); export the run again") from e
    else:
        path = Path(path)
        name = name or str(path)
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ValueError(f"{name} is not a readable .safetensors file ({e}); export the run again") from e
    path = name  # messages below name the file as the caller knows it
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lfviz run export (format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        layers = {}
        for l, info in json.loads(meta["layers"]).items():
            layers[int(l)] = AttentionWeights(tensors[f"layer.{l}.band"], tensors[f"layer.{l}.to_global"],
                                              tensors[f"layer.{l}.from_global"], tuple(info["dilation"]),
                                              tuple(info["global_tokens"]), causal=info.get("causal", False),
                                              sink=tensors.get(f"layer.{l}.sink"))
        n_hidden = sum(1 for k in tensors if k.startswith("hidden_states."))
        offsets = json.loads(meta.get("offsets", "null"))
        res = RunResult(
            tokens=json.loads(meta["tokens"]), input_ids=tensors["input_ids"].tolist(),
            last_hidden_state=tensors["last_hidden_state"], capture=Capture(layers),
            predictions=Predictions.from_dict(json.loads(meta["predictions"])),
            config=AttentionConfig.from_dict(json.loads(meta["config"])), model_id=meta["model_id"],
            warnings=json.loads(meta["warnings"]),
            hidden_states=tuple(tensors[f"hidden_states.{i}"] for i in range(n_hidden)) or None,
            offsets=[tuple(o) for o in offsets] if offsets is not None else None,
            text=json.loads(meta.get("text", "null")),
            queries=json.loads(meta.get("queries", "[]")), question=json.loads(meta.get("question", "null")),
        )
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is an incomplete or damaged lfviz export (missing {e}); export the run again") from e
    except ValueError as e:
        raise ValueError(f"{path} holds a configuration lfviz cannot use ({e}); export the run again") from e
    try:
        _check(res)
    except ValueError as e:
        raise ValueError(f"{path} holds an inconsistent run ({e}); export the run again") from e
    return res


def _check(res: RunResult) -> None:
    """An opened export agrees with itself: what the app adopts from it (positions, texts) must be usable."""
    if not all(isinstance(t, str) for t in res.tokens) or len(res.tokens) != len(res.input_ids):
        raise ValueError("its tokens and token ids differ")
    res.config.check_globals(res.n)  # a global token past the text would break every page once adopted
    if not isinstance(res.model_id, str) or not (res.text is None or isinstance(res.text, str)):
        raise ValueError("its model name or text is not a string")
    if not isinstance(res.queries, list) or not all(isinstance(q, str) for q in res.queries):
        raise ValueError("its queries are not a list of strings")
    if not (res.question is None or isinstance(res.question, str)):
        raise ValueError("its question is not a string")
    for layer, w in res.capture.layers.items():
        if w.stored.shape[-2] != res.n or tuple(w.global_tokens) != res.config.check_globals(res.n):
            raise ValueError(f"layer {layer}'s attention does not fit {res.n} tokens and the global tokens "
                             f"{format_positions(res.config.global_tokens, 5) or 'none'}")

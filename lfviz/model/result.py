"""One run's outcome as plain data, and its exact round trip through a .safetensors file."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save, save_file

from ..attention.layout import AttentionWeights
from ..config import AttentionConfig
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


def load_result(path: str | Path | bytes) -> RunResult:
    """Read a file written by `RunResult.save` (a path, or its bytes); a clear ValueError if it is not one."""
    if isinstance(path, (bytes, bytearray)):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "upload.safetensors"
            file.write_bytes(path)
            return load_result(file)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path} is not a readable .safetensors file ({e}); export the run again") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lfviz run export (format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        layers = {}
        for l, info in json.loads(meta["layers"]).items():
            layers[int(l)] = AttentionWeights(tensors[f"layer.{l}.band"], tensors[f"layer.{l}.to_global"],
                                              tensors[f"layer.{l}.from_global"], tuple(info["dilation"]),
                                              tuple(info["global_tokens"]), causal=info.get("causal", False))
        n_hidden = sum(1 for k in tensors if k.startswith("hidden_states."))
        offsets = json.loads(meta.get("offsets", "null"))
        return RunResult(
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

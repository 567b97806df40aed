"""Turn a BERT checkpoint into a Longformer with the paper's recipe (Beltagy et al. 2020, section 5).

- position embeddings: the source's positions copied over and over up to `max_positions` tokens;
- global projections (query_global, key_global, value_global) start as copies of the local ones;
- every other weight is copied as is; the window is the same on every layer.
HF's Longformer numbers positions `pad_token_id + 1 + t` for token t, so BERT position t lands at that row.
The result is *converted*, not pretrained as a Longformer: with a window covering the text and no global
tokens it reproduces the source model exactly; beyond 512 tokens it only sees the copied positions.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import LongformerConfig

_GLOBAL = ("query", "key", "value")


def longformer_config_from_bert(bert: dict, max_positions: int = 4096, window: int = 512) -> LongformerConfig:
    """LongformerConfig for a BERT config dict (as read from its config.json)."""
    if bert.get("model_type") != "bert":
        raise ValueError(f"expected a BERT config (model_type 'bert'), got model_type {bert.get('model_type')!r}")
    pad = bert.get("pad_token_id", 0)
    return LongformerConfig(
        vocab_size=bert["vocab_size"], hidden_size=bert["hidden_size"],
        num_hidden_layers=bert["num_hidden_layers"], num_attention_heads=bert["num_attention_heads"],
        intermediate_size=bert["intermediate_size"], hidden_act=bert.get("hidden_act", "gelu"),
        type_vocab_size=bert.get("type_vocab_size", 2), layer_norm_eps=bert.get("layer_norm_eps", 1e-12),
        max_position_embeddings=max_positions + pad + 1, pad_token_id=pad, attention_window=window,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )


def convert_bert_state(state: dict[str, torch.Tensor], config: LongformerConfig) -> dict[str, torch.Tensor]:
    """Map a BertModel state dict (keys with or without a 'bert.' prefix) onto LongformerModel's keys."""
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    out = {k: v.clone() for k, v in state.items()
           if not k.startswith("pooler.") and k != "embeddings.position_ids" and not k.startswith("cls.")}
    src = state["embeddings.position_embeddings.weight"]  # (P, D)
    offset = config.pad_token_id + 1
    n_pos = config.max_position_embeddings - offset
    pos = src.new_zeros(config.max_position_embeddings, src.shape[1])  # row(s) below offset: padding, unused
    reps = -(-n_pos // src.shape[0])
    pos[offset:] = src.repeat(reps, 1)[:n_pos]
    out["embeddings.position_embeddings.weight"] = pos
    for i in range(config.num_hidden_layers):
        for name in _GLOBAL:
            for p in ("weight", "bias"):
                out[f"encoder.layer.{i}.attention.self.{name}_global.{p}"] = \
                    state[f"encoder.layer.{i}.attention.self.{name}.{p}"].clone()
    return out


def convert_bert_dir(src: str | Path, max_positions: int = 4096, window: int = 512):
    """(LongformerConfig, state dict) from a local BERT folder holding config.json and model.safetensors."""
    src = Path(src)
    bert = json.loads((src / "config.json").read_text())
    weights = src / "model.safetensors"
    if not weights.exists():
        raise ValueError(f"{src} has no model.safetensors: lfviz only loads safetensors weights")
    config = longformer_config_from_bert(bert, max_positions, window)
    return config, convert_bert_state(load_file(str(weights)), config)


def save_converted(src: str | Path, dst: str | Path, max_positions: int = 4096, window: int = 512) -> Path:
    """Write a converted Longformer checkpoint (config, safetensors, tokenizer files) to `dst`."""
    import shutil

    config, state = convert_bert_dir(src, max_positions, window)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    config.architectures = ["LongformerModel"]
    config.save_pretrained(dst)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (Path(src) / name).exists():
            shutil.copy(Path(src) / name, dst / name)
    return dst

"""Which Hugging Face causal LMs lfviz runs exactly, and how each one's own (native) attention pattern is read.

One row per `model_type`: how the per-layer pattern is read from the config, which mechanisms the family may use
besides the mask (attention-logit softcap, final-logit softcap, learned sinks, a logit scale), and, for a family
lfviz cannot run exactly, why it is refused. Adding a family is one row.

Window convention. Hugging Face's sliding layers use the predicate `kv_idx > q_idx - S` (with causality): query i
sees keys max(0, i - S + 1)..i, S keys including itself. lfviz's causal window W sees itself and the W/2 previous
tokens, so a sliding layer is `W = 2 * (S - 1)`. A full layer is not windowed: its window is twice the model's
positions, which covers any text the model can read (`LayerSpec.for_length` cuts it to the text).

The kernel takes the softcap and the sinks from what each HF attention module passes to its attention function
(`softcap=`, `s_aux=`), so they are the model's own values; the row says the family may have them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

SLIDING, FULL = "sliding_attention", "full_attention"
MECHANISMS = ("softcap", "final_softcap", "sinks", "logit_scale")


def lfviz_window(S: int) -> int:
    """lfviz's causal window (two-sided, even) for Hugging Face's sliding window S (keys including the query)."""
    return 2 * (S - 1)


# -- how a family's layer types are read, when its config holds no `layer_types` (older config.json files) ------
def _every_layer(cfg) -> list[str]:
    """Mistral, Mixtral, Phi-3, StarCoder2, Qwen3-MoE: every layer slides when `sliding_window` is set (their
    modeling ignores `layer_types`); Ministral's config derives its `layer_types` the same way."""
    return [SLIDING if getattr(cfg, "sliding_window", None) else FULL] * cfg.num_hidden_layers


def _no_layer(cfg) -> list[str]:
    return [FULL] * cfg.num_hidden_layers


def _qwen(cfg) -> list[str]:
    """Qwen2/3: layer i slides iff `use_sliding_window` and i >= `max_window_layers`."""
    on = bool(getattr(cfg, "use_sliding_window", False)) and getattr(cfg, "sliding_window", None) is not None
    return [SLIDING if on and i >= cfg.max_window_layers else FULL for i in range(cfg.num_hidden_layers)]


def _every(k: int) -> Callable:
    """Every k-th layer (1-based) is full, the others slide: Gemma 2 and gpt-oss (k = 2, even layers slide),
    Cohere2 and OLMo 3 (k = 4), Gemma 3 (k = `sliding_window_pattern`, 6)."""
    def types(cfg) -> list[str]:
        period = getattr(cfg, "_sliding_window_pattern", None) or getattr(cfg, "sliding_window_pattern", None) or k
        return [SLIDING if (i + 1) % period else FULL for i in range(cfg.num_hidden_layers)]

    return types


def _smollm3(cfg) -> list[str]:
    """SmolLM3: with `use_sliding_window`, the layers without RoPE (`no_rope_layers[i] == 0`) slide."""
    on = bool(getattr(cfg, "use_sliding_window", False)) and getattr(cfg, "sliding_window", None) is not None
    rope = getattr(cfg, "no_rope_layers", None) or [1] * cfg.num_hidden_layers
    return [SLIDING if on and not rope[i] else FULL for i in range(cfg.num_hidden_layers)]


@dataclass(frozen=True)
class Family:
    model_type: str
    name: str
    native: str  # the native pattern in words (README, app)
    fallback: Callable  # config -> layer types, when the config has no `layer_types`
    uses_layer_types: bool = True  # the modeling code follows `config.layer_types` when present
    mechanisms: frozenset = field(default_factory=frozenset)  # subset of MECHANISMS the family may use
    refused: str | None = None  # why lfviz cannot run this family exactly (None: it can)


def _row(model_type, name, native, fallback, uses_layer_types=True, mechanisms=(), refused=None) -> Family:
    return Family(model_type, name, native, fallback, uses_layer_types, frozenset(mechanisms), refused)


FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    _row("llama", "Llama (SmolLM2)", "every layer full", _no_layer, uses_layer_types=False),
    _row("mistral", "Mistral", "every layer slides when `sliding_window` is set", _every_layer,
         uses_layer_types=False),
    _row("phi3", "Phi-3", "every layer slides when `sliding_window` is set", _every_layer, uses_layer_types=False),
    _row("qwen2", "Qwen2", "with `use_sliding_window`, layers from `max_window_layers` on slide", _qwen),
    _row("qwen3", "Qwen3", "with `use_sliding_window`, layers from `max_window_layers` on slide", _qwen),
    _row("smollm3", "SmolLM3", "with `use_sliding_window`, the layers without RoPE slide (`layer_types`)", _smollm3),
    _row("gemma2", "Gemma 2", "even layers slide (0, 2, ...), odd ones are full", _every(2),
         mechanisms=("softcap", "final_softcap")),
    _row("gemma3_text", "Gemma 3", "5 sliding : 1 full (`layer_types`)", _every(6),
         mechanisms=("softcap", "final_softcap")),
    _row("gpt_oss", "gpt-oss", "even layers slide, odd ones are full (`layer_types`); learned sinks", _every(2),
         mechanisms=("sinks",)),
    _row("cohere2", "Cohere2", "3 sliding : 1 full (`layer_types`); RoPE on sliding layers only", _every(4),
         mechanisms=("logit_scale",)),
    _row("mixtral", "Mixtral", "every layer slides when `sliding_window` is set", _every_layer,
         uses_layer_types=False),
    _row("starcoder2", "StarCoder2", "every layer slides when `sliding_window` is set", _every_layer,
         uses_layer_types=False),
    _row("qwen3_moe", "Qwen3-MoE", "every layer slides when `use_sliding_window` (and `sliding_window`) is set",
         _every_layer, uses_layer_types=False),
    _row("ministral", "Ministral", "`layer_types` (every layer slides when `sliding_window` is set)", _every_layer),
    _row("olmo3", "OLMo 3", "3 sliding : 1 full (`layer_types`)", _every(4)),
    _row("gemma", "Gemma", "every layer full", _no_layer, uses_layer_types=False),
    _row("olmo2", "OLMo 2", "every layer full", _no_layer, uses_layer_types=False),
    _row("gemma3", "Gemma 3 (multimodal)", "-", _every(6),
         refused="it is the multimodal Gemma 3 (image + text): save its language model (Gemma3ForCausalLM, "
                 "model_type gemma3_text) and load that folder"),
    _row("llama4", "Llama 4", "chunked attention on RoPE layers, every 4th layer full without RoPE", _no_layer,
         refused="Llama 4 uses chunked attention (`attention_chunk_size`), which lfviz does not implement"),
    _row("llama4_text", "Llama 4", "chunked attention on RoPE layers, every 4th layer full without RoPE", _no_layer,
         refused="Llama 4 uses chunked attention (`attention_chunk_size`), which lfviz does not implement"),
)}


def family(cfg) -> Family:
    """The row of a transformers config (or of a config.json dict's "model_type"); ValueError naming the reason
    when lfviz cannot run it exactly."""
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else getattr(cfg, "model_type", None)
    row = FAMILIES.get(model_type)
    supported = ", ".join(sorted(t for t, f in FAMILIES.items() if f.refused is None))
    if row is None:
        raise ValueError(f"lfviz cannot run a {model_type!r} causal LM exactly: its attention pattern and mechanisms "
                         f"are not in lfviz's family table (supported: {supported})")
    if row.refused:
        raise ValueError(f"lfviz cannot run this {row.name} model exactly: {row.refused}")
    return row


def layer_types(cfg) -> list[str]:
    """Each layer's type as the model's own forward uses it; ValueError for a type or setting lfviz cannot run."""
    row = family(cfg)
    if getattr(cfg, "use_bidirectional_attention", False):
        raise ValueError(f"this {row.name} model uses bidirectional attention (`use_bidirectional_attention`): "
                         "lfviz runs causal language models only")
    if getattr(cfg, "attention_chunk_size", None):
        raise ValueError(f"this {row.name} model sets `attention_chunk_size` (chunked attention), which lfviz does "
                         "not implement")
    given = getattr(cfg, "layer_types", None) if row.uses_layer_types else None
    types = list(given) if given else row.fallback(cfg)
    if len(types) != cfg.num_hidden_layers:
        raise ValueError(f"the config lists {len(types)} layer_types for {cfg.num_hidden_layers} layers: fix "
                         "config.json")
    unknown = sorted(set(types) - {SLIDING, FULL})
    if unknown:
        why = "chunked attention, which lfviz does not implement" if "chunked_attention" in unknown else \
            "a layer type lfviz does not know"
        raise ValueError(f"this {row.name} model has {', '.join(map(repr, unknown))} layers: {why}")
    return types


def native_windows(cfg, max_tokens: int) -> tuple[int, ...]:
    """lfviz's causal window of each layer under the model's own pattern: 2 * (S - 1) on sliding layers, and
    2 * max_tokens (covering any text) on full ones."""
    types = layer_types(cfg)
    S = getattr(cfg, "sliding_window", None)
    if SLIDING in types and (not isinstance(S, int) or S < 2):
        raise ValueError(f"the config has sliding layers but sliding_window is {S!r}: give an int >= 2")
    return tuple(lfviz_window(S) if t == SLIDING else 2 * max_tokens for t in types)


def trained_sparse(cfg) -> bool:
    """Whether the model was trained with some layer sliding: then full attention is not its reference."""
    return SLIDING in layer_types(cfg)


def apply_output_mechanisms(cfg, logits):
    """What the family's causal-LM head does after the output projection: Cohere's `logit_scale`, then Gemma's
    `final_logit_softcapping` (`c * tanh(logits / c)`). logits: (..., V)."""
    row = family(cfg)
    scale = getattr(cfg, "logit_scale", None) if "logit_scale" in row.mechanisms else None
    if scale is not None:
        logits = logits * scale
    cap = getattr(cfg, "final_logit_softcapping", None) if "final_softcap" in row.mechanisms else None
    if cap is not None:
        logits = (logits / cap).tanh() * cap
    return logits

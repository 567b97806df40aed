"""What a running app may read from the server's disk and from the network: the server owner's choices, never a
visitor's. The app may be shared (`make run ADDRESS=0.0.0.0`), so every text field, upload and link is hostile.

- Server paths (a results file, a model folder): on an app bound to loopback (127.0.0.1, the default) the person at
  the keyboard owns the machine and may open any path. On any other address no text becomes a server path unless the
  owner started the server with `LFVIZ_PATHS=/folder[:/other]` (`make run PATHS=...`): then only paths that resolve,
  symlinks and `..` followed, inside those folders. `LFVIZ_PATHS=none` turns paths off everywhere.
- Errors about paths read the same whether or not the path exists, so a visitor cannot probe the disk.
- The Hub: models come from the local Hugging Face cache only, unless the owner set `LFVIZ_HUB_DOWNLOADS=1`
  (`make run ONLINE=1`).
- A study's documents: from the bundled samples, from the corpus the owner started the server with
  (`LFVIZ_CORPUS`, `make run CORPUS=...`), or, where paths are allowed, the corpus a results file opened by path
  names. Never from a path written inside an uploaded file.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import streamlit as st

from ..model.loading import HUB_ID, PACKAGED, load_runner

PATHS_ENV, HUB_ENV, CORPUS_ENV = "LFVIZ_PATHS", "LFVIZ_HUB_DOWNLOADS", "LFVIZ_CORPUS"
PATHS_OFF = ("Opening files or folders on the server is turned off on this shared app: use what the app offers "
             f"(uploads, the listed models, Hub ids in the server's cache). The server's owner can allow folders with "
             f"{PATHS_ENV}=/some/folder (see the README, 'Sharing the app').")


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False  # Streamlit binds every interface when no address is given
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name: it may be reachable from elsewhere


def bound_to_loopback() -> bool:
    return _is_loopback(st.get_option("server.address"))


def path_roots() -> list[Path] | None:
    """The folders paths may lie in: None = anywhere (local use); [] = no path at all."""
    value = os.environ.get(PATHS_ENV)
    if value is None or not value.strip():
        return None if bound_to_loopback() else []
    if value.strip().lower() in ("none", "off", "0"):
        return []
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def paths_allowed() -> bool:
    return path_roots() != []


def server_path(text: str, what: str) -> Path:
    """The server path typed in a field, when the owner allows it; ValueError otherwise. The message is the same
    for a path that is missing, outside the allowed folders or of the wrong kind: no probing."""
    roots = path_roots()
    if roots == []:
        raise ValueError(PATHS_OFF)
    text = text.strip()
    nowhere = ValueError(f"cannot open {text[:200]!r}: it is not {what} this app can open"
                         + ("" if roots is None else f" (only inside {', '.join(map(str, roots))})"))
    if not text or "\x00" in text:
        raise nowhere
    try:
        path = Path(text).expanduser().resolve()  # symlinks and .. followed before the check
    except (OSError, RuntimeError):
        raise nowhere from None
    if roots is not None and not any(path == r or path.is_relative_to(r) for r in roots):
        raise nowhere
    return path


def hub_downloads_allowed() -> bool:
    return os.environ.get(HUB_ENV, "").strip() == "1"


def server_corpus() -> Path | None:
    """The corpus the owner started the server with, or None."""
    value = os.environ.get(CORPUS_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def custom_model_key(text: str) -> str:
    """The model key for what was typed in the model field: a Hub id as typed, or a folder's resolved path where
    paths are allowed (ValueError otherwise, the same whether or not the folder exists)."""
    text = (text or "").strip()
    if not text:
        raise ValueError("type a Hub id (e.g. allenai/longformer-base-4096)"
                         + (" or the full path of a model folder" if paths_allowed() else ""))
    if HUB_ID.fullmatch(text):  # owner/name, starting alphanumeric: never a path (no /, ., ~ first; no ..)
        return text
    return str(server_path(text, "a model folder"))


def load_model(key: str, progress=None):
    """Load the runner for a model key under the owner's rules: embedded models, Hub ids from the cache (downloads
    only where the owner allowed them), folders only where paths are allowed (checked again here: a key is not
    trusted for having been checked when it was typed)."""
    if key in PACKAGED:  # SmolLM2, Gemma 3 270M: the first load converts, and says what it is doing
        return load_runner(key, progress=progress)
    if key in BUILT_IN:
        return BUILT_IN[key]()
    if HUB_ID.fullmatch(key):
        return load_runner(key, hub_only=True, local_files_only=not hub_downloads_allowed())
    return load_runner(str(server_path(key, "a model folder")))


BUILT_IN = {"embedded": lambda: load_runner("embedded"),
            "embedded-16k": lambda: load_runner("embedded", max_tokens=16384)}

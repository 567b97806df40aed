"""Sweeps: move one global token across the document, or vary the window, and track one prediction's score."""
from __future__ import annotations

from typing import Callable, Iterable

from ..config import AttentionConfig


WINDOWS = (2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 768, 1024, 2048)  # two-sided windows a window sweep tries


def window_points(n: int, points: int, windows=WINDOWS) -> list[int]:
    """Up to `points` windows (smallest first) that still differ on an n-token text: wider than 2n sees all of it."""
    return [w for w in windows if w <= 2 * n][:points] or [2]


def position_points(n: int, points: int) -> list[int]:
    """Up to `points` positions spread evenly over an n-token text, leaving out the first and last token."""
    step = max(1, (n - 1) // points)
    return list(range(1, n - 1, step))[:points]


def _score(result, label: str) -> float | None:
    return result.predictions.summary().get(label)


def sweep_global_position(runner, text: str, config: AttentionConfig, positions: Iterable[int], label: str,
                          queries=(), question=None, progress: Callable[[float], None] | None = None,
                          moving: int | None = None) -> list[dict]:
    """One run per position p: the global token `moving` (one of the configuration's) moved to p, the others
    kept; with `moving` None, p is added to the configuration's global tokens. The score of `label`."""
    if moving is not None and moving not in config.global_tokens:
        raise ValueError(f"token {moving} is not global in this configuration: pick one of "
                         f"{list(config.global_tokens)} to move, or none to add one")
    others = set(config.global_tokens) - {moving}
    positions = list(positions)
    rows = []
    for i, p in enumerate(positions):
        cfg = config.replace(global_tokens=tuple(sorted(others | {int(p)})))
        res = runner.run(text, config=cfg, queries=queries, question=question, capture=False)
        rows.append({"position": int(p), "token": res.tokens[p], "score": _score(res, label)})
        if progress:
            progress((i + 1) / len(positions))
    return rows


def sweep_window(runner, text: str, config: AttentionConfig, windows: Iterable[int], label: str, queries=(),
                 question=None, progress: Callable[[float], None] | None = None) -> list[dict]:
    """One run per (two-sided) window, same on every layer; the score of `label`."""
    windows = list(windows)
    rows = []
    for i, w in enumerate(windows):
        res = runner.run(text, config=config.replace(window=int(w)), queries=queries, question=question,
                         capture=False)
        rows.append({"window": int(w), "score": _score(res, label)})
        if progress:
            progress((i + 1) / len(windows))
    return rows

"""Copied position embeddings: where a converted model's positions start over.

A model converted with the paper's recipe (`lfviz.model.convert`) holds its source's P position embeddings
copied over and over, so token P carries the same position vector as token 0, token 2P the same again, and so
on. P (512 for the embedded MiniLM) is read from the weights themselves, never assumed: the smallest shift under
which the position table equals itself. Models whose positions were trained past the copy, or that have none
(rotary), give None.
"""
from __future__ import annotations

import torch


def copied_every(runner) -> int | None:
    """P when the runner's position embeddings are one block of P rows repeated (the source model's number of
    positions); None when they do not repeat or the model has no position table.

    Token t reads row `pad_token_id + 1 + t` (Hugging Face's Longformer numbering), so the rows from there on
    are compared: (T, D) with T the tokens the model takes."""
    model = getattr(runner, "model", None)
    base = getattr(model, "longformer", model)
    table = getattr(getattr(base, "embeddings", None), "position_embeddings", None)
    if not isinstance(table, torch.nn.Embedding):
        return None
    pad = getattr(runner.config, "pad_token_id", None) or 0
    rows = table.weight.detach()[pad + 1:]  # (T, D): row t is token t's position
    n = rows.shape[0]
    if n < 2:
        return None
    candidates = (rows[1:] == rows[0]).all(dim=1).nonzero().flatten() + 1  # rows equal to token 0's
    for p in candidates.tolist():
        if torch.equal(rows[p:], rows[:n - p]):
            return int(p)
    return None


def restarts(positions, every: int | None) -> list[int]:
    """The positions (> 0) at which the copied position embeddings start over: multiples of `every`."""
    if not every:
        return []
    return sorted({int(p) for p in positions if p > 0 and p % every == 0})


def restart_note(positions, every: int) -> str:
    """Why picks at restarts are suspect, in words: "position 512 is where the converted model's copied position
    embeddings restart ..."."""
    positions = [int(p) for p in positions]
    where = (f"position {positions[0]} is" if len(positions) == 1 else
             "positions " + ", ".join(map(str, positions[:-1])) + f" and {positions[-1]} are")
    return (f"{where} where the converted model's copied position embeddings restart (the original model had "
            f"{every} positions, copied every {every} tokens): such a token carries the first position's embedding, "
            "so its pull may come from the copy rather than from the text")

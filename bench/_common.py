"""What the bench scripts share."""
from __future__ import annotations

import time

import torch


def first_tokens(runner, text: str, tokens: int) -> str:
    """The text cut after its first `tokens` tokens (by the runner's tokenizer), whole if shorter."""
    t = runner.tokenize(text)
    return text if len(t.input_ids) <= tokens else text[:t.offsets[tokens - 1][1]]


def interleaved(calls: dict, repeat: int = 3, memory: bool = True):
    """Time each of `calls` (name -> function of no argument) `repeat` times, interleaved so that drift on a shared
    machine hits every one alike. Returns ({name: best seconds}, {name: peak RSS growth in MB of its first timed
    run}); memory=False skips the RSS sampler (whose thread costs a little)."""
    from lfviz.analysis.peak_memory import PeakMemory

    best, grown = {name: float("inf") for name in calls}, {}
    for _ in range(repeat):
        for name, call in calls.items():
            probe = PeakMemory(torch.device("cpu")) if memory and name not in grown else None
            if probe is not None:
                probe.__enter__()
            t = time.perf_counter()
            out = call()
            best[name] = min(best[name], time.perf_counter() - t)
            if probe is not None:
                probe.__exit__(None, None, None)
                grown[name] = probe.grown_mb
            del out
    return best, grown

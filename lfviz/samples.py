"""Sample documents shipped in assets/samples (written for lfviz; see assets/samples/README.md)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"


@dataclass(frozen=True)
class Sample:
    id: str
    title: str
    description: str
    text: str
    queries: tuple[str, ...] = field(default_factory=tuple)
    question: str | None = None
    answer: str | None = None


@lru_cache(maxsize=1)
def list_samples() -> tuple[Sample, ...]:
    index = SAMPLES_DIR / "index.json"
    if not index.is_file():
        return ()
    out = []
    for item in json.loads(index.read_text(encoding="utf-8")):
        out.append(Sample(item["id"], item["title"], item.get("description", ""),
                          (SAMPLES_DIR / item["file"]).read_text(encoding="utf-8"), tuple(item.get("queries", ())),
                          item.get("question"), item.get("answer")))
    return tuple(out)


def get_sample(sample_id: str) -> Sample:
    for s in list_samples():
        if s.id == sample_id:
            return s
    raise ValueError(f"no sample called {sample_id!r}; samples: {', '.join(s.id for s in list_samples())}")

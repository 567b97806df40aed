"""Computing the lesson: every step (or one) measured on a runner and a text, in order, with progress. Apart from
`core.py` (what a step is) and `steps.py` (the eight steps), so that neither imports the other in a circle."""
from __future__ import annotations

import time

from .core import LessonConfig, Progress, Step
from .steps import STEPS


def build_lesson(runner, text: str, config: LessonConfig = LessonConfig(), steps=None,
                 progress: Progress | None = None, model_key: str = "embedded") -> list[Step]:
    """Every step (or those numbered in `steps`) computed on `runner` and `text`, in order, with progress."""
    chosen = [s for s in STEPS if steps is None or s.number in set(steps)]
    out = []
    for i, spec in enumerate(chosen):
        if progress:
            progress(i, len(chosen), f"step {spec.number}: {spec.title}")
        out.append(compute_step(spec.number, runner, text, config, model_key))
    if progress:
        progress(len(chosen), len(chosen), "done")
    return out


def compute_step(number: int, runner, text: str, config: LessonConfig = LessonConfig(),
                 model_key: str = "embedded", progress: Progress | None = None) -> Step:
    """One step, measured now (a step that needs another model says which, and is not computed). progress: told
    as a long step's runs finish (the lazy ones: step 8)."""
    if not 1 <= number <= len(STEPS):
        raise ValueError(f"step {number} does not exist: choose 1 to {len(STEPS)}")
    spec = STEPS[number - 1]
    step = Step(spec.number, spec.key, spec.title, spec.claim, page=spec.page)
    started = time.perf_counter()
    try:
        spec.fill(step, runner, text, config, model_key, **({"progress": progress} if spec.lazy else {}))
    except (ValueError, RuntimeError) as e:  # e.g. a text too short for a pattern: the other steps still show
        step.value, step.value_text, step.figure = None, "", None
        step.note = f"This step could not run on this model and document: {str(e).splitlines()[0][:300]}"
    step.seconds = time.perf_counter() - started
    step.params = {k: str(v) for k, v in step.params.items()}
    return step

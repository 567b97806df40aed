"""A guided lesson over lfviz's analyses: steps as data (`core`), the eight steps (`steps`), the handout (`handout`)."""
from .build import build_lesson, compute_step  # noqa: F401
from .core import FULL, LessonConfig, Step  # noqa: F401

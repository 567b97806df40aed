"""`lfviz lesson`: compute every step of the lesson on a document and write the handout (one offline HTML file)."""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from .core import FULL, LessonConfig


def add_parser(sub) -> None:
    p = sub.add_parser("lesson", help="the eight-step lesson computed on a document, written as one self-contained "
                                      "HTML handout (figures, numbers and text; opens offline)")
    p.add_argument("file", nargs="?", default=None, help="UTF-8 text file ('-' for standard input); default: --sample")
    p.add_argument("--sample", default="article", help="a shipped sample when no file is given (article, contract, "
                                                      "qa_passage, copy_test)")
    p.add_argument("-o", "--output", required=True, help="output .html path")
    p.add_argument("--model", default="embedded", help="'embedded', 'smollm2', 'gemma3-270m', a local folder")
    p.add_argument("--window", type=int, default=None, help="the lesson's two-sided window (default 64)")
    p.add_argument("--steps", default=None, help="only these steps, e.g. 1,2,3")
    p.add_argument("--full", action="store_true", help="the long version: time at 1k/4k/16k tokens, an advisor "
                                                       "with 4 picks (minutes on 2 cores)")
    p.add_argument("--max-tokens", type=int, default=None, help="steps 4-7 on the document's first N tokens only "
                                                                "(default: the whole document, as the pages)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _text(args) -> tuple[str, str]:
    from ..samples import get_sample

    if args.file is None:
        return get_sample(args.sample).text, args.sample
    if args.file == "-":
        return sys.stdin.read(), "standard input"
    path = Path(args.file)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        return path.read_text(encoding="utf-8"), path.name
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: save it as UTF-8 and try again")


def lesson_main(args) -> int:
    import lfviz

    from ..textspec import parse_positions
    from .build import build_lesson
    from .handout import handout_html

    try:
        text, title = _text(args)
        if not text.strip():
            raise ValueError("the document is empty: give a text file with some words in it")
        config = FULL if args.full else LessonConfig()
        if args.window is not None:
            if args.window < 2 or args.window % 2:
                raise ValueError(f"--window {args.window}: give an even two-sided window of at least 2")
            config = replace(config, window=args.window)
        if args.max_tokens is not None:
            if args.max_tokens < 2:
                raise ValueError(f"--max-tokens {args.max_tokens}: give at least 2 tokens, or leave it out for the "
                                 "whole document")
            config = replace(config, max_tokens=args.max_tokens)
        steps = list(parse_positions(args.steps)) if args.steps else None
        runner = lfviz.load_runner(args.model, device=args.device)
    except (ValueError, KeyError) as e:
        print(f"lfviz: error: {e}", file=sys.stderr)
        return 2
    started = time.time()

    def progress(done, total, what):
        print(f"\r[{done}/{total}] {time.time() - started:5.1f} s  {what[:70]:<70}", end="", file=sys.stderr,
              flush=True)

    built = build_lesson(runner, text, config, steps=steps, progress=progress, model_key=args.model)
    print(file=sys.stderr)
    out = Path(args.output)
    out.write_text(handout_html(built, runner.model_id, title, f"window {config.window}"), encoding="utf-8")
    for s in built:
        print(f"step {s.number} ({s.seconds:.1f} s): " + (s.value_text or f"needs {s.needs}"))
    print(f"{len(built)} steps in {time.time() - started:.1f} s -> {out}")
    return 0

"""Command line: `lfviz capture` runs a document and writes the run (attention + predictions) to .safetensors;
`lfviz study` measures placement strategies for global tokens over a corpus (`lfviz.study`);
`lfviz lesson` writes the eight-step lesson on a document as one offline HTML handout (`lfviz.lesson`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .lesson import cli as lesson_cli
from .textspec import NATIVE, config_from_text, parse_dilation, parse_positions, parse_window


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lfviz", description="Longformer attention capture and inspection")
    sub = ap.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="run a text file and save attention + predictions to .safetensors")
    cap.add_argument("file", help="UTF-8 text file ('-' for standard input)")
    cap.add_argument("-o", "--output", required=True, help="output .safetensors path")
    cap.add_argument("--model", default="embedded", help="'embedded', a local folder or a Hub id")
    cap.add_argument("--window", default="512", help="two-sided window: one int, or one per layer: 256,256,512, "
                                                     "or 'native': the model's own per-layer pattern")
    cap.add_argument("--dilation", default="1",
                     help="one int, one per layer (1,1,2), or per layer/head with ';' between layers")
    cap.add_argument("--global", dest="global_tokens", default="",
                     help="comma-separated token positions with global attention, e.g. 0")
    cap.add_argument("--query", action="append", default=[], help="query to rank against (similarity models)")
    cap.add_argument("--question", default=None, help="question asked of the text (QA models)")
    cap.add_argument("--layers", default=None, help="capture only these layers, e.g. 0,5")
    cap.add_argument("--fp16", action="store_true", help="store captured attention in float16")
    cap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    cap.add_argument("--max-tokens", type=int, default=4096, help="embedded model positions: 4096 or 16384")
    study = sub.add_parser("study", help="which placement of global tokens keeps the model closest to its "
                                         "reference (full attention, or the native pattern of a model trained "
                                         "with sliding windows), over a corpus (Parquet results + a summary per "
                                         "strategy)")
    study.add_argument("corpus", help="a folder of .txt files, a .jsonl file or a .parquet file with a 'text' column "
                                      "(optional 'question', 'id')")
    study.add_argument("--out", required=True, help="results .parquet (rerun with the same --out to resume)")
    study.add_argument("--model", default="embedded", help="'embedded', 'smollm2', a local folder or a Hub id")
    study.add_argument("--window", default="256", help="two-sided window: one int, or one per layer, or 'native': "
                                                       "the model's own per-layer pattern")
    study.add_argument("--dilation", default="1", help="as for capture")
    study.add_argument("--strategies", default="first,question,sentence-starts,every-k:256,advisor:8",
                       help="comma-separated: none, first, first-k:K, question, sentence-starts, every-k:K, "
                            "evenly:K, advisor:K")
    study.add_argument("--objective", default="auto",
                       help="auto (perplexity for causal LMs, the pooled embedding otherwise), embedding, perplexity")
    study.add_argument("--query", action="append", default=[], help="query every document is ranked against")
    study.add_argument("--engine", choices=("local", "ray"), default="local")
    study.add_argument("--address", default=None, help="Ray: an existing cluster ('auto', 'ray://host:10001'); "
                                                       "default: a local Ray for this job")
    study.add_argument("--actors", type=int, default=2, help="Ray: actors, one loaded model each")
    study.add_argument("--cpus-per-actor", type=float, default=1, help="Ray: CPUs reserved per actor")
    study.add_argument("--num-gpus", type=float, default=0, help="Ray: GPUs per actor (0.5 shares one GPU by two)")
    study.add_argument("--threads", type=int, default=None, help="torch threads per worker (equal threads, "
                                                                  "equal numbers to the last bit)")
    study.add_argument("--limit", type=int, default=None, help="study only the first N documents")
    study.add_argument("--device", default="auto", help="auto, cpu or cuda")
    study.add_argument("--max-tokens", type=int, default=None, help="embedded model positions: 4096 or 16384")
    lesson_cli.add_parser(sub)
    return ap


def study_main(args) -> int:
    import pandas as pd

    from .config import AttentionConfig
    from .study.job import read_results, run_study, summarize, summary_path

    def progress(done, total, doc_id):
        print(f"\r{done}/{total} documents" + (f" (last: {doc_id[:40]})" if doc_id else ""), end="",
              file=sys.stderr, flush=True)

    native = str(args.window).strip().lower() == NATIVE  # run_study resolves it against the loaded model
    try:
        window = 2 if native else parse_window(args.window)  # with native, a placeholder the model's windows replace
    except ValueError as e:
        raise ValueError(f"{e}, or write 'native' for the model's own per-layer pattern") from e
    config = AttentionConfig(window=window, dilation=parse_dilation(args.dilation))
    options = dict(address=args.address, actors=args.actors, cpus_per_actor=args.cpus_per_actor,
                   num_gpus=args.num_gpus) if args.engine == "ray" else {}
    rows = run_study(args.corpus, args.out, model=args.model, config=config, strategies=args.strategies,
                     objective=args.objective, queries=args.query, engine=args.engine, device=args.device,
                     max_tokens=args.max_tokens, threads=args.threads, limit=args.limit, progress=progress,
                     native=native, **options)
    print(file=sys.stderr)
    settings = read_results(args.out)[1]
    summary = summarize(rows, settings["reference"])  # what run_study wrote to the summary file
    shown = "native (the model's own per-layer pattern)" if native else args.window
    print(f"Window {shown}; every strategy measured against {settings['reference']} "
          f"({_why(settings['reference'])}).")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.drop(columns="reference").round(4).to_string(index=False))  # the line above says it
    failed = rows["error"].notna().sum()
    print(f"{rows['id'].nunique()} documents x {len(summary)} strategies -> {args.out}; summary -> "
          f"{summary_path(Path(args.out))}" + (f"; {failed} rows failed (see their 'error')" if failed else ""))
    return 0


def _why(reference: str) -> str:
    return ("the model was trained with sliding windows, so full attention is not its truth"
            if reference == "the native pattern" else "the model was trained with full attention")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import lfviz

    if args.command == "lesson":
        return lesson_cli.lesson_main(args)
    if args.command == "study":
        try:
            return study_main(args)
        except (ValueError, KeyError) as e:
            print(f"\nlfviz: error: {e}", file=sys.stderr)
            return 2
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            path = Path(args.file)
            if not path.is_file():
                raise ValueError(f"no such file: {path}")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path} is not UTF-8 text: save it as UTF-8 and try again")
        fields = (args.window, args.dilation, args.global_tokens)
        native = str(args.window).strip().lower() == NATIVE  # needs the model: checked once it is loaded
        config = None if native else config_from_text(*fields)  # bad input refused before a slow load
        layers = list(parse_positions(args.layers)) if args.layers else None
        runner = lfviz.load_runner(args.model, device=args.device, max_tokens=args.max_tokens)
        if native:
            config = config_from_text(*fields, native=runner.native_windows)
        res = runner.run(text, config=config, queries=args.query, question=args.question,
                         capture_layers=layers, capture_dtype=torch.float16 if args.fp16 else torch.float32)
        out = res.save(args.output)
    except (ValueError, KeyError) as e:
        print(f"lfviz: error: {e}", file=sys.stderr)
        return 2
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{runner.model_id}: {res.n} tokens, layers captured {res.capture.captured_layers}, "
          f"global tokens {list(config.global_tokens)} -> {out}")
    for row in res.predictions.rows[:5]:
        print(f"  {row['score']:.4f}  {row['label']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

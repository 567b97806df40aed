"""Command line: `lfviz capture` runs a document and writes the run (attention + predictions) to .safetensors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .textspec import parse_dilation, parse_positions, parse_window


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lfviz", description="Longformer attention capture and inspection")
    sub = ap.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="run a text file and save attention + predictions to .safetensors")
    cap.add_argument("file", help="UTF-8 text file ('-' for standard input)")
    cap.add_argument("-o", "--output", required=True, help="output .safetensors path")
    cap.add_argument("--model", default="embedded", help="'embedded', a local folder or a Hub id")
    cap.add_argument("--window", default="512", help="two-sided window: one int, or one per layer: 256,256,512")
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
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import lfviz

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
        config = lfviz.AttentionConfig(window=parse_window(args.window), dilation=parse_dilation(args.dilation),
                                       global_tokens=parse_positions(args.global_tokens))
        layers = list(parse_positions(args.layers)) if args.layers else None
        runner = lfviz.load_runner(args.model, device=args.device, max_tokens=args.max_tokens)
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

"""Placement advisor speed (issue 23 part 1): the whole `advise` call, full-attention reference included, in plain
forward passes' worth, where one plain forward pass is the same text and base config with capture off; and the
quality numbers it reaches (greedy picks vs the best preset at the same k, as in bench/advisor_bench.py).

Measured in one process: plain forward passes (best of --repeat, before and after the advisor, so a busy machine
shows as a spread), then one `advise` call (reference=None: it runs its own reference). Cases: model:document:
window:k; SmolLM2 reads the first --causal-tokens tokens, MiniLM the whole document.

    flock /work/notes/bench.lock .venv/bin/python bench/advisor_speed_bench.py \
        --cases embedded:contract:128:16,smollm2:contract:128:16 [--out bench/advisor_speed_results.json]

Before and after in one process: --before REV measures the advisor as it was at git revision REV too (its
advisor.py, advisor_search.py, fidelity.py, and attention/dense.py, blocked.py's band kernel and
self_attention.py's forward in place of the working tree's while that arm runs), right before the working tree's, case by case, --arms times each (interleaved: before,
after, before, ...). Older flags for the same: --advisor-file (and --search-file: the advisor_search.py it
imports, and --two-pass: its reference's far-attention sums in a second pass over the scores, as before the dense
observer), with the working tree's fidelity and dense.

    flock /work/notes/bench.lock .venv/bin/python bench/advisor_speed_bench.py --before 9bc72ae~1 --arms 2
"""
import argparse
import contextlib
import functools
import importlib.util
import json
import os
import subprocess
import sys
import time

import lfviz
from lfviz.analysis import fidelity
from lfviz.analysis.advisor import advise
from lfviz.config import AttentionConfig
from lfviz.samples import list_samples

from _common import first_tokens  # bench/, on the path when a script here runs


def plain_forward(runner, text, cfg, question, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        runner.run(text, config=cfg, question=question, capture=False)
        times.append(time.perf_counter() - t)
    return min(times)


def load(name: str, path: str, source: str | None = None, package: str = "lfviz.analysis"):
    """Import a file as <package>.<name>, so its relative imports resolve as the original's."""
    if source is not None:
        path = f"/tmp/{name}.py"
        open(path, "w").write(source)
    spec = importlib.util.spec_from_file_location(f"{package}.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_advisor(advisor_file, search_file, two_pass):
    source = open(advisor_file).read()
    if search_file:
        load("_advisor_search_measured", search_file)
        source = source.replace("from .advisor_search import", "from ._advisor_search_measured import")
    module = load("_advisor_measured", advisor_file, source)
    if two_pass:
        module.attention_from_afar = functools.partial(fidelity.attention_from_afar, fused=False)
    return module.advise


def load_revision(rev: str):
    """`advise` as it was at git revision `rev`, and a context manager that puts that revision's dense attention in
    place of the working tree's (the path full-attention layers take) while it runs."""
    show = lambda path: subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True,
                                       text=True).stdout
    dense = load("_dense_measured", None, show("lfviz/attention/dense.py"), package="lfviz.attention")
    fid = load("_fidelity_measured", None, show("lfviz/analysis/fidelity.py").replace(
        "from ..attention.dense import", "from ..attention._dense_measured import"))
    load("_advisor_search_measured", None, show("lfviz/analysis/advisor_search.py"))
    advisor = load("_advisor_measured", None, show("lfviz/analysis/advisor.py").replace(
        "from .advisor_search import", "from ._advisor_search_measured import").replace(
        "from .fidelity import", "from ._fidelity_measured import"))
    import lfviz.attention.banded as banded
    from lfviz.attention.self_attention import BandedSelfAttention
    blocked = load("_blocked_measured", None, show("lfviz/attention/blocked.py"), package="lfviz.attention")
    attn = load("_self_attention_measured", None, show("lfviz/attention/self_attention.py"),
                package="lfviz.attention")

    @contextlib.contextmanager
    def in_place():  # that revision's dense path, band kernel and self-attention forward in the model's modules
        current = banded.dense_attention, banded.blocked_local, BandedSelfAttention.forward
        banded.dense_attention, banded.blocked_local = dense.dense_attention, blocked.blocked_local
        BandedSelfAttention.forward = attn.BandedSelfAttention.forward
        try:
            yield
        finally:
            banded.dense_attention, banded.blocked_local, BandedSelfAttention.forward = current

    assert fid.attention_from_afar is advisor.attention_from_afar
    return advisor.advise, in_place


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="embedded:contract:128:16,smollm2:contract:128:16")
    ap.add_argument("--causal-tokens", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=None, help="append the rows to this JSON file")
    ap.add_argument("--advisor-file", default=None,
                    help="measure another version of lfviz/analysis/advisor.py too, before the working tree's (the "
                         "before row: git show COMMIT:lfviz/analysis/advisor.py > /tmp/advisor_before.py)")
    ap.add_argument("--search-file", default=None, help="the advisor_search.py that --advisor-file imports")
    ap.add_argument("--two-pass", action="store_true",
                    help="--advisor-file's reference sums the far attention in a second pass (the old way)")
    ap.add_argument("--before", default=None, metavar="REV",
                    help="measure the advisor at this git revision too, its fidelity and dense attention included")
    ap.add_argument("--arms", type=int, default=1, help="advise calls per version and case, interleaved")
    args = ap.parse_args()
    versions = [("working tree", advise, contextlib.nullcontext)]
    if args.advisor_file:
        versions.insert(0, (args.advisor_file, load_advisor(args.advisor_file, args.search_file, args.two_pass),
                            contextlib.nullcontext))
    if args.before:
        rev = subprocess.run(["git", "rev-parse", "--short", args.before], check=True, capture_output=True,
                             text=True).stdout.strip()
        versions.insert(0, (f"at {rev}", *load_revision(args.before)))
    samples = {s.id: s for s in list_samples()}
    runners, rows = {}, []
    for case in args.cases.split(","):
        model, doc, window, k = case.split(":")
        runner = runners.get(model) or runners.setdefault(model, lfviz.load_runner(model, device="cpu"))
        causal = runner.task == "causal-lm"
        text = first_tokens(runner, samples[doc].text, args.causal_tokens) if causal else samples[doc].text
        question = None if causal else samples[doc].question
        cfg = AttentionConfig(window=int(window))
        runner.run(text, config=cfg, question=question, capture=False)  # warm-up
        for version, advise_fn, in_place in [v for _ in range(args.arms) for v in versions]:
            with in_place():  # the plain passes too: each version's ratio is against its own kernels
                plain_before = plain_forward(runner, text, cfg, question, args.repeat)
                loadavg = os.getloadavg()[0]
                t = time.perf_counter()
                a = advise_fn(runner, text, cfg, int(k), question=question)
                advise_s = time.perf_counter() - t
                after = plain_forward(runner, text, cfg, question, args.repeat)
            plain = min(plain_before, after)
            best = min(a.presets, key=lambda r: r["gap"])
            row = {"model": model, "document": doc, "tokens": len(runner.tokenize(text, question).input_ids),
                   "window": int(window), "k": int(k), "plain forward s": round(plain, 3),
                   "plain spread": round(max(plain_before, after) / plain, 2), "advise s": round(advise_s, 2),
                   "forward passes' worth": round(advise_s / plain, 1), "runs": a.runs,
                   "greedy gap": round(a.greedy_gap, 4), "picks": len(a.picks), "best preset": best["strategy"],
                   "preset gap": round(best["gap"], 4), "no global gap": round(a.base_gap, 4),
                   "greedy vs preset": f"{a.greedy_gap / best['gap'] - 1:+.1%}", "loadavg": round(loadavg, 2),
                   "advisor": version + (" (two-pass reference)" if args.two_pass and version != "working tree"
                                         else "")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        old = json.load(open(args.out)) if os.path.exists(args.out) else []
        json.dump(old + rows, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()

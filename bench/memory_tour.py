"""The server's memory over a tour of the app (issue 20): the peak resident memory (VmHWM) of the process that
serves the app, against its budget (LFVIZ_MEMORY_BUDGET_GB, default 6 GiB).

The app is driven in this process with Streamlit's AppTest, which runs the pages' scripts as the server would
(same modules, same process-wide caches), so this process's VmHWM is the server's. The tour: every page on each
bundled sample with the embedded model; then each causal model (SmolLM2 by default) on the article sample
(~4k tokens) through every page, the Global-token lab with its full-attention loss panel included; then a small
study on the samples (embedded model). After each step: the process's RSS and peak RSS, and what the app's cache
holds by its own accounting. The Scaling page is visited, not measured (what it measures is the user's choice of
lengths; one layer's scores are limited to half of what the budget leaves).

    .venv/bin/python bench/memory_tour.py [--models smollm2,gemma3-270m] [--budget-gb 6] [--skip-embedded] \
        [--json bench/memory_tour_results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["document", "pattern", "attention", "global_lab", "fidelity", "study", "head_view", "scaling"]
STUDY = ["none", "first", "evenly:8"]  # the advisor takes minutes per document on 2 cores; its runs are plain ones


def status() -> dict[str, float]:
    """This process's VmRSS and VmHWM in GiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 2**20
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2", help="causal models to tour on the article, comma-separated")
    ap.add_argument("--budget-gb", type=float, default=None, help="sets LFVIZ_MEMORY_BUDGET_GB for the tour")
    ap.add_argument("--skip-embedded", action="store_true", help="only the causal models and the study")
    ap.add_argument("--json", help="write the steps here")
    args = ap.parse_args()
    if args.budget_gb is not None:
        os.environ["LFVIZ_MEMORY_BUDGET_GB"] = str(args.budget_gb)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from streamlit.testing.v1 import AppTest

    from lfviz.app import cache
    from lfviz.samples import list_samples

    steps = []
    t0 = time.perf_counter()

    def record(what: str, at=None):
        s = cache.store()
        errors = [e.value for e in at.error] if at is not None else []
        if at is not None and at.exception:
            errors += [f"EXCEPTION {e.value}" for e in at.exception]
        row = {"step": what, "rss_gib": round(status()["VmRSS"], 2), "peak_gib": round(status()["VmHWM"], 2),
               "cache_gib": round(s.used / 2**30, 2), "cache_budget_gib": round(s.budget / 2**30, 2),
               "entries": len(s), "evicted": s.evicted, "s": round(time.perf_counter() - t0, 1),
               "errors": [e[:300] for e in errors]}
        steps.append(row)
        print(json.dumps(row), flush=True)

    record("start")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    at.run()
    record("app opened (embedded model)", at)

    def tour(label: str):
        for page in PAGES:
            at.switch_page(f"pages/{page}.py").run()
            record(f"{label}: {page}", at)

    if not args.skip_embedded:
        for sample in list_samples():
            at.session_state["sample"], at.session_state["document"] = sample.id, sample.text
            at.session_state["queries"], at.session_state["question"] = list(sample.queries), sample.question
            tour(f"embedded, {sample.id}")
    article = next(s for s in list_samples() if s.id == "article")
    for model in [m for m in args.models.split(",") if m]:
        at.session_state["model"] = model
        at.session_state["sample"], at.session_state["document"] = article.id, article.text
        at.session_state["queries"], at.session_state["question"] = list(article.queries), article.question
        at.session_state["global"] = "0, 1, 2, 3"  # a causal model's sinks
        tour(f"{model}, article")
    at.session_state["model"], at.session_state["global"] = "embedded", "0"
    at.switch_page("pages/study.py").run()
    at.multiselect(key="study_strategies").set_value(STUDY)
    at.button(key="study_run").click().run()
    record(f"study on the samples ({', '.join(STUDY)})", at)
    peak = max(r["peak_gib"] for r in steps)
    print(f"peak RSS over the tour: {peak:.2f} GiB (budget {cache.budget_gb():g} GiB); "
          f"{time.perf_counter() - t0:.0f} s; {steps[-1]['evicted']} cache evictions")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_gib": peak, "budget_gib": cache.budget_gb(), "steps": steps},
                                              indent=1))


if __name__ == "__main__":
    main()

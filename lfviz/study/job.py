"""A placement study: every document x strategy of a corpus measured against the same weights under the model's
reference pattern (`rows.study_document`: full attention, or the native pattern of a model trained with sliding
windows), one row each, written to Parquet with a summary per strategy; both say which reference was in force.

Rows go to `<out>.parts/` one file per document as they finish, so a killed study resumes from the documents it
has (`run_study` skips their ids); the end of the study gathers them into `<out>` (sorted by document, then
strategy, whichever engine ran them) and writes `<out stem>.summary.csv`. The engine is this process
(`engine="local"`) or Ray Data (`engine="ray"`, `distributed.py`): the same `study_document` runs either way.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..analysis.fidelity import reference_config, reference_name
from ..config import AttentionConfig
from .corpus import Doc, read_corpus
from .distributed import run_on_ray
from .rows import COLUMNS, SCHEMA, Worker
from .strategies import parse_strategies

META_KEY = b"lfviz_study"


# -- files ---------------------------------------------------------------------------------------------------------
def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _write(rows: list[dict] | pd.DataFrame, path: Path, meta: dict | None = None) -> None:
    table = (pa.Table.from_pandas(rows, schema=SCHEMA, preserve_index=False) if isinstance(rows, pd.DataFrame)
             else pa.Table.from_pylist(rows, schema=SCHEMA))
    if meta is not None:
        table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # whole or absent: a killed study never leaves half a file


def read_results(path: str | Path | bytes, name: str | None = None) -> tuple[pd.DataFrame, dict]:
    """A study's rows and its settings (model, window, strategies, corpus); ValueError if it is not one.
    `path` may be the file's bytes (an upload: nothing is written to disk); `name` is what messages call it."""
    name = name or (str(path) if not isinstance(path, (bytes, bytearray)) else "the file")
    try:
        table = pq.read_table(pa.BufferReader(bytes(path)) if isinstance(path, (bytes, bytearray)) else Path(path))
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types
        raise ValueError(f"{name} is not a readable Parquet file ({e}): open a study's results file") from e
    meta = (table.schema.metadata or {}).get(META_KEY)
    if meta is None or not set(COLUMNS) <= set(table.column_names):
        raise ValueError(f"{name} is not an lfviz study's results (write one with `lfviz study`)")
    try:
        settings = json.loads(meta)
        needed = {"model", "config", "objective", "corpus"}
        if not isinstance(settings, dict) or not needed <= set(settings):
            raise KeyError(", ".join(sorted(needed - set(settings) if isinstance(settings, dict) else needed)))
        AttentionConfig.from_dict(settings["config"])  # checked: pages build it from this
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{name} has damaged study settings ({e}): write it again with `lfviz study`") from e
    return _frame(table), settings


def _frame(table: pa.Table) -> pd.DataFrame:
    """Rows as pandas, integer and bool columns nullable (a failed row has no token count)."""
    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.cast(SCHEMA).to_pandas(types_mapper=nullable.get)


def _gather(out: Path, strategies: list[str]) -> pd.DataFrame:
    frames = []
    if out.exists():
        frames.append(read_results(out)[0])
    parts = parts_dir(out)
    if parts.is_dir():
        frames += [_frame(pq.read_table(f)) for f in sorted(parts.glob("doc-*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    rows = pd.concat(frames, ignore_index=True).drop_duplicates(["id", "strategy"], keep="last")
    order = {name: i for i, name in enumerate(strategies)}
    rows = rows.assign(_s=rows["strategy"].map(order)).sort_values(["doc", "_s"], kind="stable")
    return rows.drop(columns="_s").reset_index(drop=True)


def summarize(rows: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Per strategy, in the study's order: documents, failures, the gap's mean and quantiles, how often it was
    the closest to the reference among the strategies, global tokens and seconds per document; with `reference`
    (a study's settings["reference"], e.g. "the native pattern") a last column saying what the gap is to."""
    ok = rows[rows["error"].isna()]
    best = ok.loc[ok.groupby("id")["gap"].idxmin(), "strategy"].value_counts() if len(ok) else pd.Series(dtype=int)
    out = []
    for name in dict.fromkeys(rows["strategy"]):
        mine, good = rows[rows["strategy"] == name], ok[ok["strategy"] == name]
        gap = good["gap"].to_numpy(dtype=float)
        q = np.quantile(gap, [0.1, 0.5, 0.9]) if len(gap) else [math.nan] * 3
        out.append({"strategy": name, "documents": len(mine), "failed": int(mine["error"].notna().sum()),
                    "gap mean": float(gap.mean()) if len(gap) else math.nan, "gap p10": q[0], "gap median": q[1],
                    "gap p90": q[2], "closest share": float(best.get(name, 0)) / max(1, ok["id"].nunique()),
                    "global tokens mean": float(good["global_tokens"].mean()) if len(good) else math.nan,
                    "seconds mean": float(good["seconds"].mean()) if len(good) else math.nan})
    table = pd.DataFrame(out)
    return table if reference is None else table.assign(reference=reference)


def summary_path(out: Path) -> Path:
    return out.with_name(out.stem + ".summary.csv")


# -- the job -------------------------------------------------------------------------------------------------------
def run_study(corpus: str | Path, out: str | Path, model: str = "embedded",
              config: AttentionConfig | None = None, strategies: str | list[str] = "first,sentence-starts,advisor:8",
              objective: str = "auto", queries=(), engine: str = "local", device: str = "auto",
              max_tokens: int | None = None, threads: int | None = None, limit: int | None = None,
              progress: Callable[[int, int, str], None] | None = None, runner=None, native: bool = False,
              **ray_options) -> pd.DataFrame:
    """Measure every document x strategy of `corpus` (see corpus.py) and write `out` (Parquet) and its summary.
    Documents already in `out` or its parts (a killed or extended study) are not measured again; settings that
    differ from theirs are refused. engine: "local" (this process) or "ray" (`distributed.run_on_ray`; its
    options: address, actors, cpus_per_actor, num_gpus). threads: torch threads per worker (equal threads give
    equal numbers to the last bit). progress(done, total, id) after each document. runner: an already loaded
    runner of `model` (the app's). native: measure under the model's own per-layer pattern
    (`AttentionConfig.native`, keeping config's dilation), what `--window native` asks for.
    The model is loaded here once (and handed to the local engine) to resolve "native" and to know the reference
    every strategy is measured against (`fidelity.reference_config`), which the results' settings record as
    settings["reference"] and the summary's last column repeats. Returns the rows."""
    out = Path(out)
    config = (config or AttentionConfig(window=256)).replace(global_tokens=())
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    names = strategies.split(",") if isinstance(strategies, str) else list(strategies)
    plan = parse_strategies(",".join(names))
    docs = read_corpus(corpus)[:limit]  # bad strategies or corpus refused before a slow load
    if runner is None:
        from ..model.loading import load_runner

        kwargs = {} if max_tokens is None else {"max_tokens": max_tokens}  # Ray's actors hold their own copy
        runner = load_runner(model, device="cpu" if engine == "ray" else device, **kwargs)
    if native:
        config = AttentionConfig.native(runner, dilation=config.dilation)
    settings = {"model": model, "config": config.to_dict(), "strategies": [s.name for s in plan],
                "objective": objective, "queries": list(queries), "corpus": str(corpus),
                "reference": reference_name(reference_config(runner, 1))}  # the model's, whatever the text's length
    _check_settings(out, settings)
    parts = parts_dir(out)
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "settings.json").write_text(json.dumps(settings))
    done = set(_gather(out, settings["strategies"])["id"])
    todo = [d for d in docs if d.id not in done]
    count, total = len(docs) - len(todo), len(docs)
    say = progress or (lambda *_: None)
    say(count, total, "")

    def keep(rows: list[dict]) -> None:
        nonlocal count
        _write(rows, parts / f"doc-{rows[0]['doc']:06d}.parquet")
        count += 1
        say(count, total, rows[0]["id"])

    job = dict(model=model, config=config.to_dict(), strategies=settings["strategies"], objective=objective,
               queries=list(queries), device=device, max_tokens=max_tokens, threads=threads)
    if engine == "local":
        for rows in run_here(todo, runner=runner, **job):  # the model loaded above
            keep(rows)
    elif engine == "ray":
        for rows in run_on_ray(todo, job, **ray_options):
            keep(rows)
    else:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    rows = _gather(out, settings["strategies"])
    _write(rows, out, settings)
    summarize(rows, settings["reference"]).to_csv(summary_path(out), index=False)
    shutil.rmtree(parts)
    return rows


def _check_settings(out: Path, settings: dict) -> None:
    kept = lambda s: {k: v for k, v in s.items() if k not in ("corpus", "reference")}  # reference: the model's
    same = lambda old: kept(old) == kept(settings)
    old = None
    if parts_dir(out).joinpath("settings.json").is_file():
        old = json.loads(parts_dir(out).joinpath("settings.json").read_text())
    elif out.exists():
        old = read_results(out)[1]
    if old is not None and not same(old):
        raise ValueError(f"{out} holds a study with other settings ({_describe(old)}); this one is "
                         f"{_describe(settings)}: write to another --out, or delete {out} to start again")


def _describe(s: dict) -> str:
    window = "native" if s["config"].get("native") else s["config"].get("window")
    return f"model {s['model']}, window {window}, strategies {','.join(s['strategies'])}"


def run_here(docs: list[Doc], threads: int | None = None, **job):
    """The local engine: one model in this process, documents in order; yields each document's rows."""
    if not docs:
        return
    before = torch.get_num_threads()
    worker = Worker(threads=threads, **job)
    try:
        for doc in docs:
            yield worker.study(doc)
    finally:
        torch.set_num_threads(before)

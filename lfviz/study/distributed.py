"""The Ray engine of a study: Ray Data maps the documents through an actor pool, one loaded model per actor
(`rows.Worker`), on a local Ray started for the job or on an existing cluster (`address`). Rows come back as each
document finishes; `job.run_study` writes them, so a killed study resumes the same way as a local one.

Ray is optional (`pip install lfviz[cluster]`); `make` installs it for the tests.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Iterator

import pyarrow as pa

from .corpus import Doc
from .rows import COLUMNS, SCHEMA, Worker

INSTALL = "the Ray engine needs Ray: pip install 'lfviz[cluster]' (or pip install 'ray[data]')"


class _Actor:
    """What each Ray actor holds: a Worker (one model). Ray Data hands it batches of documents."""

    def __init__(self, job: dict):
        self.worker = Worker(**job)

    def __call__(self, batch: dict) -> pa.Table:
        rows = []
        for i in range(len(batch["id"])):
            fields = {k: batch[k][i] for k in ("index", "id", "text", "question", "error")}
            missing = lambda k, v: v is None or (k in ("question", "error") and v != v)  # None or NaN
            fields = {k: None if missing(k, v) else v for k, v in fields.items()}
            rows += self.worker.study(Doc(int(fields["index"]), str(fields["id"]), fields["text"] or "",
                                          fields["question"], fields["error"]))
        return pa.Table.from_pylist(rows, schema=SCHEMA)  # one schema for every block, nulls included


def run_on_ray(docs: list[Doc], job: dict, address: str | None = None, actors: int = 2, cpus_per_actor: float = 1,
               num_gpus: float = 0) -> Iterator[list[dict]]:
    """Yield each document's rows (any order) as the actors finish them. address: None starts a local Ray
    (actors x cpus_per_actor CPUs) and stops it after; "auto" or "ray://host:10001" joins a running cluster.
    num_gpus: per actor (a fraction shares a GPU). The job's `threads` defaults to cpus_per_actor."""
    if not docs:
        return
    try:
        import ray
    except ImportError as e:
        raise ValueError(INSTALL) from e
    job = {**job, "threads": job.get("threads") or max(1, int(cpus_per_actor))}
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else max(1, int(actors * cpus_per_actor)),
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        items = [asdict(d) for d in docs]
        data = ray.data.from_items(items, override_num_blocks=len(items))
        rows = data.map_batches(_Actor, fn_constructor_kwargs={"job": job}, batch_size=1, batch_format="numpy",
                                compute=ray.data.ActorPoolStrategy(size=max(1, min(actors, len(docs)))),
                                num_cpus=cpus_per_actor, num_gpus=num_gpus)
        pending: dict[str, list[dict]] = {}
        want = len(job["strategies"])
        for row in rows.iter_rows():
            row = {c: row[c] for c in COLUMNS}
            row["positions"] = [int(p) for p in (row["positions"] if row["positions"] is not None else [])]
            pending.setdefault(row["id"], []).append(row)
            if len(pending[row["id"]]) == want:
                yield pending.pop(row["id"])
    finally:
        if started:
            ray.shutdown()

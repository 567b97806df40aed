"""Issue 20: the server's memory budget. The cache of models and runs is sized in bytes and evicts the least
recently used entries to stay within it; a run estimated above what the budget leaves is refused before it runs,
with a message saying what to change, and the app keeps working. Budgets here are set small with
`cache.reset_store` (all numbers are the cache's own accounting: no timing, no RSS measurement)."""
import sys
import threading

import pytest
import torch

import lfviz
from apptools import open_page
from lfviz.analysis.peak_memory import run_bytes
from lfviz.app import cache
from lfviz.runcache import ByteLRU, nbytes

DOC = "The contract ends on termination. The budget was approved by the board of the company. " * 20
MB = 2**20


def tensor(mb: float) -> torch.Tensor:
    return torch.zeros(int(mb * MB), dtype=torch.uint8)


# -- the byte-bounded cache --------------------------------------------------------------------------------------
def test_the_cache_evicts_least_recently_used_entries_to_stay_within_its_bytes():
    s = ByteLRU(10 * MB)
    s.put("a", tensor(4))
    s.put("b", tensor(4))
    assert s.get("a") is not None  # "a" is now the most recent: "b" goes first
    s.put("c", tensor(4))
    assert s.keys() == ["a", "c"] and s.used == 8 * MB and s.evicted == 1
    s.put("huge", tensor(11))  # larger than the whole cache: given back, not kept, nothing evicted for it
    assert "huge" not in s and s.keys() == ["a", "c"]
    with s.pin("a"):
        assert s.make_room(9 * MB) == 6 * MB  # "c" evicted; pinned "a" stays although 9 MB do not fit
    assert s.keys() == ["a"]
    assert s.make_room(9 * MB) == 10 * MB and len(s) == 0


def test_a_run_in_progress_counts_for_runs_started_meanwhile():
    s = ByteLRU(10 * MB)
    s.put("a", tensor(4))
    with s.hold(5 * MB):  # another tab's run, started after its own check
        assert s.make_room(1 * MB) == 1 * MB and "a" in s  # 4 + 5 + 1 fit in 10
        assert s.make_room(2 * MB) == 5 * MB and "a" not in s  # "a" goes: 4 + 5 + 2 > 10
        assert s.make_room(6 * MB) == 5 * MB  # never more than what the run in progress leaves
    assert s.held == 0 and s.make_room(6 * MB) == 10 * MB


def test_a_failed_computation_is_not_cached_and_concurrent_callers_compute_once():
    s = ByteLRU(10 * MB)
    with pytest.raises(RuntimeError):
        s.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("half-way")))
    assert "k" not in s
    calls, gate = [], threading.Event()

    def slow():
        calls.append(1)
        gate.wait(5)
        return tensor(1)

    threads = [threading.Thread(target=s.get_or_compute, args=("k", slow)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1 and s.used == MB


def test_sizes_count_each_storage_once():
    x = torch.zeros(1000, 100)  # 400 kB
    assert nbytes((x, x[:10], x.T)) - sys.getsizeof((1, 2, 3)) == 400_000  # views of one storage: counted once
    assert nbytes({"a": x, "b": torch.zeros(10, dtype=torch.float16)}) >= 400_020
    assert nbytes(torch.nn.Linear(100, 10)) == (100 * 10 + 10) * 4


def test_the_estimate_of_a_run_bounds_what_it_keeps():
    runner = lfviz.load_runner("embedded", device="cpu")
    n = len(runner.tokenize(DOC).input_ids)
    for cfg in (lfviz.AttentionConfig(window=32, global_tokens=(0, 5)), lfviz.AttentionConfig(window=2 * n)):
        res = runner.run(DOC, config=cfg, capture_dtype=torch.float16, output_hidden_states=True)
        est = run_bytes(runner, n, cfg)
        assert nbytes(res) <= est.kept <= 2 * nbytes(res)
    narrow, full = run_bytes(runner, n, lfviz.AttentionConfig(window=32)), run_bytes(runner, n, lfviz.AttentionConfig(window=2 * n))
    assert full.parts["captured attention"] > 10 * narrow.parts["captured attention"]
    assert run_bytes(runner, n, lfviz.AttentionConfig(window=100_000)).peak == full.peak  # cut to the text
    assert run_bytes(runner, n, lfviz.AttentionConfig(window=2 * n), capture=False).kept < narrow.kept


# -- the app under a small budget ----------------------------------------------------------------------------------
@pytest.fixture
def small_budget():
    """A budget that holds the embedded model and one captured run of DOC at window 32 with a little room to
    spare, but not the same run with a window covering the text. Restores a default cache afterwards."""
    runner = cache.get_runner("embedded")
    n = len(runner.tokenize(DOC).input_ids)
    small = run_bytes(runner, n, lfviz.AttentionConfig(window=32, global_tokens=(0,)))
    full = run_bytes(runner, n, lfviz.AttentionConfig(window=2 * n, global_tokens=(0,)))
    room = cache.runner_bytes(runner) + small.peak + small.kept // 2
    assert full.peak > room - cache.runner_bytes(runner)
    store = cache.reset_store(total=int(room / (1 - cache.MARGIN)) + 1, overhead=0)
    store.put(("runner", "embedded"), runner, cache.runner_bytes(runner))  # loaded already: the app finds it
    yield store
    cache.reset_store()


def test_runs_are_evicted_to_stay_within_a_small_budget_and_the_app_keeps_working(small_budget):
    at = open_page("attention", DOC, window="32")
    assert not at.error, [e.value for e in at.error]
    assert any(k[0] == "run" for k in small_budget.keys())
    for window in ("34", "36", "32"):  # each a new captured run: the older ones make room
        at.session_state["window"] = window
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert small_budget.used <= small_budget.budget
    assert small_budget.evicted >= 2
    assert ("runner", "embedded") in small_budget  # the model in use is never what goes


def test_a_run_that_cannot_fit_is_refused_before_it_runs_with_what_to_change(small_budget, monkeypatch):
    at = open_page("attention", DOC, window="32")
    assert not at.error
    ran = []
    real = lfviz.model.runner.Runner.run
    monkeypatch.setattr(lfviz.model.runner.Runner, "run", lambda self, *a, **k: ran.append(k) or real(self, *a, **k))
    at.session_state["window"] = "100000"  # covers the text: full attention captured, n x n per head and layer
    at.run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "memory budget" in message and "LFVIZ_MEMORY_BUDGET_GB" in message
    assert "shorten the text to about" in message and "another baseline" in message
    assert "Nothing was run" in message
    assert not ran  # refused before the model ran
    assert small_budget.used <= small_budget.budget
    at.session_state["window"] = "32"  # back to what fits: the page works again
    at.run()
    assert not at.exception and not at.error
    assert at.get("plotly_chart")


def test_a_bad_budget_value_says_what_to_give(monkeypatch):
    monkeypatch.setenv(cache.BUDGET_ENV, "six")
    with pytest.warns(UserWarning, match="not a positive number of GiB"):
        assert cache.budget_gb() == cache.DEFAULT_BUDGET_GB
    monkeypatch.setenv(cache.BUDGET_ENV, "2.5")
    assert cache.budget_gb() == 2.5


def test_memory_held_outside_the_cache_counts_against_the_budget():
    s = cache._make_store(8 << 30)  # measures the process now, as the server's cache does
    s.overhead -= 200 * MB  # as if the process had grown since: the figure is above its floor of 0
    before = cache.untracked_bytes(s)
    assert before > 0
    held = torch.ones(300 * MB, dtype=torch.uint8)  # e.g. session state: outside the cache, inside the process
    assert cache.untracked_bytes(s) - before >= 250 * MB
    s.put("run", torch.ones(100 * MB, dtype=torch.uint8))  # the cache's own entries are not counted twice
    assert abs(cache.untracked_bytes(s) - before - 300 * MB) < 60 * MB
    del held
    assert not cache._make_store(8 << 30, overhead=0).live  # a given overhead (tests): no RSS term


@pytest.fixture
def roomy_budget():
    runner = cache.get_runner("embedded")
    store = cache.reset_store(total=2 << 30, overhead=0)
    store.put(("runner", "embedded"), runner, cache.runner_bytes(runner))
    yield store
    cache.reset_store()


@pytest.mark.parametrize("page, button, what, result", [
    ("global_lab", "lab_sweep_run", "Each run of the sweep", "_lab_sweep"),
    ("fidelity", "fid_suggest", "Each run of the advisor", "_fid_advice"),
    ("study", "study_run", "Each run of the study", "_study_samples"),  # its documents are the samples, not DOC
])
def test_a_sweep_or_the_advisor_that_cannot_fit_is_refused_before_it_runs(roomy_budget, page, button, what, result):
    runner, store = cache.get_runner("embedded"), roomy_budget
    at = open_page(page, DOC, window="32", queries=["termination of the contract"])
    assert not at.error, [e.value for e in at.error]
    plain = run_bytes(runner, len(runner.tokenize(DOC).input_ids), lfviz.AttentionConfig(window=32), capture=False)
    store.budget = store.used + plain.peak // 2  # the page's runs stay cached; one more run does not fit
    at.button(key=button).click().run()
    assert not at.exception
    assert any(f"{what} would take about" in e.value for e in at.error), [e.value for e in at.error]
    assert result not in at.session_state  # nothing ran


def test_the_scaling_page_skips_lengths_whose_scores_exceed_what_the_budget_leaves(roomy_budget, monkeypatch):
    import lfviz.analysis.scaling as scaling

    seen = {}
    real = scaling.measure

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    monkeypatch.setattr(scaling, "measure", spy)
    at = open_page("scaling", DOC)
    roomy_budget.budget = roomy_budget.used + 8 * MB  # 4 MB for one layer's scores
    at.button(key="scaling_run").click().run()
    assert not at.exception
    assert seen["max_score_bytes"] <= 4 * MB
    rows = at.session_state["scaling_results"]["rows"]
    skipped = [r for r in rows if r["key"] == "full" and "limit" in r["note"]]
    assert skipped and all(r["scores_mb"] > 4 for r in skipped)


def test_the_message_names_the_fix_that_applies(small_budget):
    runner = cache.get_runner("embedded")
    n = len(runner.tokenize(DOC).input_ids)
    wide = lfviz.AttentionConfig(window=n // 2 * 2 - 2)  # wide but narrower than the text: not full attention
    small_budget.budget = cache.runner_bytes(runner) + run_bytes(runner, n, wide).peak * 3 // 4
    with pytest.raises(cache.MemoryBudgetError, match="narrow the window") as e:
        cache.check_fits("embedded", run_bytes(runner, n, wide), wide, capture=True)
    assert "another baseline" not in str(e.value) and f"(it has {n:,})" in str(e.value)
    with pytest.raises(cache.MemoryBudgetError) as e:  # without capture, the window is not the problem
        cache.check_fits("embedded", run_bytes(runner, n, wide, capture=False), wide, capture=False)
    assert "shorten the text" in str(e.value) and "window" not in str(e.value).split("To fit:")[1]
    small_budget.budget = cache.runner_bytes(runner) + 10 * MB  # no length fits: the budget itself is the fix
    with pytest.raises(cache.MemoryBudgetError, match="raise LFVIZ_MEMORY_BUDGET_GB"):
        cache.check_fits("embedded", run_bytes(runner, n, wide), wide, capture=True)

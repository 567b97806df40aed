"""A placement study over a small corpus the tests write: one row per document x strategy, each re-checkable;
a corrupt document recorded, not fatal; a killed study resumes; Ray (local, 2 CPUs) gives the same rows and
numbers as this process; the command line prints the summary."""
import pytest
import torch

from lfviz.analysis.fidelity import full_attention, measure
from lfviz.cli import main
from lfviz.config import AttentionConfig
from lfviz.study.job import parts_dir, read_results, run_study, summary_path

TEXTS = {"a": "The tenant pays rent monthly. The landlord repairs the roof. " * 6,
         "b": "Sliding windows keep attention linear. Global tokens see everything. " * 9,
         "c": "A short note about the budget. It was approved. " * 4}
CFG = AttentionConfig(window=16)
PLAN = "none,first,every-k:32,advisor:2"


@pytest.fixture()
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in TEXTS.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (folder / "broken.txt").write_bytes(b"\xff\xfe\x00 not text")
    return folder


def numbers(rows):
    """Everything but the timing, which no two runs share."""
    return rows.drop(columns=["seconds"]).reset_index(drop=True)


def test_rows_are_measured_runs_and_a_corrupt_document_is_recorded(corpus, tmp_path, embedded):
    out = tmp_path / "study.parquet"
    rows = run_study(corpus, out, config=CFG, strategies=PLAN, threads=1)
    assert len(rows) == 4 * 4 and list(rows["id"].unique()) == ["a", "b", "broken", "c"]
    broken = rows[rows["id"] == "broken"]
    assert broken["error"].str.contains("UTF-8").all() and broken["gap"].isna().all()
    good = rows[rows["error"].isna()]
    assert len(good) == 12 and (good["gap"] >= 0).all() and good["pooled_cosine"].between(0, 1).all()
    for row in good.itertuples():  # re-check: the same run, measured again, gives the row's number
        if row.id != "b":
            continue
        positions = tuple(int(p) for p in row.positions)
        full = embedded.run(TEXTS["b"], config=full_attention(row.tokens), capture=False, output_hidden_states=True)
        mine = embedded.run(TEXTS["b"], config=CFG.replace(global_tokens=positions), capture=False,
                            output_hidden_states=True)
        assert measure(full, mine).gap == pytest.approx(row.gap, abs=1e-5)
    by = {r.strategy: r for r in good[good["id"] == "b"].itertuples()}
    assert by["none"].global_tokens == 0 and list(by["first"].positions) == [0] and by["advisor:2"].global_tokens <= 2
    assert by["advisor:2"].gap <= by["first"].gap + 1e-9 or by["advisor:2"].gap <= by["every-k:32"].gap + 1e-9
    back, settings = read_results(out)
    assert numbers(back).equals(numbers(rows)) and settings["strategies"] == PLAN.split(",")
    summary = summary_path(out).read_text().splitlines()
    assert summary[0].startswith("strategy,documents,failed,gap mean") and len(summary) == 5
    assert not parts_dir(out).exists()


def test_a_killed_study_resumes_from_the_documents_it_has(corpus, tmp_path):
    whole = run_study(corpus, tmp_path / "whole.parquet", config=CFG, strategies="none,first", threads=1)
    out = tmp_path / "killed.parquet"

    def kill_after_two(done, total, doc_id):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(corpus, out, config=CFG, strategies="none,first", threads=1, progress=kill_after_two)
    assert not out.exists() and len(list(parts_dir(out).glob("doc-*.parquet"))) == 2
    seen = []
    rows = run_study(corpus, out, config=CFG, strategies="none,first", threads=1,
                     progress=lambda done, total, doc_id: seen.append(doc_id))
    assert seen == ["", "broken", "c"]  # the first two documents were not measured again
    assert numbers(rows).equals(numbers(whole))
    with pytest.raises(ValueError, match="other settings"):
        run_study(corpus, out, config=AttentionConfig(window=32), strategies="none,first")


@pytest.mark.slow
def test_ray_gives_the_same_rows_and_numbers(corpus, tmp_path):
    here = run_study(corpus, tmp_path / "here.parquet", config=CFG, strategies=PLAN, threads=1)
    ray_rows = run_study(corpus, tmp_path / "ray.parquet", config=CFG, strategies=PLAN, engine="ray", actors=2,
                         cpus_per_actor=1, threads=1)
    assert numbers(ray_rows).equals(numbers(here))
    assert torch.get_num_threads() >= 1


def test_the_command_line_prints_the_summary(corpus, tmp_path, capsys):
    out = tmp_path / "cli.parquet"
    assert main(["study", str(corpus), "--out", str(out), "--window", "16", "--strategies", "none,first"]) == 0
    printed = capsys.readouterr()
    assert "gap mean" in printed.out and "4 documents x 2 strategies" in printed.out and "2 rows failed" in printed.out
    assert "4/4 documents" in printed.err
    assert main(["study", str(corpus), "--out", str(out), "--strategies", "every-k"]) == 2
    assert "give a number, e.g. every-k:8" in capsys.readouterr().err

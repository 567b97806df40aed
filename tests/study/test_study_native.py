"""`lfviz study --window native` on a tiny random Gemma 3 folder (trained with sliding windows): the study runs the
model's own per-layer pattern, measures every strategy against the native pattern (not full attention), and says
so in what it prints, the summary file and the results' settings. A model trained with full attention keeps full
attention as its reference."""
import pandas as pd
import pytest

import lfviz
from lfviz.cli import main
from lfviz.config import AttentionConfig
from lfviz.study.job import read_results, run_study, summary_path

TEXT = "The keeper lit the lamp at dusk and logged the passing ships. A storm came in from the west. " * 3


@pytest.fixture(scope="module")
def gemma_folder(tiny_gemma3_folder):
    return tiny_gemma3_folder


@pytest.fixture()
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT, encoding="utf-8")
    return folder


def test_window_native_measures_against_the_native_pattern(gemma_folder, corpus, tmp_path, capsys):
    out = tmp_path / "study.parquet"
    assert main(["study", str(corpus), "--out", str(out), "--model", str(gemma_folder), "--window", "native",
                 "--strategies", "none,first-k:4", "--device", "cpu", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "Window native" in printed and "measured against the native pattern" in printed
    rows, settings = read_results(out)
    runner = lfviz.load_runner(str(gemma_folder), device="cpu")
    config = AttentionConfig.from_dict(settings["config"])
    assert config.is_native and config == AttentionConfig.native(runner)  # windows 8,8,full,8,8,full
    assert settings["reference"] == "the native pattern"
    gap = dict(zip(rows["strategy"], rows["gap"]))
    assert rows["error"].isna().all()
    assert gap["none"] == pytest.approx(0, abs=1e-6)  # the native pattern itself: no gap to its reference
    assert gap["first-k:4"] > 1e-4  # four global tokens change the model
    summary = pd.read_csv(summary_path(out))
    assert list(summary["reference"]) == ["the native pattern"] * 2


def test_a_window_on_a_sliding_model_is_still_measured_against_native(gemma_folder, corpus, tmp_path):
    """Every layer at window 16 is not what Gemma 3 was trained with: its gap is to the native pattern."""
    rows = run_study(corpus, tmp_path / "w16.parquet", model=str(gemma_folder), config=AttentionConfig(window=16),
                     strategies="none", device="cpu", threads=1)
    settings = read_results(tmp_path / "w16.parquet")[1]
    assert settings["reference"] == "the native pattern" and not AttentionConfig.from_dict(settings["config"]).is_native
    assert rows["gap"].iloc[0] > 1e-4  # windows that differ from the native ones


def test_a_model_trained_with_full_attention_keeps_full_attention(corpus, tmp_path, embedded, capsys):
    out = tmp_path / "embedded.parquet"
    assert main(["study", str(corpus), "--out", str(out), "--window", "native", "--strategies", "none",
                 "--device", "cpu", "--threads", "1"]) == 0
    assert "measured against full attention" in capsys.readouterr().out
    settings = read_results(out)[1]
    assert settings["reference"] == "full attention"
    assert AttentionConfig.from_dict(settings["config"]) == AttentionConfig.native(embedded)


def test_a_misspelt_window_is_refused_with_what_to_write(corpus, tmp_path, capsys):
    assert main(["study", str(corpus), "--out", str(tmp_path / "x.parquet"), "--window", "natve"]) == 2
    err = capsys.readouterr().err
    assert "'natve' is not a whole number" in err and "'native' for the model's own per-layer pattern" in err

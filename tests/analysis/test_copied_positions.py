"""Where a converted model's copied position embeddings restart, read from its weights, and the advisor's warning
when a pick lands there (issue 20: it picked token 512 of the embedded model without a word)."""
import pytest
import torch
from transformers import BertConfig, BertModel

import lfviz
from lfviz.analysis import advisor
from lfviz.analysis.positions import copied_every, restart_note, restarts


@pytest.fixture(scope="module")
def converted_64(tmp_path_factory, bert_tokenizer):
    """A tiny BERT with 64 positions, converted to 256 tokens: its positions restart every 64."""
    path = tmp_path_factory.mktemp("bert64")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=37, max_position_embeddings=64)).save_pretrained(path)
    bert_tokenizer.save_pretrained(path)
    return lfviz.load_runner(str(path), device="cpu", max_tokens=256)


def test_the_period_is_read_from_the_weights(embedded, converted_64, tiny_causal):
    assert copied_every(embedded) == 512  # all-MiniLM-L6-v2 had 512 positions
    assert copied_every(converted_64) == 64
    assert copied_every(tiny_causal) is None  # rotary positions: no table to copy


def test_a_trained_position_table_does_not_repeat(converted_64):
    table = converted_64.model.embeddings.position_embeddings.weight
    saved = table.detach().clone()
    try:
        with torch.no_grad():
            table[1 + 64:] += 1e-3 * torch.randn_like(table[1 + 64:])  # the copies moved, as further training would
        assert copied_every(converted_64) is None
    finally:
        with torch.no_grad():
            table.copy_(saved)
    assert copied_every(converted_64) == 64


def test_restarts_and_the_note():
    assert restarts([0, 63, 64, 128, 200], 64) == [64, 128]
    assert restarts([512], None) == []
    note = restart_note([512], 512)
    assert note.startswith("position 512 is where the converted model's copied position embeddings restart")
    assert "positions 64 and 128 are where" in restart_note([64, 128], 64)


def test_the_advisor_says_when_a_pick_sits_where_copied_positions_restart(converted_64):
    """The same placement problem on a model whose positions repeat every 64: a pick at 64 or 128 comes with the
    warning, naming the model's own period; picks elsewhere carry none."""
    text = " ".join(f"word{i % 17} is here." for i in range(40))
    n = len(converted_64.tokenize(text).input_ids)
    assert 130 < n <= 256
    advice = advisor.advise(converted_64, text, lfviz.AttentionConfig(window=8), k=1, size=3, compare_presets=False)
    assert advice.copied_every == 64
    advice.picks = [advisor.Pick(64, "x", advisor.FAR, 0.1, 0.1)]
    assert advice.restarts == [64]
    assert "position 64 is where the converted model's copied position embeddings restart" in advice.restart_note()
    assert "had 64 positions" in advice.restart_note()
    advice.picks = [advisor.Pick(63, "x", advisor.FAR, 0.1, 0.1)]
    assert advice.restarts == [] and advice.restart_note() is None

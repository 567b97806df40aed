"""The runner on the embedded model: faithfulness to the source BERT, predictions, input errors."""
import threading
import warnings

import pytest
import torch
from transformers import BertModel

import lfviz
from lfviz.model.loading import embedded_model_dir

DOC = ("Longformer reads long documents. Every token attends to a sliding window of its neighbours, and a few "
       "global tokens attend to everything. The cat sat on the mat while the committee reviewed the budget.")


def test_embedded_reproduces_source_bert(embedded):
    """Window covering the text and no global token: the converted model is the original MiniLM (<= 1e-4)."""
    bert = BertModel.from_pretrained(embedded_model_dir(), add_pooling_layer=False).eval()
    text = " ".join([DOC] * 12)  # ~ 500 tokens
    res = embedded.run(text, config=lfviz.AttentionConfig(window=1024), capture=False)
    assert 400 < res.n <= 512
    with torch.no_grad():
        ref = bert(torch.tensor([res.input_ids])).last_hidden_state[0]
    assert (ref - res.last_hidden_state).abs().max().item() <= 1e-4


def test_embedded_facts(embedded):
    assert embedded.converted and "converted" in embedded.description.lower()
    assert (embedded.num_layers, embedded.num_heads, embedded.max_tokens) == (6, 12, 4096)


def test_run_api_shapes(embedded):
    cfg = lfviz.AttentionConfig(window=16, dilation=[1, 1, 1, 1, 2, [1] * 10 + [2, 2]], global_tokens=(0, 5))
    res = embedded.run(DOC, config=cfg, queries=["sliding window attention", "cooking pasta"])
    n = res.n
    assert res.tokens[0] == "[CLS]" and len(res.tokens) == len(res.input_ids) == n
    assert res.last_hidden_state.shape == (n, 384)
    assert res.capture.band(5).shape == (12, n, 17)
    assert res.capture.to_global(5).shape == (12, n, 2) and res.capture.from_global(5).shape == (12, 2, n)
    assert res.capture.band(0)[:, [0, 5]].abs().sum() == 0  # global rows are zero in the band
    dense = res.capture.weights(3).dense()
    torch.testing.assert_close(dense.sum(-1), torch.ones(12, n), atol=1e-5, rtol=0)
    labels = [r["label"] for r in res.predictions.rows]
    assert labels == ["sliding window attention", "cooking pasta"]
    assert len(res.predictions.token_scores) == 2 and len(res.predictions.token_scores[0]) == n
    assert len(res.offsets) == n and res.offsets[1][0] == 0


def test_configuration_changes_predictions(embedded):
    q = ["a cat on a mat"]
    base = embedded.run(DOC, config=lfviz.AttentionConfig(window=512), queries=q, capture=False)
    narrow = embedded.run(DOC, config=lfviz.AttentionConfig(window=2, global_tokens=(0,)), queries=q, capture=False)
    diff = lfviz.diff_predictions(base.predictions, narrow.predictions)
    assert diff[0]["label"] == "a cat on a mat" and abs(diff[0]["delta"]) > 1e-4


def test_no_queries_gives_a_document_strip(embedded):
    res = embedded.run(DOC, capture=False)
    assert res.predictions.rows == [] and res.predictions.token_score_labels == ["document"]


def test_capture_options(embedded):
    off = embedded.run(DOC, capture=False)
    assert not off.capture and off.capture.captured_layers == []
    some = embedded.run(DOC, capture_layers=[0, 5], capture_dtype=torch.float16)
    assert some.capture.captured_layers == [0, 5] and some.capture.band(0).dtype == torch.float16
    full = embedded.run(DOC)
    torch.testing.assert_close(some.capture.band(5).float(), full.capture.band(5), atol=1e-3, rtol=0)
    # capture off may take another exact kernel (fused SDPA when the window covers the text): fp32 rounding
    torch.testing.assert_close(off.last_hidden_state, full.last_hidden_state, atol=1e-5, rtol=0)


def test_input_ids_path_equals_text_path(embedded):
    a = embedded.run(DOC, capture=False)
    b = embedded.run(input_ids=a.input_ids, capture=False)
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state)


@pytest.mark.parametrize("kwargs, fix", [
    (dict(text=""), "text is empty"),
    (dict(text="   \n\t "), "text is empty"),
    (dict(text=DOC, config=lfviz.AttentionConfig(global_tokens=(10_000,))), "out of range"),
    (dict(text=DOC, config=lfviz.AttentionConfig(window=[8, 8])), "2 entries but the model has 6 layers"),
    (dict(text=DOC, config=lfviz.AttentionConfig(dilation=[1, 1, 1, 1, 1, [1, 2]])), "12 heads"),
    (dict(input_ids=[]), "input_ids is empty"),
    (dict(input_ids=[101, 10 ** 9]), "outside the vocabulary"),
    (dict(input_ids=[101] * 5000), "cut it to at most 4096"),
    (dict(text=DOC, input_ids=[101]), "not both"),
    (dict(text=DOC, config={"window": 8}), "AttentionConfig"),
])
def test_bad_input_says_what_to_fix(embedded, kwargs, fix):
    with pytest.raises(ValueError, match=fix):
        embedded.run(**kwargs)


def test_too_long_text_is_truncated_with_a_visible_warning(embedded):
    text = "word " * 5000
    with pytest.warns(UserWarning, match="only the first 4,096 tokens"):
        res = embedded.run(text, config=lfviz.AttentionConfig(window=64), capture=False)
    assert res.n == 4096 and res.tokens[-1] == "[SEP]"
    assert res.warnings and "cut off" in res.warnings[0]


def test_concurrent_runs_equal_sequential(embedded):
    """Threads sharing one model with different configurations get exactly their own result."""
    configs = [lfviz.AttentionConfig(window=w, dilation=d, global_tokens=g)
               for w, d, g in [(4, 1, (0,)), (16, 2, ()), (8, 3, (1, 7)), (64, 1, (3,))]]
    alone = [embedded.run(DOC, config=c) for c in configs]
    results, errors = [None] * len(configs), []

    def work(i):
        try:
            for _ in range(2):
                results[i] = embedded.run(DOC, config=configs[i])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(configs))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for a, b in zip(alone, results):
        assert torch.equal(a.last_hidden_state, b.last_hidden_state)
        for layer in range(6):
            assert torch.equal(a.capture.band(layer), b.capture.band(layer))
            assert torch.equal(a.capture.from_global(layer), b.capture.from_global(layer))
    assert all(len(m._forward_hooks) == 0 for m in embedded.encoder.attention_modules())


def test_a_hook_called_without_its_kwargs_keeps_nothing(embedded):
    """torch reads a module's hooks, then asks for each whether it takes kwargs: a run ending on another thread can
    remove its hook in between, and torch then calls that hook without them (the concurrent test above saw
    "_hook() missing 1 required positional argument"). Such a call is a finished run's: it does nothing."""
    import torch.nn as nn

    from lfviz.model.capture import CaptureSession

    session = CaptureSession(None, torch.float32, None)
    module = nn.Module()
    module.layer_idx = 0
    session._hook(module, (), (torch.zeros(1), object()))  # no kwargs: nothing kept, no error
    assert not session.capture


def test_suggested_global_tokens(embedded):
    assert embedded.suggest_global_tokens(DOC) == (0,)


def test_warm_up_runs_one_input_and_leaves_no_state(embedded):
    before = embedded.run("Global tokens see everything.", config=lfviz.AttentionConfig(window=4, global_tokens=(0,)))
    embedded.warm_up(64)
    after = embedded.run("Global tokens see everything.", config=lfviz.AttentionConfig(window=4, global_tokens=(0,)))
    torch.testing.assert_close(after.last_hidden_state, before.last_hidden_state, atol=0, rtol=0)

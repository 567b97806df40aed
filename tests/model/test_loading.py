"""Loading real checkpoints: tiny random ones that the tests save (Hub downloads are impossible here)."""
import json

import pytest
import torch
from transformers import (BertConfig, BertModel, LongformerForMaskedLM, LongformerForQuestionAnswering,
                          LongformerForSequenceClassification, LongformerModel)

import lfviz
from conftest import save_tiny

DOC = "The committee approved the budget. Longformer attends to a sliding window."


def test_plain_longformer_folder(tmp_path, bert_tokenizer):
    path = save_tiny(LongformerModel, tmp_path / "m", bert_tokenizer)
    runner = lfviz.load_runner(str(path), device="cpu")
    assert runner.task == "similarity" and runner.num_layers == 2 and runner.max_tokens == 512
    res = runner.run(DOC, config=lfviz.AttentionConfig(window=8, global_tokens=(0,)), queries=["budget"])
    assert res.capture.band(1).shape == (4, res.n, 9) and res.predictions.rows[0]["label"] == "budget"
    # same numbers as HF on the checkpoint it saved (dilation 1)
    hf = LongformerModel.from_pretrained(path).eval()
    gm = torch.zeros(1, res.n, dtype=torch.long)
    gm[0, 0] = 1
    with torch.no_grad():
        ref = hf(torch.tensor([res.input_ids]), global_attention_mask=gm).last_hidden_state[0]
    torch.testing.assert_close(res.last_hidden_state, ref, atol=1e-4, rtol=0)


def test_fill_mask_head(tmp_path, bert_tokenizer):
    runner = lfviz.load_runner(str(save_tiny(LongformerForMaskedLM, tmp_path / "mlm", bert_tokenizer)), device="cpu")
    assert runner.task == "fill-mask"
    res = runner.run("The [MASK] approved the [MASK].", config=lfviz.AttentionConfig(window=4), top_k=3)
    rows = res.predictions.rows
    assert len(rows) == 6 and {r["position"] for r in rows} == {2, 5}
    assert all(0 <= r["score"] <= 1 for r in rows)
    assert "put [MASK] in the text" in runner.run(DOC).predictions.note


def test_question_answering_head(tmp_path, bert_tokenizer):
    runner = lfviz.load_runner(str(save_tiny(LongformerForQuestionAnswering, tmp_path / "qa", bert_tokenizer)),
                               device="cpu")
    q = "Who approved the budget?"
    globals_ = runner.suggest_global_tokens(DOC, question=q)
    assert globals_ == tuple(range(1, 6))  # who approved the budget ? (after [CLS])
    res = runner.run(DOC, question=q, config=lfviz.AttentionConfig(window=8, global_tokens=globals_), top_k=4)
    rows = res.predictions.rows
    assert rows and len(rows) <= 4
    sep = res.tokens.index("[SEP]")
    for r in rows:  # answers come from the document, never the question
        assert sep < r["start"] <= r["end"] < res.n - 1 and r["end"] - r["start"] < 30
    assert rows == sorted(rows, key=lambda r: -r["score"])


def test_classification_head(tmp_path, bert_tokenizer):
    path = save_tiny(LongformerForSequenceClassification, tmp_path / "cls", bert_tokenizer, num_labels=3,
                     id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    runner = lfviz.load_runner(str(path), device="cpu")
    res = runner.run(DOC, config=lfviz.AttentionConfig(window=8, global_tokens=(0,)))
    assert sorted(r["label"] for r in res.predictions.rows) == ["neg", "neu", "pos"]
    assert abs(sum(r["score"] for r in res.predictions.rows) - 1) < 1e-5
    hf = LongformerForSequenceClassification.from_pretrained(path).eval()
    gm = torch.zeros(1, res.n, dtype=torch.long)
    gm[0, 0] = 1
    with torch.no_grad():
        probs = torch.softmax(hf(torch.tensor([res.input_ids]), global_attention_mask=gm).logits[0], -1)
    got = {r["label"]: r["score"] for r in res.predictions.rows}
    assert abs(got["pos"] - probs[2].item()) < 1e-4


def test_bert_folder_is_converted(tmp_path, bert_tokenizer):
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=37, max_position_embeddings=64)).eval()
    bert.save_pretrained(tmp_path / "bert", safe_serialization=True)
    bert_tokenizer.save_pretrained(tmp_path / "bert")
    runner = lfviz.load_runner(str(tmp_path / "bert"), device="cpu", max_tokens=256)
    assert runner.converted and runner.max_tokens == 256
    res = runner.run(DOC, config=lfviz.AttentionConfig(window=64), capture=False)
    with torch.no_grad():
        ref = bert(torch.tensor([res.input_ids])).last_hidden_state[0]
    torch.testing.assert_close(res.last_hidden_state, ref, atol=1e-4, rtol=0)


def test_pickle_only_checkpoint_is_refused(tmp_path, bert_tokenizer):
    path = save_tiny(LongformerModel, tmp_path / "bin", bert_tokenizer)
    weights = path / "model.safetensors"
    torch.save(LongformerModel.from_pretrained(path).state_dict(), path / "pytorch_model.bin")  # pickle
    weights.unlink()
    with pytest.raises(ValueError, match="only safetensors"):
        lfviz.load_runner(str(path), device="cpu")


@pytest.mark.parametrize("model, fix", [
    ("allenai/longformer-base-4096", "huggingface-cli download allenai/longformer-base-4096"),
    ("", "model is empty"),
    ("./no/such/folder", "is not a folder"),
])
def test_unavailable_models_say_how_to_get_them(model, fix):
    with pytest.raises(ValueError, match=fix):
        lfviz.load_runner(model, device="cpu")


def test_foreign_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="runs Longformer checkpoints"):
        lfviz.load_runner(str(tmp_path), device="cpu")


def test_embedded_16k_option():
    runner = lfviz.load_runner("embedded", device="cpu", max_tokens=16384)
    assert runner.max_tokens == 16384 and runner.model_id == "embedded-16k"
    with pytest.raises(ValueError, match="4096 or 16384"):
        lfviz.load_runner("embedded", device="cpu", max_tokens=1000)


def test_cuda_request_without_gpu_is_clear():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        lfviz.load_runner("embedded", device="cuda")


def test_remote_code_is_never_trusted(tmp_path, bert_tokenizer, monkeypatch):
    """Every from_pretrained call lfviz makes passes trust_remote_code=False and asks for safetensors."""
    import transformers

    import lfviz.model.loading as loading

    seen = []
    real_model = LongformerForSequenceClassification.from_pretrained.__func__
    real_tok = transformers.AutoTokenizer.from_pretrained.__func__

    def spy_model(cls, *a, **kw):
        seen.append(("model", kw.get("trust_remote_code"), kw.get("use_safetensors")))
        return real_model(cls, *a, **kw)

    def spy_tok(cls, *a, **kw):
        seen.append(("tokenizer", kw.get("trust_remote_code"), None))
        return real_tok(cls, *a, **kw)

    monkeypatch.setattr(LongformerForSequenceClassification, "from_pretrained", classmethod(spy_model))
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", classmethod(spy_tok))
    path = save_tiny(LongformerForSequenceClassification, tmp_path / "cls", bert_tokenizer, num_labels=2)
    lfviz.load_runner(str(path), device="cpu")
    assert ("model", False, True) in seen and ("tokenizer", False, None) in seen
    assert all(flag is False for _, flag, _ in seen)

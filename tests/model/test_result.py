import pytest
import torch

import lfviz

DOC = "Global tokens see everything; the rest see a window. " * 3


def test_save_load_exact_round_trip(embedded, tmp_path):
    cfg = lfviz.AttentionConfig(window=[8, 8, 16, 16, 4, 4], dilation=[1, 1, 2, 2, [1] * 6 + [3] * 6, 1],
                                global_tokens=(0, 4))
    res = embedded.run(DOC, config=cfg, queries=["windows", "budget"], output_hidden_states=True)
    path = res.save(tmp_path / "run.safetensors")
    back = lfviz.load_result(path)
    assert back.config == cfg and back.model_id == "embedded"
    assert back.tokens == res.tokens and back.input_ids == res.input_ids and back.offsets == res.offsets
    assert back.text == DOC
    assert torch.equal(back.last_hidden_state, res.last_hidden_state)
    assert len(back.hidden_states) == 7 and all(torch.equal(a, b) for a, b in zip(back.hidden_states, res.hidden_states))
    assert back.capture.captured_layers == res.capture.captured_layers
    for layer in res.capture.captured_layers:
        a, b = res.capture.weights(layer), back.capture.weights(layer)
        assert torch.equal(a.band, b.band) and torch.equal(a.to_global, b.to_global)
        assert torch.equal(a.from_global, b.from_global)
        assert a.dilation == b.dilation and a.global_tokens == b.global_tokens
    assert back.predictions == res.predictions


def test_fp16_and_partial_capture_round_trip(embedded, tmp_path):
    res = embedded.run(DOC, capture_layers=[2], capture_dtype=torch.float16)
    back = lfviz.load_result(res.save(tmp_path / "r.safetensors"))
    assert back.capture.captured_layers == [2] and back.capture.band(2).dtype == torch.float16
    assert torch.equal(back.capture.band(2), res.capture.band(2))


def test_corrupt_truncated_and_foreign_files(embedded, tmp_path):
    good = embedded.run(DOC).save(tmp_path / "good.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="export the run again"):
        lfviz.load_result(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable"):
        lfviz.load_result(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an lfviz run export"):
        lfviz.load_result(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="no such file"):
        lfviz.load_result(tmp_path / "missing.safetensors")


def test_export_subset_in_memory(embedded, tmp_path):
    res = embedded.run(DOC, capture_dtype=torch.float16)
    data = res.to_bytes(layers=[1, 4])
    assert res.export_size([1, 4]) < len(data) < res.export_size()
    (tmp_path / "sub.safetensors").write_bytes(data)
    back = lfviz.load_result(tmp_path / "sub.safetensors")
    assert back.capture.captured_layers == [1, 4]
    assert torch.equal(back.capture.band(4), res.capture.band(4)) and back.tokens == res.tokens


def test_load_from_bytes(embedded):
    res = embedded.run(DOC, capture_layers=[0])
    back = lfviz.load_result(res.to_bytes())
    assert back.tokens == res.tokens and torch.equal(back.capture.band(0), res.capture.band(0))
    with pytest.raises(ValueError, match="not a readable"):
        lfviz.load_result(b"garbage")


def test_export_size_is_known_before_preparing_and_options_shrink_it(embedded):
    res = embedded.run(DOC, queries=["fees"], question="What is due?", output_hidden_states=True)
    full = res.to_bytes()
    assert 0 < len(full) - res.export_size() < 300_000  # the estimate misses only the header
    small = res.to_bytes(layers=[2], hidden_states=False, dtype=torch.float16)
    assert 0 < len(small) - res.export_size([2], hidden_states=False, dtype=torch.float16) < 300_000
    assert len(small) < len(full) / 5
    back = lfviz.load_result(small)
    assert back.queries == ["fees"] and back.question == "What is due?" and back.hidden_states is None
    assert back.capture.band(2).dtype == torch.float16 and back.capture.captured_layers == [2]
    torch.testing.assert_close(back.capture.band(2).float(), res.capture.band(2), atol=1e-3, rtol=0)


def test_a_causal_export_keeps_the_past_half_and_reads_back_whole(tiny_causal, tmp_path):
    res = tiny_causal.run("the lamp at dusk " * 8, config=lfviz.AttentionConfig(window=8, global_tokens=(0,)))
    w = res.capture.weights(0)
    assert w.causal and w.stored.shape[-1] == 5
    back = lfviz.load_result(res.save(tmp_path / "c.safetensors"))
    for layer in res.capture.captured_layers:
        a, b = res.capture.weights(layer), back.capture.weights(layer)
        assert b.causal and torch.equal(a.stored, b.stored) and torch.equal(a.band, b.band)
        assert torch.equal(a.dense(), b.dense()) and not torch.triu(b.dense(), diagonal=1).any()

"""The Attention page on a model with learned sinks: a tiny random gpt-oss folder (2 layers, 4 heads, sinks set
non-zero) loaded as the app's model shows the sink mass per layer and head (mean over queries) and per query for
the sidebar's layer and head, with words saying what it is; a model without sinks shows nothing of it."""
import numpy as np
import pytest
import torch
import transformers as tf
from apptools import chart, new_app, values

import lfviz
from lfviz.textspec import config_from_text

DOC = "The keeper lit the lamp at dusk and logged the passing ships in a worn book. " * 4


@pytest.fixture(scope="module")
def gpt_oss_folder(tmp_path_factory, bert_tokenizer):
    torch.manual_seed(0)
    config = tf.GptOssConfig(vocab_size=bert_tokenizer.vocab_size, hidden_size=64, intermediate_size=96,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                             sliding_window=8, num_local_experts=4, num_experts_per_tok=2,
                             max_position_embeddings=256, initializer_range=0.2, pad_token_id=0)
    model = tf.GptOssForCausalLM(config).eval()
    with torch.no_grad():  # a random model's sinks start at 0: spread them so heads differ
        for layer in model.model.layers:
            layer.self_attn.sinks.copy_(torch.linspace(-1, 2, layer.self_attn.sinks.numel()))
    folder = tmp_path_factory.mktemp("tiny-gpt-oss")
    model.save_pretrained(folder, safe_serialization=True)
    bert_tokenizer.save_pretrained(folder)
    return folder


def attention_page(model=None):
    at = new_app(300)
    at.session_state["document"] = DOC
    at.session_state["sample"] = "custom"
    at.run()
    if model is not None:
        at.session_state["model"] = str(model)  # as the custom model field sets it (local app: folders allowed)
        at.run()
    at.switch_page("pages/attention.py").run()
    assert not at.exception, at.exception
    return at


def expected(at, folder):
    """The sink mass of the app's run, computed here from the same configuration: (H, n) per captured layer."""
    ss = at.session_state
    runner = lfviz.load_runner(str(folder), device="cpu")
    cfg = config_from_text(ss["window"], ss["dilation"], ss["global"], native=runner.native_windows)
    res = runner.run(DOC, config=cfg)
    return {l: res.capture.weights(l).sink.float().numpy() for l in res.capture.captured_layers}


def test_sink_mass_per_layer_head_and_query(gpt_oss_folder):
    at = attention_page(gpt_oss_folder)
    assert at.session_state["window"] == "native"  # gpt-oss slides on even layers: it starts with its own pattern
    assert any(s.value == "Sink mass" for s in at.subheader)
    assert any("sum to 1 minus this" in c.value for c in at.caption)
    assert any("sum to 1 minus its sink mass" in c.value for c in at.caption)  # the note under the header
    want = expected(at, gpt_oss_folder)
    grid = chart(at, "Sink mass per layer and head")["data"][0]
    z = values(grid["z"]).astype(float)
    assert z.shape == (2, 4) and list(grid["y"]) == [0, 1]
    np.testing.assert_allclose(z, np.stack([want[0].mean(-1), want[1].mean(-1)]), atol=2e-3)
    assert (z > 0).all() and (z < 1).all() and len(np.unique(z.round(4))) > 1  # a share, differing by head
    at.session_state["layer"], at.session_state["head"] = 1, 3
    at.run()
    assert not at.exception
    line = chart(at, "Layer 1, head 3: sink mass of each query")["data"][0]
    np.testing.assert_allclose(values(line["y"]).astype(float), want[1][3], atol=2e-3)
    csv = next(b for b in at.get("download_button") if b.proto.label.startswith("Download CSV (this head"))
    assert csv is not None


def test_no_sink_mass_without_learned_sinks():
    at = attention_page()  # the embedded Longformer: no learned sinks
    assert not any(s.value == "Sink mass" for s in at.subheader)
    assert not any("sink mass" in c.value.lower() for c in at.caption)
    assert not [el for el in at.get("plotly_chart") if "Sink mass" in el.proto.spec]

"""lfviz's encoder vs Hugging Face's LongformerModel (dilation 1) and vs the dense reference (everything else)."""
import pytest
import torch
from transformers import LongformerModel

from lfviz import AttentionConfig, capture_attention
from lfviz.model.encoder import LongformerEncoder
from lfviz.attention.layout import weights_from_dense
from lfviz.attention.reference import reference_encoder_forward

from conftest import tiny_config

TOL = 1e-4


def tiny_pair(**cfg):
    torch.manual_seed(0)
    hf = LongformerModel(tiny_config(**cfg), add_pooling_layer=False).eval()
    return hf, LongformerEncoder(hf).eval()


def ids_for(n, n_pad=0, seed=0):
    ids = torch.randint(5, 30000, (n,), generator=torch.Generator().manual_seed(seed))
    valid = torch.ones(n, dtype=torch.bool)
    if n_pad:
        ids[n - n_pad:] = 1
        valid[n - n_pad:] = False
    return ids, valid


@pytest.mark.parametrize("windows", [[8, 8], [4, 8], [16, 16]])
@pytest.mark.parametrize("n, globals_, n_pad", [(21, (0,), 0), (16, (), 0), (19, (3, 18), 0), (23, (0, 5), 4),
                                                (5, (4,), 0), (40, (39,), 0)])
def test_equals_hugging_face(windows, n, globals_, n_pad):
    hf, enc = tiny_pair(attention_window=windows)
    ids, valid = ids_for(n, n_pad)
    gm = torch.zeros(n, dtype=torch.long)
    gm[list(globals_)] = 1
    specs = AttentionConfig(window=windows, global_tokens=globals_).resolve(2, 4)
    with torch.no_grad():
        o = hf(ids[None], attention_mask=valid.long()[None], global_attention_mask=gm[None], output_attentions=True)
        with capture_attention(enc) as s:
            e = enc(ids, specs, tuple(sorted(globals_)), valid, capture=s)
    torch.testing.assert_close(e.last_hidden_state[valid], o.last_hidden_state[0][valid], atol=TOL, rtol=0)
    x = len(globals_)
    for layer in range(2):
        a = o.attentions[layer][0]  # (H, n, x + W + 1): global columns first, then the band
        cut = (windows[layer] - specs[layer].for_length(n).window) // 2  # lfviz keeps no column beyond the text
        hf_band = a[:, :, x:]
        torch.testing.assert_close(s.capture.band(layer), hf_band[..., cut:hf_band.shape[-1] - cut], atol=TOL, rtol=0)
        assert not hf_band[..., :cut].any() and not hf_band[..., hf_band.shape[-1] - cut:].any()
        torch.testing.assert_close(s.capture.to_global(layer), a[:, :, :x], atol=TOL, rtol=0)
        if x:  # HF: (H, n_padded, x), weight from global g to key j
            ga = o.global_attentions[layer][0][:, :n].transpose(1, 2)
            torch.testing.assert_close(s.capture.from_global(layer), ga, atol=TOL, rtol=0)


@pytest.mark.parametrize("config, n, n_pad", [
    (AttentionConfig(window=[4, 6], global_tokens=(0,)), 29, 0),  # HF crashes on [4, 6]
    (AttentionConfig(window=[8, 12], dilation=2, global_tokens=(0, 7)), 33, 0),
    (AttentionConfig(window=6, dilation=[1, [1, 2, 3, 1]], global_tokens=(30,)), 31, 0),
    (AttentionConfig(window=[2, 64], dilation=[3, 1]), 26, 0),  # second window wider than the text
    (AttentionConfig(window=4, dilation=[2, [4, 1, 1, 2]], global_tokens=(1, 2)), 37, 6),
    (AttentionConfig(window=8, dilation=5), 12, 0),
])
def test_equals_dense_reference(config, n, n_pad):
    _, enc = tiny_pair()
    ids, valid = ids_for(n, n_pad, seed=n)
    specs = config.resolve(2, 4)
    gt = config.check_globals(n)
    with torch.no_grad():
        with capture_attention(enc) as s:
            e = enc(ids, specs, gt, valid, capture=s)
        ref_hidden, ref_probs = reference_encoder_forward(enc, ids, specs, gt, valid)
    torch.testing.assert_close(e.last_hidden_state[valid], ref_hidden[valid], atol=TOL, rtol=0)
    for layer, spec in enumerate(specs):
        ref = weights_from_dense(ref_probs[layer], spec.for_length(n).window, spec.dilation, gt)
        torch.testing.assert_close(s.capture.band(layer), ref.band, atol=TOL, rtol=0)
        torch.testing.assert_close(s.capture.to_global(layer), ref.to_global, atol=TOL, rtol=0)
        torch.testing.assert_close(s.capture.from_global(layer), ref.from_global, atol=TOL, rtol=0)


def test_hooks_are_removed_even_on_error():
    _, enc = tiny_pair()
    modules = enc.attention_modules()
    with pytest.raises(RuntimeError):
        with capture_attention(enc):
            assert all(len(m._forward_hooks) == 1 for m in modules)
            raise RuntimeError("boom")
    assert all(len(m._forward_hooks) == 0 for m in modules)


def test_capture_only_selected_layers_and_only_its_own_run():
    _, enc = tiny_pair()
    ids, _ = ids_for(20)
    specs = AttentionConfig(window=8).resolve(2, 4)
    with torch.no_grad(), capture_attention(enc, layers=[1]) as mine, capture_attention(enc) as other:
        enc(ids, specs, capture=mine)
    assert mine.capture.captured_layers == [1]
    assert other.capture.captured_layers == []  # the hook of another session ignored this run
    with pytest.raises(ValueError, match="do not exist"):
        with capture_attention(enc, layers=[2]):
            pass
    with pytest.raises(KeyError, match="was not captured"):
        mine.capture.band(0)

"""CUDA runs equal the CPU fp32 reference within half-precision tolerance. Skipped without a GPU."""
import pytest
import torch
from transformers import LongformerModel

import lfviz
from lfviz.encoder import LongformerEncoder

from conftest import tiny_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CONFIGS = [
    lfviz.AttentionConfig(window=8, global_tokens=(0,)),
    lfviz.AttentionConfig(window=[4, 6]),
    lfviz.AttentionConfig(window=[8, 12], dilation=2, global_tokens=(0, 7)),
    lfviz.AttentionConfig(window=6, dilation=[1, [1, 2, 3, 1]], global_tokens=(40,)),
    lfviz.AttentionConfig(window=128, global_tokens=(3,)),  # wider than the text
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("config", CONFIGS)
def test_tiny_model_cuda_matches_cpu(config, dtype):
    torch.manual_seed(0)
    hf = LongformerModel(tiny_config(), add_pooling_layer=False).eval()
    cpu = LongformerEncoder(hf).eval()
    ids = torch.randint(5, 30000, (41,), generator=torch.Generator().manual_seed(0))
    specs, gt = config.resolve(2, 4), config.check_globals(41)
    with torch.no_grad(), lfviz.capture_attention(cpu) as ref:
        want = cpu(ids, specs, gt, capture=ref).last_hidden_state
    gpu = LongformerEncoder(LongformerModel(tiny_config(), add_pooling_layer=False).eval())
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to("cuda", dtype)
    with torch.no_grad(), lfviz.capture_attention(gpu) as got:
        have = gpu(ids.cuda(), specs, gt, capture=got).last_hidden_state
    tol = 2e-2 if dtype == torch.float16 else 6e-2
    torch.testing.assert_close(have.float().cpu(), want, atol=tol * 5, rtol=tol)
    for layer in range(2):
        for name in ("band", "to_global", "from_global"):
            a = getattr(got.capture, name)(layer).float().cpu()
            b = getattr(ref.capture, name)(layer)
            torch.testing.assert_close(a, b, atol=tol, rtol=0)


def test_embedded_auto_picks_cuda_and_matches_cpu():
    doc = "Longformer on a GPU keeps the capture where it was computed. " * 40
    cfg = lfviz.AttentionConfig(window=64, dilation=[1, 1, 1, 1, 2, 2], global_tokens=(0,))
    gpu = lfviz.load_runner("embedded", device="auto")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float16
    cpu = lfviz.load_runner("embedded", device="cpu")
    a = gpu.run(doc, config=cfg, keep_on_device=True)
    b = cpu.run(doc, config=cfg)
    assert a.capture.band(0).device.type == "cuda"
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=0.1, rtol=0.02)
    for layer in range(6):
        torch.testing.assert_close(a.capture.band(layer).float().cpu(), b.capture.band(layer), atol=2e-2, rtol=0)

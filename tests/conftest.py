import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch
from transformers import AutoTokenizer, LongformerConfig

import lfviz
from lfviz.model.loading import embedded_model_dir


@pytest.fixture(autouse=True)
def _lesson_stops_measuring():
    """A Lesson page opened by a test measures its other steps in a background thread: stop it when the test ends,
    so it neither slows the next tests nor holds memory in the cache a memory-budget test sets small."""
    yield
    import sys

    steps = sys.modules.get("lfviz.app.lesson_steps")  # only where a test imported the app's lesson
    if steps is not None:
        steps.stop_background()


def tiny_config(**kw) -> LongformerConfig:
    """HF's test-sized Longformer: hidden 32, 2 layers, 4 heads."""
    base = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=514, attention_window=8, pad_token_id=1, type_vocab_size=1,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    base.update(kw)
    return LongformerConfig(**base)


@pytest.fixture(scope="session")
def embedded():
    return lfviz.load_runner("embedded", device="cpu")


@pytest.fixture(scope="session")
def bert_tokenizer():
    return AutoTokenizer.from_pretrained(embedded_model_dir())


def save_tiny(model_cls, path, tokenizer, **cfg):
    torch.manual_seed(0)
    model = model_cls(tiny_config(**cfg)).eval()
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_causal(bert_tokenizer):
    """A CausalRunner on a tiny random Llama (grouped-query attention) that reads the embedded tokenizer's ids."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lfviz.model.causal_runner import CausalRunner

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=bert_tokenizer.vocab_size, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024)
    return CausalRunner("tiny-llama", LlamaForCausalLM(config).eval(), bert_tokenizer, torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_gemma3(bert_tokenizer):
    """A CausalRunner on a tiny random Gemma 3 (6 layers: sliding, sliding, full, x2; S = 5 keys, lfviz window 8)
    that reads the embedded tokenizer's ids: the interleaved native pattern of today's LLMs, in milliseconds."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from lfviz.model.causal_runner import CausalRunner

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=bert_tokenizer.vocab_size, hidden_size=64, intermediate_size=96,
                              num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              query_pre_attn_scalar=16, sliding_window=5, sliding_window_pattern=3,
                              max_position_embeddings=256, initializer_range=0.2, pad_token_id=0)
    from lfviz.model.causal_lm import ATTENTION

    config._attn_implementation = ATTENTION
    return CausalRunner("tiny-gemma3", Gemma3ForCausalLM(config).eval(), bert_tokenizer, torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_gemma3_folder(tmp_path_factory, tiny_gemma3, bert_tokenizer):
    """`tiny_gemma3` saved as a local model folder (safetensors and the embedded tokenizer), for load_runner and the
    app's model field."""
    folder = tmp_path_factory.mktemp("tiny-gemma3")
    tiny_gemma3.model.save_pretrained(folder, safe_serialization=True)
    bert_tokenizer.save_pretrained(folder)
    return folder

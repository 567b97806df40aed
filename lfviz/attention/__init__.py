"""Attention semantics and kernels: the mask predicate (`mask.py`), the dense reference built from it
(`reference.py`), the fast paths checked against it (`blocked.py` on the CPU, `flex.py` FlexAttention on a GPU,
dispatched by `banded.py`), the split band/global weight layout (`layout.py`), and the self-attention module
(`self_attention.py`). No model loading, no analysis, no figures."""

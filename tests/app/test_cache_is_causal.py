"""The app asks a runner whether it is causal (`RunnerBase.causal`) instead of comparing its `task` string, so a
causal runner whose task reads otherwise still gets the causal sidebar, fidelity and document views."""
from lfviz.app import cache
from lfviz.model.base import RunnerBase


class _Causal(RunnerBase):
    task = "text-generation"  # not the string the old check compared
    causal = True


class _Encoder(RunnerBase):
    task = "causal-lm"  # a misleading task string must not make an encoder causal
    causal = False


def test_is_causal_asks_the_runner(tiny_causal, embedded):
    assert cache.is_causal(_Causal()) and not cache.is_causal(_Encoder())
    assert cache.is_causal(tiny_causal) and not cache.is_causal(embedded)
    assert not cache.is_causal(None)  # no model loaded yet

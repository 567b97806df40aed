"""Run a causal LM's decoder once, keep what a later run needs to start at a layer, and resume there.

Two configurations whose layers agree up to layer L give the same input to layer L, and (causal attention) the
same hidden states at every position before the first one whose keys differ in a changed layer. A run that
changes only later layers (the layer experiment: a full layer made to slide) therefore starts at L from the kept
input and needs the output head only from that position on: `first_change` says where that is.

`record` runs the model's own decoder forward (the Hugging Face code path, with lfviz's pattern) and keeps, through
forward pre-hooks that fire only on the recording thread, the input of each layer asked for and the arguments the
decoder passed every layer (position embeddings, masks: they depend on positions only, never on the pattern, which
lfviz's attention reads from `longformer_pattern`). `resume` calls the layers from L on with those arguments, then
the decoder's final norm. `record` checks that the decoder is laid out that way (each layer's output is the next
one's input, then `norm`); where it is not, `DecoderState.resumable` is False and callers run whole forwards.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from ..config import AttentionConfig, LayerSpec
from .causal_lm import longformer_pattern


@dataclass
class DecoderState:
    """One decoder run kept for resuming (all on the model's device)."""

    config: AttentionConfig
    last: torch.Tensor  # (n, D): the last hidden state, after the final norm, as the decoder returned it
    inputs: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> its input, (1, n, D)
    calls: list = field(default_factory=list)  # per layer: (args after the hidden state, keyword arguments)
    resumable: bool = False  # the decoder's layers chain and end in `norm`, as checked on this run


def _layers(runner):
    decoder = runner.model.get_decoder()
    layers = getattr(decoder, "layers", None)
    if layers is None or getattr(decoder, "norm", None) is None or len(layers) != runner.num_layers:
        return decoder, None
    return decoder, layers


def record(runner, input_ids, config: AttentionConfig, keep=()) -> DecoderState:
    """The decoder on (n,) `input_ids` under `config` (no capture), keeping the input of each layer in `keep`."""
    decoder, layers = _layers(runner)
    ids = torch.as_tensor(list(input_ids), dtype=torch.long, device=runner.device)
    specs = config.resolve(runner.num_layers, runner.num_heads)
    me, keep = threading.get_ident(), set(keep)
    state = DecoderState(config, None, {}, [None] * runner.num_layers)
    seen = {}  # layer -> (its input, its output), to check the chain

    def pre(layer):
        def hook(module, args, kwargs=None):  # None: removed meanwhile by another thread (`CaptureSession._hook`)
            if threading.get_ident() == me and kwargs is not None:  # another thread's run shares the model
                hidden = args[0] if args else kwargs["hidden_states"]
                rest = {k: v for k, v in kwargs.items() if k != "hidden_states"}
                state.calls[layer] = (tuple(args[1:]), rest)
                seen[layer] = [hidden, None]
                if layer in keep:
                    state.inputs[layer] = hidden
        return hook

    def post(layer):
        def hook(module, args, *rest):  # rest: (kwargs, out), or (out,) when removed meanwhile
            if threading.get_ident() == me and layer in seen and len(rest) == 2:
                out = rest[1]
                seen[layer][1] = out[0] if isinstance(out, tuple) else out
        return hook

    handles = []
    try:
        if layers is not None:
            for l, module in enumerate(layers):
                handles.append(module.register_forward_pre_hook(pre(l), with_kwargs=True))
                handles.append(module.register_forward_hook(post(l), with_kwargs=True))
        with torch.inference_mode(), longformer_pattern(specs, config.check_globals(len(ids)), None):
            state.last = decoder(ids[None], use_cache=False).last_hidden_state[0]  # a cache would grow on resume
            if layers is not None and len(seen) == runner.num_layers:
                chained = all(seen[l][1] is not None and seen[l + 1][0] is seen[l][1]
                              for l in range(runner.num_layers - 1))
                state.resumable = chained and torch.equal(decoder.norm(seen[runner.num_layers - 1][1])[0],
                                                          state.last)
    finally:
        for h in handles:
            h.remove()
    if not state.resumable:
        state.inputs, state.calls = {}, []
    return state


def resume(runner, state: DecoderState, config: AttentionConfig, start: int) -> torch.Tensor:
    """(n, D) the last hidden state of a run under `config`, starting at layer `start` from the input `state` kept
    for it: equal to a whole run when `config` agrees with `state.config` on every layer before `start`."""
    if not state.resumable or start not in state.inputs:
        raise ValueError(f"layer {start}'s input was not kept: record the run with keep=({start},)")
    before = state.config.resolve(runner.num_layers, runner.num_heads)[:start]
    specs = config.resolve(runner.num_layers, runner.num_heads)
    n = state.last.shape[0]
    if tuple(before) != tuple(specs[:start]) or config.check_globals(n) != state.config.check_globals(n):
        raise ValueError(f"this configuration differs from the recorded one before layer {start}: run it whole")
    decoder, layers = _layers(runner)
    hidden = state.inputs[start]
    with torch.inference_mode(), longformer_pattern(specs, config.check_globals(n), None):
        for l in range(start, runner.num_layers):
            args, kwargs = state.calls[l]
            out = layers[l](hidden, *args, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        return decoder.norm(hidden)[0]


def first_change(a: list[LayerSpec], b: list[LayerSpec], n: int) -> tuple[int, int]:
    """(layer, position): the first layer whose attention differs between the resolved specs `a` and `b`, and the
    first position whose hidden states can differ (n when none can). Where a changed layer differs only in its
    window (same dilation d on every head), a query p sees the same keys under both while p <= d * (w // 2) for
    the narrower window w (the d-th keys back reach no further than the text's start); global tokens are the same
    in both. Any other change may reach position 0."""
    changed = [l for l, (x, y) in enumerate(zip(a, b)) if x != y]
    if not changed:
        return len(a), n
    position = n
    for l in changed:
        if a[l].dilation != b[l].dilation:
            return changed[0], 0
        position = min(position, min(a[l].dilation) * (min(a[l].window, b[l].window) // 2) + 1)
    return changed[0], position

"""The one configuration object that flows from the sidebar to the runner, the attention code and the figures.

Window convention: `window` is TWO-SIDED, as Hugging Face's `attention_window` (HF 512 == allenai/longformer 256):
a token sees `window // 2` neighbours on each side, every `dilation`-th one, so its span is `dilation * window // 2`
per side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

WindowSpec = Union[int, Sequence[int]]
DilationSpec = Union[int, Sequence[Union[int, Sequence[int]]]]


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _as_tuple(x):
    if isinstance(x, (list, tuple)):
        return tuple(_as_tuple(v) for v in x)
    return x


def _per_layer(value, num_layers: int, name: str, hint: str) -> tuple:
    """A per-layer tuple from an int (same for all layers) or a list that must have one entry per layer."""
    if not isinstance(value, tuple):
        return (value,) * num_layers
    if len(value) != num_layers:
        raise ValueError(f"{name} has {len(value)} entries but the model has {num_layers} layers: give {hint}")
    return value


@dataclass(frozen=True)
class LayerSpec:
    """Resolved attention settings of one layer."""

    window: int  # two-sided, even: `window // 2` keys on each side
    dilation: tuple[int, ...]  # one per head

    @property
    def one_sided(self) -> int:
        return self.window // 2

    def for_length(self, n: int) -> "LayerSpec":
        """The same attention on an n-token text with the window cut to the widest one that still reaches a key:
        offsets k * d beyond n - 1 fall outside the text for every head, so a wider window attends nothing more.
        Time and memory then follow the text's length, not the number typed (window 100000 on 1,000 tokens
        costs what window 1,998 costs)."""
        useful = max(0, n - 1) // min(self.dilation)
        return self if self.one_sided <= useful else LayerSpec(window=2 * useful, dilation=self.dilation)


@dataclass(frozen=True)
class AttentionConfig:
    """What the user chose: window per layer, dilation per layer/head, global token positions.

    window: int, or one even int per layer (two-sided, HF convention).
    dilation: int; or one entry per layer, each an int or a list with one int per head.
    global_tokens: token positions (0-based, into the tokenized input) with global attention.
    is_native: the windows are the model's own per-layer pattern (`AttentionConfig.native(runner)`); the text form
        then says "native" instead of listing them. Not part of equality: the same windows run the same.
    """

    window: WindowSpec = 512  # two-sided, even
    dilation: DilationSpec = 1  # 1 = no gaps (Hugging Face); d > 1 = every d-th neighbour
    global_tokens: Sequence[int] = ()  # positions with global attention
    is_native: bool = field(default=False, compare=False)  # window = the model's own pattern

    def __post_init__(self):
        object.__setattr__(self, "window", _as_tuple(self.window))
        object.__setattr__(self, "dilation", _as_tuple(self.dilation))
        object.__setattr__(self, "global_tokens", _as_tuple(tuple(self.global_tokens)))
        self._check_values()

    # -- validation that needs no model ------------------------------------------------------------------------
    def _check_values(self) -> None:
        windows = self.window if isinstance(self.window, tuple) else (self.window,)
        if isinstance(self.window, tuple) and not windows:
            raise ValueError("window list is empty: give one even window per layer, or a single int")
        for w in windows:
            if not _is_int(w):
                raise ValueError(f"window must be an int (two-sided, even), got {w!r}")
            if w <= 0:
                raise ValueError(f"window must be a positive even number (two-sided), got {w}; try 512")
            if w % 2:
                raise ValueError(
                    f"window must be even (it is two-sided: window // 2 keys per side), got {w}; "
                    f"use {w + 1} or {w - 1 if w > 1 else 2}"
                )
        dil = self.dilation if isinstance(self.dilation, tuple) else (self.dilation,)
        if isinstance(self.dilation, tuple) and not dil:
            raise ValueError("dilation list is empty: give one entry per layer, or a single int")
        for entry in dil:
            for d in entry if isinstance(entry, tuple) else (entry,):
                if not _is_int(d):
                    raise ValueError(f"dilation must be an int >= 1, got {d!r}")
                if d < 1:
                    raise ValueError(f"dilation must be >= 1 (1 means no gaps), got {d}")
            if isinstance(entry, tuple) and not entry:
                raise ValueError("a per-head dilation list is empty: give one int per head")
        seen = set()
        for g in self.global_tokens:
            if not _is_int(g):
                raise ValueError(f"global token positions must be ints, got {g!r}")
            if g < 0:
                raise ValueError(f"global token position {g} is negative: positions count from 0")
            if g in seen:
                raise ValueError(f"global token position {g} is given twice: list each position once")
            seen.add(g)

    # -- validation against a model and an input ---------------------------------------------------------------
    def resolve(self, num_layers: int, num_heads: int) -> tuple[LayerSpec, ...]:
        """One LayerSpec per layer, checking list lengths against the model."""
        windows = _per_layer(self.window, num_layers, "window", "one window per layer or a single int")
        per_layer = _per_layer(self.dilation, num_layers, "dilation",
                               f"one entry per layer (an int, or a list of {num_heads} ints for its heads) "
                               f"or a single int")
        specs = []
        for layer, (w, d) in enumerate(zip(windows, per_layer)):
            if isinstance(d, tuple):
                if len(d) != num_heads:
                    raise ValueError(
                        f"dilation of layer {layer} has {len(d)} entries but the model has {num_heads} heads: "
                        f"give one int per head, or a single int for the layer"
                    )
                heads = d
            else:
                heads = (d,) * num_heads
            specs.append(LayerSpec(window=w, dilation=tuple(heads)))
        return tuple(specs)

    def check_globals(self, seq_len: int) -> tuple[int, ...]:
        """Global positions, ascending, checked against the tokenized length."""
        for g in self.global_tokens:
            if g >= seq_len:
                raise ValueError(
                    f"global token position {g} is out of range: the input has {seq_len} tokens "
                    f"(positions 0..{seq_len - 1})"
                )
        return tuple(sorted(self.global_tokens))

    @classmethod
    def native(cls, runner, dilation: DilationSpec = 1, global_tokens: Sequence[int] = ()) -> "AttentionConfig":
        """The model's own pattern: `runner.native_windows` (for a Hugging Face causal LM, read from its config by
        `lfviz.model.families`: 2 * (S - 1) on sliding layers, a window covering any text on full ones), with
        optional dilation and global (sink) tokens on top."""
        windows = getattr(runner, "native_windows", None)
        if windows is None:
            raise ValueError(f"{type(runner).__name__} has no native pattern: load the model with lfviz.load_runner")
        return cls(window=tuple(windows), dilation=dilation, global_tokens=tuple(global_tokens), is_native=True)

    def replace(self, **changes) -> "AttentionConfig":
        fields = {"window": self.window, "dilation": self.dilation, "global_tokens": self.global_tokens,
                  "is_native": self.is_native}
        fields.update(changes)
        if "is_native" not in changes and _as_tuple(fields["window"]) != self.window:
            fields["is_native"] = False  # other windows are no longer the model's own
        return AttentionConfig(**fields)

    def to_dict(self) -> dict:
        def plain(x):
            return [plain(v) for v in x] if isinstance(x, tuple) else x

        d = {"window": plain(self.window), "dilation": plain(self.dilation), "global_tokens": list(self.global_tokens)}
        if self.is_native:
            d["native"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AttentionConfig":
        return cls(window=d["window"], dilation=d["dilation"], global_tokens=tuple(d.get("global_tokens", ())),
                   is_native=bool(d.get("native", False)))

    @property
    def uses_dilation(self) -> bool:
        dil = self.dilation if isinstance(self.dilation, tuple) else (self.dilation,)
        return any(any(x > 1 for x in e) if isinstance(e, tuple) else e > 1 for e in dil)

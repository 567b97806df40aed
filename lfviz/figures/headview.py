"""bertviz's head view and model view as one self-contained HTML page: no outside request, safe token labels.

bertviz (`html_action="return"`) emits a <script src> for require.js from a CDN, a `require.config` whose paths
point d3 and jQuery at the CDN, and its view code with the parameters (tokens, weights) pasted in by plain
`json.dumps`, where a token such as "</script>" would end the script element. `head_view_html` keeps bertviz's
markup and view code, and:
- replaces the CDN script by the vendored jQuery and d3 (loaded as globals), require.js, and a shim that registers
  the two globals as the AMD modules "jquery" and "d3", all inline (files in assets/vendor/, see its README);
- removes the `require.config` block, so require.js has no path to fetch from;
- re-serialises the parameters compactly, weights rounded, with <, >, & and U+2028/9 written as \\uXXXX.
- head view: sizes bertviz's token boxes and the lines between them from the frame's width (bertviz draws a fixed
  335 px column), so the view spans the page.

Attention comes in as plain data: one dense (H, N, N) array per layer over a span of N tokens (rows: queries,
columns: keys), e.g. from `span_attention`.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..model.capture import Capture

VENDOR_DIR = Path(__file__).resolve().parents[2] / "assets" / "vendor"
# Order matters: jQuery and d3 first, while `define` does not exist yet, so they set window.jQuery / window.d3.
VENDORED = ("jquery-2.2.4.min.js", "d3-5.7.0.min.js", "require-2.3.6.js")
AMD_SHIM = ('define("jquery", [], function () { return window.jQuery; });\n'
            'define("d3", [], function () { return window.d3; });')
MODES = ("head", "model")
MAX_SPAN = 128  # tokens; the weights are inlined as JSON: L * H * N^2 numbers
GLOBAL_MARK = "★"
MAX_LABEL = 14  # characters of a token label
# bertviz's head view draws token boxes of 110 px and 115 px of lines between them, whatever the room. These
# sizes come from the frame's width instead (boxes 110-220 px, the lines take the rest), when the view starts.
_FIXED_SIZES = ("const BOXWIDTH = 110;", "const MATRIX_WIDTH = 115;")
_WIDE_SIZES = ("const LFVIZ_WIDTH = Math.max(335, (document.documentElement.clientWidth || window.innerWidth || 0) "
               "- 24);  // lfviz: the view spans the frame\n    "
               "const BOXWIDTH = Math.round(Math.min(220, Math.max(110, 0.16 * LFVIZ_WIDTH)));",
               "const MATRIX_WIDTH = Math.max(115, LFVIZ_WIDTH - 2 * BOXWIDTH);")

_CDN_SCRIPT = re.compile(r'<script src="https?://[^"]*require[^"]*"></script>')
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{\s*paths:\s*\{[^}]*\}\s*,?\s*\}\);")
_FILE_COMMENT = re.compile(r"^\s*/\*\*.*?\*\*/\s*", re.S)  # bertviz's change log (links to GitHub)
_MARKER = "PYTHON_PARAMS"  # bertviz's template marker
_PARAMS_PREFIX = "const params = "
_PARAMS_LINE = f"{_PARAMS_PREFIX}{_MARKER};"
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


# -- span of a captured run ------------------------------------------------------------------------------------
def span_attention(capture: Capture, start: int, length: int, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
    """One dense float32 (H, N, N) tensor per layer (default: every captured layer) for tokens start..start+N-1.

    These are the model's weights, not renormalised: weight to keys outside the span is dropped, so a row may
    sum to less than 1 (see `row_mass`)."""
    span = slice(start, start + length)
    layers = capture.captured_layers if layers is None else layers
    # densify in the stored dtype and place (exact copies), then widen and move only the (H, N, N) span
    return [capture.weights(l).dense(span, span).float().cpu() for l in layers]


def row_mass(attention: Sequence[torch.Tensor]) -> np.ndarray:
    """(L,) mean over heads and rows of each row's weight that stays inside the span (1.0 = nothing cut)."""
    return np.array([float(a.sum(-1).mean()) for a in attention])


def span_tokens(tokens: Sequence[str], start: int, length: int, global_tokens: Sequence[int] = (),
                max_chars: int = MAX_LABEL) -> list[str]:
    """Token labels of the span, global tokens marked with a star, long ones cut (bertviz boxes are 110 px)."""
    g = set(global_tokens)
    labels = [t if len(t) <= max_chars else t[:max_chars - 1] + "…" for t in tokens[start:start + length]]
    return [f"{GLOBAL_MARK}{t}" if start + i in g else t for i, t in enumerate(labels)]


def default_start(n: int, length: int, global_tokens: Sequence[int] = ()) -> int:
    """Span start that shows the first global token a quarter into the span (0 without global tokens)."""
    first = min(global_tokens) if global_tokens else 0
    return max(0, min(first - length // 4, n - length))


MAX_HEIGHT = 12000  # px; the page scrolls, not the frame: a frame shorter than its content hides tokens and layers


def view_height(n_tokens: int, mode: str = "head", n_layers: int = 1, n_heads: int = 12, cap: int = MAX_HEIGHT) -> int:
    """Pixel height of the iframe, sized to its content by bertviz's own layout arithmetic (head_view.js,
    model_view.js: a model view's thumbnails are 7 * 12 / heads px per token); n_heads: heads drawn."""
    if mode == "head":
        content = 30 + n_tokens * 22.5 + 30  # layer selector, TEXT_TOP, BOXHEIGHT per token
    else:
        thumb = n_tokens * 7 * 12 / n_heads + 10
        content = max(n_layers * thumb + 38, n_tokens * 18 + 55)
    return int(min(cap, content + 40))


# -- HTML ------------------------------------------------------------------------------------------------------
def head_view_html(attention: Sequence[torch.Tensor | np.ndarray], tokens: Sequence[str], mode: str = "head", *,
                   layer_labels: Sequence[int] | None = None, layer: int | None = None,
                   heads: Sequence[int] | None = None, decimals: int = 3) -> str:
    """Self-contained HTML of bertviz's head view (mode="head") or model view (mode="model").

    attention: one (H, N, N) array per layer (rows: queries, columns: keys); tokens: the N labels;
    layer_labels: the layer numbers to show (default 0..L-1); layer: the head view's initial layer (a label);
    heads: the heads to draw (default all): the head view keeps every head's colour and shows these (the others
    one click away); the model view draws only these, labelled with their own numbers.
    """
    from bertviz import head_view, model_view  # imports IPython; only needed here

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not attention:
        raise ValueError("no attention given: pass one (H, N, N) array per layer")
    arrays = [np.round(np.asarray(a, dtype=np.float64), decimals) for a in attention]
    shapes = {a.shape for a in arrays}
    n = len(tokens)
    if len(shapes) != 1 or arrays[0].ndim != 3 or arrays[0].shape[1:] != (n, n):
        raise ValueError(f"attention must be one (H, N, N) array per layer with N = {n} tokens; got shapes "
                         f"{sorted(shapes)}")
    labels = list(range(len(arrays))) if layer_labels is None else [int(x) for x in layer_labels]
    if len(labels) != len(arrays):
        raise ValueError(f"{len(labels)} layer labels for {len(arrays)} layers")
    if layer is not None and layer not in labels:
        raise ValueError(f"initial layer {layer} is not among the layers shown {labels}")

    H = arrays[0].shape[0]
    heads = list(range(H)) if heads is None else sorted({int(h) for h in heads})
    if not heads or not all(0 <= h < H for h in heads):
        raise ValueError(f"heads must be a non-empty list of head indices in 0..{H - 1}, got {heads}")
    if mode == "model":
        arrays = [a[heads] for a in arrays]
    tensors = [torch.from_numpy(a)[None] for a in arrays]  # (1, H, N, N) each, as bertviz wants
    if mode == "head":
        raw = head_view(tensors, list(tokens), html_action="return").data
    else:
        raw = model_view(tensors, list(tokens), display_mode="light", html_action="return").data
    params, template = _take_params(raw)
    params["include_layers"] = labels  # bertviz uses these only as labels (and for the initial layer)
    if mode == "head":
        params["layer"], params["heads"] = layer, heads
    else:
        params["include_heads"] = heads  # labels of the thumbnails
    for d in params["attention"]:
        d["attn"] = _compact(d["attn"])
    html = _offline(template.replace(_PARAMS_LINE, _PARAMS_LINE.replace(_MARKER, safe_json(params)), 1))
    return _page_wide(html) if mode == "head" else html


def _page_wide(html: str) -> str:
    """The head view with its sizes read from the frame's width instead of bertviz's constants (`_WIDE_SIZES`)."""
    for fixed, wide in zip(_FIXED_SIZES, _WIDE_SIZES):
        if html.count(fixed) != 1:
            raise RuntimeError(f"bertviz's head view has no single {fixed!r}: this bertviz version is not supported")
        html = html.replace(fixed, wide)
    return html


def safe_json(obj) -> str:
    """Compact JSON that can sit inside a <script> element: <, >, & and U+2028/9 as \\uXXXX escapes.

    Outside strings JSON never contains these characters, so the escaping changes no value."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group()], text)


def _take_params(raw: str) -> tuple[dict, str]:
    """bertviz's inlined parameters, and its HTML with every copy of them put back to the template marker.

    bertviz fills its template with str.replace, so the parameters land twice: after `const params = ` and in
    the comment after it ("// HACK: PYTHON_PARAMS is a template marker..."), both unescaped."""
    at = raw.find(_PARAMS_PREFIX)
    if at < 0:
        raise RuntimeError("bertviz's HTML has no 'const params = ' line; this bertviz version is not supported")
    start = at + len(_PARAMS_PREFIX)
    params, end = json.JSONDecoder().raw_decode(raw, start)
    template = raw.replace(raw[start:end], _MARKER)
    if template.count(_PARAMS_LINE) != 1:
        raise RuntimeError("bertviz's parameters are not where lfviz expects them; this bertviz version is not "
                           "supported")
    return params, template


def _compact(x):
    """Nested lists of rounded floats with exact zeros as 0 (most of a span's cells outside the band)."""
    if isinstance(x, list):
        return [_compact(v) for v in x]
    return 0 if x == 0 else x


@lru_cache(maxsize=1)
def vendored_scripts() -> str:
    """<script> elements with jQuery, d3, require.js and the AMD shim, inline (read once)."""
    parts = []
    for name in VENDORED:
        path = VENDOR_DIR / name
        if not path.is_file():
            raise RuntimeError(f"vendored script {path} is missing; see assets/vendor/README.md to restore it")
        code = path.read_text(encoding="utf-8")
        if re.search(r"</script|<!--", code, re.I):  # would end (or confuse) the inline <script> element
            raise RuntimeError(f"{name} contains '</script' or '<!--' and cannot be inlined")
        parts.append(f"<script>/* {name}, vendored from npm: assets/vendor/README.md */\n{code}\n</script>")
    parts.append(f"<script>\n{AMD_SHIM}\n</script>")
    return "\n".join(parts)


def _offline(body: str) -> str:
    """Swap bertviz's CDN loading for the inline scripts; fail loudly if bertviz emits something else."""
    body, n_cdn = _CDN_SCRIPT.subn("", body)
    body, n_cfg = _REQUIRE_CONFIG.subn("// lfviz: d3 and jquery are inline AMD modules, nothing to fetch", body)
    if n_cdn != 1 or n_cfg != 1:
        raise RuntimeError(f"unexpected bertviz HTML ({n_cdn} CDN script tags, {n_cfg} require.config blocks; "
                           f"expected 1 and 1): this bertviz version is not supported")
    script_at = body.index('<script type="text/javascript">')
    js_start = script_at + len('<script type="text/javascript">')
    body = body[:js_start] + _FILE_COMMENT.sub("\n", body[js_start:], count=1)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<style>body{background:#fff;color:#000;margin:0 8px}</style>\n"
            f"{vendored_scripts()}\n</head><body>\n{body}\n</body></html>")

"""The document as clickable text: click a token to make it global (or local again); global tokens are
highlighted, search matches underlined. The same text as a map (`value_text`): each token's background says a
value (where the window hurts), a click picks the token. A Streamlit v2 component: its JavaScript builds the spans
with textContent and sets colours through the style object (the document never goes in as HTML), and sends the
clicked position back as a trigger value."""
from __future__ import annotations

import streamlit as st

from ..analysis import presets
from ..figures.token_text import MAX_SHOWN, text_pieces
from ..textspec import format_positions
from . import state

_CSS = """
.lfviz-text { line-height: 1.9; max-height: 420px; overflow-y: auto; white-space: pre-wrap; font-size: 0.95rem;
              border: 1px solid rgba(128, 128, 128, 0.3); border-radius: 6px; padding: 0.5rem 0.75rem; }
.lfviz-text span.tok { cursor: pointer; border-radius: 3px; }
.lfviz-text span.tok:hover { background: rgba(31, 119, 180, 0.18); }
.lfviz-text span.glob { background: #d62728; color: #fff; }
.lfviz-text span.globv { outline: 2px solid #d62728; outline-offset: 1px; }
.lfviz-text span.match { text-decoration: underline 2px #ff7f0e; }
.lfviz-text span.special { color: #888; font-size: 0.8em; }
.lfviz-text span.quest { font-style: italic; }
.lfviz-text b.head { color: #666; font-weight: 600; }
"""
_JS = """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  let box = parentElement.querySelector('.lfviz-text');
  if (!box) { box = document.createElement('div'); box.className = 'lfviz-text'; parentElement.appendChild(box); }
  box.replaceChildren();
  const click = (data && data.click) || '';
  for (const piece of ((data && data.pieces) || [])) {
    if (piece.h) {  // a heading before the piece, e.g. "Question: " (not a token: not clickable)
      const head = document.createElement('b');
      head.className = 'head'; head.textContent = piece.h; box.appendChild(head);
    }
    const lead = piece.t.match(/^\\s*/)[0];
    if (lead) box.appendChild(document.createTextNode(lead));
    const span = document.createElement('span');
    span.textContent = piece.t.slice(lead.length);
    span.className = 'tok' + (piece.g ? (piece.v !== undefined ? ' globv' : ' glob') : '') + (piece.m ? ' match' : '') + (piece.s ? ' special' : '') + (piece.q ? ' quest' : '');
    span.dataset.p = String(piece.p);
    if (piece.c) span.style.backgroundColor = piece.c;
    if (piece.v !== undefined) span.title = piece.p + ': ' + piece.v + (click ? ' (click to ' + click + ')' : '');
    else span.title = piece.p + (piece.g ? ' (global: click to make it local)' : ' (click to make it global)');
    span.onclick = () => setTriggerValue('clicked', piece.p);
    box.appendChild(span);
  }
}
"""
_component = st.components.v2.component("lfviz_token_text", css=_CSS, js=_JS)


def token_text(variant, global_tokens) -> None:
    """The text view with its search and paging, under the lab's token strip."""
    ss = st.session_state
    n = variant.n
    c1, c2 = st.columns([2, 3])
    query = c1.text_input("Find in the text", key="lab_text_find", placeholder="a word, e.g. termination")
    try:
        matches = presets.matching(query, variant.tokens, variant.offsets, variant.text) if query.strip() else ()
    except ValueError:
        matches = ()
    first = 0
    if n > MAX_SHOWN:
        first = c2.slider("First token shown", 0, n - MAX_SHOWN, 0, step=50, key="lab_text_start")
    if query.strip():
        c1.caption(f"{len(matches)} token(s) match, underlined" + (" - 'Add' with the word preset makes them global"
                                                                   if matches else ""))
    pieces = text_pieces(variant.tokens, variant.offsets, variant.text, first, first + MAX_SHOWN, global_tokens,
                         matches, variant.question)
    result = _component(data={"pieces": pieces}, key="lab_text", on_clicked_change=lambda: None)
    if result.clicked is not None:  # a trigger: set for the one run after the click
        state.request(**{"global": format_positions(presets.toggle(global_tokens, [int(result.clicked)]))})


def value_text(result, values, key: str, click: str = "", global_tokens=(), value_format: str = "{:+.3f}",
               scale: float | None = None, colors: list[str] | None = None):
    """`result`'s text with each token's background saying its value (red > 0, blue < 0; the hover gives the
    number; global tokens keep their red box). Long texts page with a slider. Returns the clicked position for
    the one run after a click, else None. `click` says in the hover what a click does; `scale`: the value at
    full colour (default: set by these values; fixed, two maps compare); `colors`: one CSS colour per token
    instead (categories)."""
    first = 0
    if result.n > MAX_SHOWN:
        first = st.slider("First token shown", 0, result.n - MAX_SHOWN, 0, step=50, key=f"{key}_start")
    pieces = text_pieces(result.tokens, result.offsets, result.text, first, first + MAX_SHOWN, global_tokens,
                         question=result.question, values=values, value_format=value_format, value_scale=scale,
                         colors=colors)
    out = _component(data={"pieces": pieces, "click": click}, key=key, on_clicked_change=lambda: None)
    return None if out.clicked is None else int(out.clicked)

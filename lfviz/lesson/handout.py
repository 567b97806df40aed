"""The lesson as one self-contained HTML file: every step's claim, number and figure, as computed for this
document, readable without Python or a network. Plotly's script is inlined once (never a CDN); every text that
can come from the document or the model (numbers in words, token strings in details) is HTML-escaped."""
from __future__ import annotations

from html import escape

import plotly.io as pio

from .core import Step

STYLE = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}"
         "h1{font-size:1.8em}h2{font-size:1.35em;margin-top:2em;border-top:1px solid #ddd;padding-top:1em}"
         ".number{font-size:1.2em;font-weight:600;background:#eef5fc;padding:.5em .8em;border-radius:6px}"
         ".note{color:#8a5a00}li{margin:.2em 0}")


def _figure_html(step: Step, first: bool) -> str:
    if step.figure is None:
        return ""
    # the first figure carries plotly.js inline; later ones reuse it (one copy keeps the file ~5 MB smaller each)
    return pio.to_html(step.figure, full_html=False, include_plotlyjs=True if first else False,
                       config={"displaylogo": False}, div_id=f"figure-{step.number}")


def handout_html(steps: list[Step], model_id: str, document_title: str, settings: str = "") -> str:
    """The whole handout as one HTML string (UTF-8)."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>lfviz lesson: "
             f"{escape(document_title)}</title><style>{STYLE}</style></head><body>",
             "<h1>Sparse attention, step by step</h1>",
             f"<p>Computed by lfviz on <b>{escape(model_id)}</b> and the document <b>{escape(document_title)}</b>"
             + (f"; {escape(settings)}" if settings else "") + ".</p>"]
    first = True
    for s in steps:
        parts.append(f"<section id='step-{s.number}'><h2>Step {s.number}. {escape(s.title)}</h2>"
                     f"<p>{escape(s.claim)}</p>")
        if s.needs:
            parts.append(f"<p class='note'>{escape(s.note)} (model: {escape(s.needs)})</p></section>")
            continue
        if s.value_text:  # a step not measured (refused by the budget, not shown yet) has its note only
            parts.append(f"<p class='number'>{escape(s.value_text)}</p>")
        if s.details:
            parts.append("<ul>" + "".join(f"<li>{escape(d)}</li>" for d in s.details) + "</ul>")
        if s.note:
            parts.append(f"<p class='note'>{escape(s.note)}</p>")
        html = _figure_html(s, first)
        first = first and not html
        parts.append(html + "</section>")
    parts.append("</body></html>")
    return "\n".join(parts)

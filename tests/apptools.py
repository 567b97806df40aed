"""Shared AppTest helpers: the app and its pages, open a page on a given document, find a Plotly chart by title, decode its arrays."""
import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")  # absolute: AppTest resolves a relative path against the calling test's folder
PAGES = ["pages/document.py", "pages/pattern.py", "pages/attention.py", "pages/global_lab.py",
         "pages/fidelity.py", "pages/study.py", "pages/head_view.py", "pages/scaling.py", "pages/lesson.py"]


def new_app(timeout: float = 180) -> AppTest:
    return AppTest.from_file(APP, default_timeout=timeout)


def open_page(page: str, document: str, **state) -> AppTest:
    """The app with `document` (and any other session values), switched to pages/<page>.py, no exception."""
    at = new_app()
    at.session_state["document"] = document
    at.session_state["sample"] = "custom"
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def chart(at, title_part: str) -> dict:
    """The JSON spec of the Plotly chart whose title contains `title_part`."""
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if title_part in json.dumps(spec.get("layout", {}).get("title", "")):
            return spec
    raise AssertionError(f"no chart titled {title_part!r}")


def values(v) -> np.ndarray:
    """A spec array: a plain list, or Plotly's base64 typed array {"dtype", "bdata", "shape"}."""
    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return arr.reshape([int(s) for s in v["shape"].split(",")]) if "shape" in v else arr
    return np.asarray(v)


def app_with_model(model: str, document: str) -> AppTest:
    """The app on `document` with `model` (a key or a folder, as the custom model field sets it) loaded after a
    first run, as a user who switches models; no page switched yet."""
    at = new_app()
    at.session_state["document"] = document
    at.session_state["sample"] = "custom"
    at.run()
    at.session_state["model"] = model
    at.run()
    return at

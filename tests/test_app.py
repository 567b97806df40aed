"""AppTest: the app opens on the embedded model with a sample, and every page runs."""
from streamlit.testing.v1 import AppTest

PAGES = ["pages/document.py", "pages/pattern.py", "pages/attention.py", "pages/global_lab.py",
         "pages/head_view.py", "pages/scaling.py"]


def new_app():
    return AppTest.from_file("../app.py", default_timeout=180)


def test_document_page_is_alive():
    at = new_app().run()
    assert not at.exception
    assert "converted" in at.info[0].value.lower()
    tokens = at.metric[0].value
    assert int(tokens.replace(",", "")) > 1000  # a long sample is loaded
    at.text_area(key="doc_text").set_value("   ").run()
    assert not at.exception and any("empty" in w.value for w in at.warning)


def test_every_page_runs():
    at = new_app().run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)

from streamlit.testing.v1 import AppTest


def test_app_opens_on_the_embedded_model():
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    assert not at.exception
    assert "converted" in at.info[0].value.lower()
    assert at.metric[0].value != ""
    at.text_area(key="doc_text").set_value("   ").run()
    assert not at.exception and "empty" in at.warning[0].value

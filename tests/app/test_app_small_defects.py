"""Issue 20's smaller defects on the app's pages (AppTest); what must be seen in a browser is in
tests/browser/test_browser_readable.py."""
import json

from apptools import open_page

DOC = "Every clause of the lease names the tenant and the landlord again. " * 12


def test_the_attention_tab_survives_a_visit_to_another_page():
    """Streamlit drops a widget's key on a run that does not draw it: the open tab was lost after visiting
    another page. It lives in a plain session key, handed back to the tabs when the page is drawn again."""
    at = open_page("attention", DOC)
    at.session_state["attention_tab"] = "Global tokens"  # what a click on the tab (or a link) leaves
    at.run()
    assert open_tab(at) == "Global tokens"
    at.switch_page("pages/document.py").run()
    at.switch_page("pages/pattern.py").run()
    assert at.session_state["attention_tab"] == "Global tokens"
    assert at.query_params["tab"] == "Global tokens"  # links made on other pages keep it too
    at.switch_page("pages/attention.py").run()
    assert not at.exception and open_tab(at) == "Global tokens"


def open_tab(at) -> str:
    """The tab the Attention page's tab container opens on."""
    from lfviz.app.attention_tabs import TABS

    def blocks(node):
        for child in getattr(node, "children", {}).values():
            yield child
            yield from blocks(child)
    container = next(b.proto.tab_container for b in blocks(at._tree)
                     if "tab_container" in str(getattr(b, "proto", ""))[:40])
    return TABS[container.default_tab_index]


def test_the_cost_table_separates_thousands_and_the_caption_says_2nd():
    at = open_page("pattern", DOC * 4, window="64", dilation="2")
    table = next(d for d in at.dataframe if "pairs per head" in d.value.columns)
    config = json.loads(table.proto.columns)
    assert config["pairs per head"]["type_config"]["format"] == "localized"  # 1,974,025, not 1974025
    assert table.value["pairs per head"].max() > 1000
    captions = " ".join(c.value for c in at.caption)
    assert "only every 2nd position" in captions and "2-th" not in captions

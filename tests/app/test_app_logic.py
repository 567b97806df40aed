"""Pure pieces of the app layer (lfviz/app), tested without running a page."""
import pytest

from lfviz.app.document import decode_text_upload, export_differences
from lfviz.app.scaling import length_options


def test_text_uploads_are_decoded_or_refused_with_the_fix():
    assert decode_text_upload("Grüße, 世界".encode()) == "Grüße, 世界"
    with pytest.raises(ValueError, match="not UTF-8 text. Save it as UTF-8"):
        decode_text_upload(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="The file is 0.0 MB; the limit is 0 MB. Upload a shorter text"):
        decode_text_upload(b"x" * 11, limit=10)


def test_an_export_lists_how_it_differs_from_the_current_view():
    info = {"model": "embedded-16k", "config": {"window": "64", "dilation": "1", "global": "0"}}
    same = {"window": "64", "dilation": "1", "global": "0"}
    assert export_differences(info, "embedded-16k", same) == []
    diff = export_differences(info, "embedded", {**same, "global": ""})
    assert diff == ["model embedded-16k (current: embedded)", "global '0' (current: '')"]


def test_scaling_lengths_end_at_the_model_positions():
    assert length_options(4096) == [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert length_options(16384)[-2:] == [8192, 16384]
    assert length_options(1000)[-2:] == [512, 1000]


def test_export_differences_compare_meaning_not_spacing():
    info = {"model": "embedded", "config": {"window": "64", "dilation": "1", "global": "0, 20"}}
    assert export_differences(info, "embedded", {"window": "64", "dilation": "1", "global": "0,20"}) == []
    assert export_differences(info, "embedded", {"window": "64", "dilation": "1", "global": "0,21"}) == \
        ["global '0, 20' (current: '0,21')"]

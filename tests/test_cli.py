import subprocess
import sys

import lfviz
from lfviz.cli import main


def test_capture_end_to_end(tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("The window slides over the text. Global tokens read all of it.", encoding="utf-8")
    out = tmp_path / "run.safetensors"
    rc = main(["capture", "--model", "embedded", "--window", "8", "--dilation", "1;1;2;2;1;1", "--global", "0",
               "--query", "sliding window", str(doc), "-o", str(out), "--layers", "0,2", "--device", "cpu"])
    assert rc == 0
    res = lfviz.load_result(out)
    assert res.config == lfviz.AttentionConfig(window=8, dilation=[1, 1, 2, 2, 1, 1], global_tokens=(0,))
    assert res.capture.captured_layers == [0, 2] and res.capture.band(2).shape[-1] == 9
    assert "sliding window" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_bytes(b"\xff\xfe\x00binary")
    assert main(["capture", str(doc), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    doc.write_text("fine text")
    assert main(["capture", "--window", "7", str(doc), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "must be even" in capsys.readouterr().err


def test_console_script(tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("Short document for the command line.")
    out = tmp_path / "run.safetensors"
    proc = subprocess.run([sys.executable, "-m", "lfviz.cli", "capture", "--window", "256", "--dilation", "1",
                           "--global", "0", str(doc), "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "embedded" in proc.stdout


def test_make_run_binds_to_loopback_unless_asked():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    plain = subprocess.run(["make", "-n", "run"], cwd=root, capture_output=True, text=True).stdout
    assert "--server.address 127.0.0.1" in plain
    shared = subprocess.run(["make", "-n", "run", "ADDRESS=0.0.0.0"], cwd=root, capture_output=True, text=True).stdout
    assert "--server.address 0.0.0.0" in shared
    assert "--browser.serverAddress" in shared  # streamlit then looks up no network or public address
    assert 'address = "127.0.0.1"' in (root / ".streamlit" / "config.toml").read_text()  # plain streamlit run too


def test_make_run_is_offline_and_reads_no_server_path_unless_the_owner_opts_in():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    make = lambda *a: subprocess.run(["make", "-n", "run", *a], cwd=root, capture_output=True, text=True).stdout
    plain = make()
    assert "HF_HUB_OFFLINE=1" in plain and "LFVIZ_HUB_DOWNLOADS=1" not in plain and "LFVIZ_PATHS" not in plain
    online = make("ONLINE=1", "PATHS=/srv/studies", "CORPUS=/srv/corpus")
    assert "LFVIZ_HUB_DOWNLOADS=1" in online and "HF_HUB_OFFLINE=1" not in online
    assert 'LFVIZ_PATHS="/srv/studies"' in online and 'LFVIZ_CORPUS="/srv/corpus"' in online

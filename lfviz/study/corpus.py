"""A corpus for a study: a folder of .txt files, a JSON Lines file, or a Parquet file with a `text` column (and
optionally `question` and `id`). One `Doc` per document, in a stable order. A document that cannot be read is a
`Doc` with `error` set: its rows record the error and the study goes on."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

FORMATS = "a folder of .txt files, a .jsonl file, or a .parquet file with a 'text' column (optional 'question', 'id')"


@dataclass(frozen=True)
class Doc:
    index: int  # order in the corpus: results are sorted by it, whichever engine ran them
    id: str  # unique in the corpus; a resumed study skips the ids it already has
    text: str = ""
    question: str | None = None
    error: str | None = None  # why this document cannot be studied (the study records it and goes on)


def _folder(path: Path) -> list[Doc]:
    files = sorted(path.glob("*.txt"))
    if not files:
        raise ValueError(f"no .txt files in {path}: the corpus must be {FORMATS}")
    docs = []
    for i, f in enumerate(files):
        try:
            text = f.read_text(encoding="utf-8")
            docs.append(Doc(i, f.stem, text, error=None if text.strip() else "empty document"))
        except UnicodeDecodeError:
            docs.append(Doc(i, f.stem, error="not UTF-8 text: save it as UTF-8"))
        except OSError as e:
            docs.append(Doc(i, f.stem, error=f"cannot be read ({e.strerror or e})"))
    return docs


def _record(i: int, record, where: str) -> Doc:
    if not isinstance(record, dict):
        return Doc(i, where, error=f"{where} is not an object with a 'text' field")
    doc_id = str(record["id"]) if record.get("id") is not None else where
    text, question = record.get("text"), record.get("question")
    if not isinstance(text, str) or not text.strip():
        return Doc(i, doc_id, error="no text (the 'text' field is missing, empty or not a string)")
    if question is not None and not isinstance(question, str):
        return Doc(i, doc_id, error="'question' is not a string")
    return Doc(i, doc_id, text, question or None)


def _jsonl(path: Path) -> list[Doc]:
    docs = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                docs.append(Doc(len(docs), f"line {line_no}", error=f"line {line_no} is not JSON ({e.msg})"))
                continue
            docs.append(_record(len(docs), record, f"line {line_no}"))
    return docs


def _parquet(path: Path) -> list[Doc]:
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ValueError(f"{path} is not a readable Parquet file ({e}): the corpus must be {FORMATS}") from e
    if "text" not in frame.columns:
        raise ValueError(f"{path} has no 'text' column (columns: {', '.join(map(str, frame.columns[:10]))})")
    keep = frame[[c for c in ("id", "text", "question") if c in frame.columns]].astype(object)
    records = keep.where(keep.notna(), None).to_dict("records")  # missing values as None, not NaN
    return [_record(i, r, f"row {i}") for i, r in enumerate(records)]


def read_corpus(path: str | Path) -> list[Doc]:
    """The documents of a corpus (see the module docstring); ValueError saying what to fix when the corpus
    itself cannot be read, or when two documents share an id."""
    path = Path(path)
    if path.is_dir():
        docs = _folder(path)
    elif not path.exists():
        raise ValueError(f"no such corpus: {path} (the corpus must be {FORMATS})")
    elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        docs = _jsonl(path)
    elif path.suffix.lower() == ".parquet":
        docs = _parquet(path)
    else:
        raise ValueError(f"{path.name}: unknown corpus format; the corpus must be {FORMATS}")
    if not docs:
        raise ValueError(f"{path} holds no documents")
    seen, twice = set(), []
    for d in docs:
        if d.id in seen:
            twice.append(d.id)
        seen.add(d.id)
    if twice:
        raise ValueError(f"document ids must be unique (a resumed study skips the ids it has): "
                         f"{', '.join(map(repr, twice[:5]))} appear more than once")
    return docs

"""Turn a SQuAD v1.1/v2.0 file (and optional distractor CSV) into a corpus plus eval questions.

Public QA sets let us compare retrieval with published figures, but they ship paragraphs, not
articles. This module rebuilds articles the way shared/bench/README.md prescribes (one
document per SQuAD title, its paragraphs joined by a blank line) and converts the questions to
the records of `eval/qa.jsonl`, so the eval runner treats every corpus the same way. Distractor
articles (columns `category,text`) make retrieval find the right passage among ~1,000 documents.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^\w.-]+")


@dataclass(slots=True)
class Corpus:
    """Documents keyed by file name (= document id once indexed) and questions in our format."""

    documents: dict[str, str] = field(default_factory=dict)
    questions: list[dict[str, Any]] = field(default_factory=list)


def doc_file_name(title: str) -> str:
    """A safe `.txt` file name for a SQuAD title; the loader then uses it as the document id."""
    return (_UNSAFE.sub("_", title).strip("._") or "untitled") + ".txt"


def is_squad(data: Any) -> bool:
    """SQuAD files are recognised by shape, not by name: `{"data": [{"paragraphs": [...]}]}`."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("data"), list)
        and all(isinstance(a, dict) and isinstance(a.get("paragraphs"), list) for a in data["data"])
    )


def sniff_squad(path: Path) -> bool:
    """True when the file is one JSON document in SQuAD shape (JSON Lines files are not)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return is_squad(data)


def squad_corpus(data: Mapping[str, Any]) -> Corpus:
    """Articles and questions of parsed SQuAD JSON (v2.0 `is_impossible` marks unanswerables)."""
    if not is_squad(data):
        raise ValueError("not SQuAD JSON: expected {'data': [{'title', 'paragraphs'}, ...]}")
    corpus = Corpus()
    for article in data["data"]:
        name = doc_file_name(str(article.get("title", "")))
        contexts = [str(p.get("context", "")).strip() for p in article["paragraphs"]]
        text = "\n\n".join(c for c in contexts if c)
        if name in corpus.documents:  # two articles with one title: keep both texts
            text = corpus.documents[name] + "\n\n" + text
        corpus.documents[name] = text
        for paragraph in article["paragraphs"]:
            for qa in paragraph.get("qas", []):
                corpus.questions.append(_question(qa, name))
    return corpus


def _question(qa: Mapping[str, Any], doc_id: str) -> dict[str, Any]:
    impossible = bool(qa.get("is_impossible", False))
    aliases = [] if impossible else [str(a["text"]) for a in qa.get("answers", [])]
    aliases = list(dict.fromkeys(a for a in aliases if a.strip()))  # dedupe, keep order
    answerable = bool(aliases)
    return {
        "id": str(qa.get("id", "")),
        "question": str(qa["question"]),
        "answers": aliases,
        "doc_ids": [doc_id],
        "answerable": answerable,
        "tags": ["squad"] if answerable else ["squad", "unanswerable"],
    }


def load_squad(path: Path) -> Corpus:
    return squad_corpus(json.loads(Path(path).read_text(encoding="utf-8")))


def load_distractors(path: Path) -> dict[str, str]:
    """Rows of a `category,text` CSV as documents `bbc-<row>.txt` (row counted from 0)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # some articles exceed the 128 KiB default
    docs: dict[str, str] = {}
    with Path(path).open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise ValueError(f"{path}: expected a CSV with a 'text' column")
        for row, record in enumerate(reader):
            text = (record.get("text") or "").strip()
            if text:
                docs[f"bbc-{row}.txt"] = text
    return docs


def write_documents(documents: Mapping[str, str], folder: Path) -> None:
    """Write the articles as files; unchanged files are left alone so a kept index stays valid."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(documents)
    for stale in folder.glob("*.txt"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in documents.items():
        path = folder / name
        data = text.encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)

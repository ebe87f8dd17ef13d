"""Eval sets for `rag eval`: our JSON Lines questions, or SQuAD JSON turned into a corpus.

`eval/qa.jsonl` holds one `EvalQuestion` per line and is asked against an existing index. A
SQuAD v1.1/v2.0 file ships paragraphs, not articles, so its articles are rebuilt the way
shared/bench/README.md prescribes (one document per SQuAD title, its paragraphs joined by a
blank line) and its questions converted to the same records, so the runner treats every
corpus the same way. `--distractors` (a CSV with a `text` column, e.g. BBC news) adds articles
so retrieval must find the right passage among ~1,000 documents. The SQuAD corpus is indexed in
a temporary folder that is removed afterwards, or in a kept `--corpus-dir` that is reused.

Invariants: a bad question line is an error naming the line, never a skip; SQuAD files are
recognised by shape, not by name; distractor ids never clash with SQuAD titles.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import RagError

if TYPE_CHECKING:
    from rich.console import Console

    from rag.embedding import Embedder
    from rag.settings import Settings


class CorpusOptions(Protocol):
    """What `open_eval_set` reads of a run's options (`rag.evaluation.runner.EvalConfig`,
    which imports this module: a protocol keeps the two out of an import circle)."""

    index_dir: Path | None
    distractors: Path | None
    corpus_dir: Path | None
    limit: int | None


_UNSAFE = re.compile(r"[^\w.-]+")

# ---------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One line of `eval/qa.jsonl` (SQuAD questions are converted to the same shape)."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_ids: tuple[str, ...]
    answerable: bool
    tags: tuple[str, ...] = ()
    as_of: dt.date | None = None  # the day it is asked on (None: today, as `rag ask` asks)
    period: tuple[dt.date | None, dt.date | None] | None = None  # (since, until) it is about

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> EvalQuestion:
        period = rec.get("period")
        return cls(
            id=str(rec["id"]),
            question=str(rec["question"]),
            answers=tuple(rec.get("answers", [])),
            doc_ids=tuple(rec.get("doc_ids", [])),
            answerable=bool(rec.get("answerable", bool(rec.get("answers")))),
            tags=tuple(rec.get("tags", [])),
            as_of=_day(rec.get("as_of")),
            period=None if period is None else (_day(period["since"]), _day(period["until"])),
        )


def _day(value: Any) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(str(value))


def load_questions(path: Path) -> list[EvalQuestion]:
    """Questions of a JSON Lines file; a bad line is an error naming the line, not a skip."""
    questions = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(EvalQuestion.from_record(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RagError(f"{path}:{lineno}: not an eval question ({exc})") from exc
    if not questions:
        raise RagError(f"{path}: no questions")
    return questions


# ---------------------------------------------------------------------------------------------
# SQuAD and distractor articles
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Eval sets: our index, or a temporary one built from SQuAD
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class EvalSet:
    path: Path
    kind: str  # "jsonl" | "squad"
    questions: list[EvalQuestion]
    index_dir: Path
    documents: int | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def open_eval_set(
    path: Path, config: CorpusOptions, settings: Settings, embedder: Embedder, console: Console
) -> Iterator[tuple[EvalSet, Settings]]:
    """The questions of one file and the settings of the index to ask them against.

    Uses `config.index_dir` (JSON Lines files), `config.distractors` and `config.corpus_dir`
    (SQuAD files) and `config.limit`; status lines go to `console`.
    """
    index_dir, distractors, limit = config.index_dir, config.distractors, config.limit
    if not path.is_file():
        raise RagError(f"eval file not found: {path}")
    if not sniff_squad(path):
        if distractors is not None:
            raise RagError("--distractors only applies to SQuAD files (it extends their corpus)")
        questions = load_questions(path)[:limit]
        idx = index_dir or settings.index_dir
        yield EvalSet(path, "jsonl", questions, idx), settings.with_overrides(index_dir=idx)
        return

    corpus = load_squad(path)
    n_articles = len(corpus.documents)
    if distractors is not None:
        extra = load_distractors(distractors)
        clash = set(extra) & set(corpus.documents)
        if clash:
            raise RagError(f"distractor ids clash with SQuAD titles: {sorted(clash)[:3]}")
        corpus.documents.update(extra)
    questions = [EvalQuestion.from_record(r) for r in corpus.questions][:limit]
    with _corpus_folder(path, distractors, config.corpus_dir) as folder:
        corpus_settings = settings.with_overrides(
            seeds_dir=folder / "articles", index_dir=folder / "index"
        )
        write_documents(corpus.documents, corpus_settings.seeds_dir)
        _build(corpus_settings, embedder, len(corpus.documents), console)
        notes = [f"{n_articles} SQuAD articles + {len(corpus.documents) - n_articles} distractors"]
        yield (
            EvalSet(path, "squad", questions, folder / "index", len(corpus.documents), notes),
            corpus_settings,
        )


@contextmanager
def _corpus_folder(path: Path, distractors: Path | None, corpus_dir: Path | None) -> Iterator[Path]:
    """A kept folder under `corpus_dir` (reused next time) or a temporary one, removed after."""
    if corpus_dir is not None:
        name = path.stem + (f"+{distractors.stem}" if distractors else "")
        folder = corpus_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        yield Path(tmp)


def _build(settings: Settings, embedder: Embedder, n_docs: int, console: Console) -> None:
    from rag.index.indexing import build_index

    console.print(f"[dim]indexing {n_docs} articles in {settings.index_dir} …[/dim]")
    report = build_index(settings, embedder=embedder, progress=None)
    console.print(
        f"[dim]index: {report.documents} documents, {report.chunks} chunks "
        f"({report.chunks_embedded} embedded, {report.seconds:.1f} s, {report.reason})[/dim]"
    )

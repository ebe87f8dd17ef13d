"""The typed values passed between stages: loader → chunker → index → retriever → answerer.

Documents and chunks are plain frozen dataclasses (many of them, built in bulk, never
serialised directly over HTTP). Everything a user sees — passages, citations, answers —
is a pydantic model so the CLI, the HTTP service and the eval runner share one schema.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["dense", "bm25", "hybrid"]
AnswererName = Literal["extractive", "llm"]


@dataclass(frozen=True, slots=True)
class Document:
    """One article. `text` is normalised (NFC, `\\n` newlines); every offset refers to it."""

    id: str  # path relative to the seeds directory, POSIX separators
    title: str
    source: str | None  # publisher / agency, e.g. "Tasnim", "Kuwait News Agency (KUNA)"
    date: str | None  # ISO date (YYYY-MM-DD) when the article states a full date
    dateline: str | None  # raw dateline as written, e.g. "CAIRO, Feb 9"
    text: str
    sha256: str  # of the raw file bytes


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range `[start, end)` in a document's text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of whole sentences of one document; `document.text[start:end] == text`."""

    id: str  # f"{doc_id}#{ordinal}"
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    n_tokens: int  # in the embedding model's tokenizer, special tokens included
    n_tiktoken: int  # in tiktoken's cl100k encoding (LLM context budgeting)


@dataclass(frozen=True, slots=True)
class LoadWarning:
    """A file that was skipped or altered while loading, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Filters(BaseModel):
    """Restrict retrieval to some documents. All given conditions must hold."""

    model_config = ConfigDict(extra="forbid")

    doc_ids: list[str] | None = Field(default=None, description="Only these document ids.")
    sources: list[str] | None = Field(
        default=None,
        description="Only documents whose source contains one of these (case-insensitive).",
    )
    date_from: dt.date | None = Field(default=None, description="Only documents dated on or after.")
    date_to: dt.date | None = Field(default=None, description="Only documents dated on or before.")

    def is_empty(self) -> bool:
        return not (self.doc_ids or self.sources or self.date_from or self.date_to)


class Passage(BaseModel):
    """A retrieved span of one document (one chunk, or overlapping chunks merged)."""

    doc_id: str
    title: str
    source: str | None = None
    date: str | None = None
    start: int
    end: int
    text: str
    score: float
    rank: int
    chunk_ids: list[str]
    dense_score: float | None = None
    bm25_score: float | None = None


class Citation(BaseModel):
    """What marker `[n]` in an answer points at: `quote == document.text[start:end]`."""

    n: int
    doc_id: str
    title: str
    source: str | None = None
    start: int
    end: int
    quote: str
    score: float


class Answer(BaseModel):
    """The result of a question: the answer text with `[n]` markers, and its evidence."""

    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    passages: list[Passage]
    mode: Mode
    answerer: AnswererName = "extractive"
    fallback: bool = False
    fallback_reason: str | None = None
    dropped_citations: int = 0
    confidence: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds.")


class SearchResult(BaseModel):
    """Ranked passages only, no answer."""

    query: str
    mode: Mode
    passages: list[Passage]
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds.")


@dataclass(slots=True)
class AnswerDraft:
    """What an answerer produces; the assistant adds passages, mode and timings."""

    answer: str
    citations: list[Citation]
    abstained: bool
    confidence: float = 0.0
    answerer: AnswererName = "extractive"
    fallback: bool = False
    fallback_reason: str | None = None
    dropped_citations: int = 0


class BuildReport(BaseModel):
    """What `rag index` did."""

    version: str | None
    full_rebuild: bool
    reason: str
    added: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: int = 0
    documents: int = 0
    chunks: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    warnings: list[str] = Field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.full_rebuild)

"""The typed values passed between stages: loader → chunker → index → retriever → answerer.

Documents and chunks are plain frozen dataclasses (many of them, built in bulk, never
serialised directly over HTTP). Everything a user sees — passages, citations, answers —
is a pydantic model so the CLI, the HTTP service and the eval runner share one schema.

A story published more than once (`rag.ingest.copies`) is returned once: its passage or citation
lists the other publications in `also_in`, each with that copy's own offsets
(`copy.text[start:end]` is the matching span there).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from rag.choices import AnswererName, Mode

# Where an article's date was found (see rag.ingest.article_dates); a file's mtime is never one.
DateSource = Literal["front-matter", "html-meta", "dateline", "text"]
DATE_DESCRIPTION = (
    "The article's date, ISO 8601: YYYY-MM-DD, or --MM-DD when the article states the month "
    'and day but not the year (e.g. the dateline "CAIRO, Feb 9 (KUNA)"); null when it states '
    "none."
)
DATE_SOURCE_DESCRIPTION = (
    "Where the date was found: front-matter, html-meta (article:published_time, "
    "<meta name=date>, <time>), dateline, or text (a date stamp in the first sentences); null "
    "when there is no date."
)


@dataclass(frozen=True, slots=True)
class Document:
    """One article. `text` is normalised (NFC, `\\n` newlines); every offset refers to it."""

    id: str  # path relative to the seeds directory, POSIX separators
    title: str
    source: str | None  # publisher / agency, e.g. "Tasnim", "Kuwait News Agency (KUNA)"
    date: str | None  # ISO 8601: YYYY-MM-DD, or --MM-DD when the year is not stated
    dateline: str | None  # raw dateline as written, e.g. "CAIRO, Feb 9"
    text: str
    sha256: str  # of the raw file bytes
    date_source: DateSource | None = None  # where `date` was found; None when there is none


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
    date_from: dt.date | None = Field(
        default=None,
        description="Only documents dated on or after (a date without its year never matches).",
    )
    date_to: dt.date | None = Field(
        default=None,
        description="Only documents dated on or before (a date without its year never matches).",
    )

    def is_empty(self) -> bool:
        return not (self.doc_ids or self.sources or self.date_from or self.date_to)


class SearchQuery(BaseModel):
    """What to retrieve: the one request object of `Assistant.search`, the CLI and HTTP.

    Unset options (None) take their defaults from `Settings` when the assistant resolves them.
    """

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        description="1 to max_question_chars (default 2,000) characters after trimming.",
        examples=["Who chairs the Arab Parliament?"],
    )
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to return (default 5).")
    mode: Mode | None = Field(None, description="Retrieval mode (default hybrid).")
    filters: Filters | None = None
    as_of: dt.date | None = Field(
        None,
        description="The day the question is asked, YYYY-MM-DD (default: RAG_AS_OF, else "
        "today): articles dated after it are not used, and relative words in the question "
        '("last week", "in February", "now") count from it.',
        examples=["2024-06-01"],
    )
    # Set once the question is trimmed and within the limit (`Assistant.check`): nothing on
    # the way checks it again, the answer processes included (`server.messages`).
    _checked: bool = PrivateAttr(default=False)

    @property
    def checked(self) -> bool:
        return self._checked

    def mark_checked(self) -> Self:
        """Record that the question was checked (`Assistant.check`, or the HTTP process for a
        query it hands to an answer process); returns the query itself."""
        self._checked = True
        return self

    @classmethod
    def of(cls, query: SearchQuery | str, **options: Any) -> Self:
        """`query` as this type: a bare question string plus options, or a query (copied
        with the given non-None options replacing its own; still checked if it was and the
        question is the same)."""
        unknown = set(options) - set(cls.model_fields)
        if unknown:
            raise TypeError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
        data = {"question": query} if isinstance(query, str) else query.model_dump()
        data.update(options)
        out = cls(**{k: v for k, v in data.items() if k in cls.model_fields and v is not None})
        if not isinstance(query, str) and query.checked and "question" not in options:
            out.mark_checked()
        return out


class Query(SearchQuery):
    """A question to answer: what to retrieve plus who writes the answer."""

    answerer: AnswererName | None = Field(None, description="Who writes the answer.")


class AlsoIn(BaseModel):
    """The same text in a copy of the story (a republication of the same article, found at
    index time by `rag.ingest.near_duplicates`): `copy.text[start:end]` is the matching span
    there."""

    doc_id: str
    start: int
    end: int
    source: str | None = None
    date: str | None = Field(None, description=DATE_DESCRIPTION)
    # The word alignment of the passage's document with this copy (`rag.ingest.near_duplicates.
    # Alignment`), so that a citation inside the passage maps into the copy too; never
    # serialised, absent after a round trip through JSON.
    _alignment: Any = PrivateAttr(default=None)

    def mapped(self, start: int, end: int) -> AlsoIn | None:
        """This copy's span matching `[start, end)` of the passage's document, or None when
        it is not mappable (the copy trimmed it, or the alignment is not at hand)."""
        span = None if self._alignment is None else self._alignment.map_span(start, end)
        if span is None:
            return None
        entry = self.model_copy(update={"start": span[0], "end": span[1]})
        entry._alignment = self._alignment
        return entry


AS_OF_DESCRIPTION = "The day the question was asked on: no article dated after it was used."
PERIOD_DESCRIPTION = (
    'The period the question names ("in 2022", "last week", "before March 2024"): only '
    "articles dated in it, or passages stating a time in it, were used; null when it names none."
)
ALSO_IN_DESCRIPTION = (
    "Copies of this story (the same article republished), each with the span of its own text "
    "that matches this one; the story itself is returned once."
)


class DocumentRef(BaseModel):
    """One document by id, with its title, source and date."""

    doc_id: str
    title: str
    source: str | None = None
    date: str | None = Field(None, description=DATE_DESCRIPTION)
    date_source: DateSource | None = Field(None, description=DATE_SOURCE_DESCRIPTION)

    @classmethod
    def of(cls, doc: Document, **fields: Any) -> Self:
        """One about `doc` (its id, title, source and date), with `fields` besides."""
        shared = {f: getattr(doc, f) for f in ("title", "source", "date", "date_source")}
        return cls(doc_id=doc.id, **shared, **fields)


class DocumentSpan(DocumentRef):
    """Characters `[start, end)` of one document's text, scored, with the copies of the story
    it also stands in: what a passage, a citation and a timeline event have in common."""

    start: int
    end: int
    score: float
    also_in: list[AlsoIn] = Field(default_factory=list, description=ALSO_IN_DESCRIPTION)


class Passage(DocumentSpan):
    """A retrieved span of one document: one chunk, less any text a better passage returned."""

    text: str
    rank: int
    chunk_id: str
    dense_score: float | None = None
    bm25_score: float | None = None


class ResolvedDate(BaseModel):
    """A day named relative to the article's date ("on Thursday", "yesterday", "last week"),
    resolved (`rag.temporal.relative_dates`): `document.text[start:end] == text`."""

    start: int
    end: int
    text: str
    date: str = Field(
        description="ISO 8601 at the expression's precision: YYYY-MM-DD (a day), YYYY-Www (a "
        "week), YYYY-MM or YYYY; counted from the date of the story's first publication."
    )


class Period(BaseModel):
    """The time a question asks about (`rag.temporal.time_query`): both ends inclusive, null =
    open."""

    since: dt.date | None = None
    until: dt.date | None = None


class Citation(DocumentSpan):
    """What marker `[n]` in an answer points at: `quote == document.text[start:end]`."""

    n: int
    quote: str
    resolved_dates: list[ResolvedDate] = Field(
        default_factory=list,
        description="Days the quote names relative to its article's date, resolved (offsets "
        "into the document, inside [start, end)).",
    )
    earlier: bool = Field(
        False,
        description="An older article's claim, shown for context: the answer comes from a newer "
        "one (a question about the present prefers the newest articles).",
    )

    def dated(self, passages: list[Passage]) -> Citation:
        """This citation with its document's date and date source, taken from a passage of the
        same document (every citation quotes a retrieved passage's document); unchanged when it
        has a date source already or no passage is of its document."""
        if self.date_source is not None:
            return self
        for p in passages:
            if p.doc_id == self.doc_id:
                return self.model_copy(update={"date": p.date, "date_source": p.date_source})
        return self

    def with_copies(self, passages: list[Passage]) -> Citation:
        """This citation with its span mapped into each copy its passages list in `also_in`
        (the passage holding the citation first), where mappable; unchanged when it has
        copies already or its document has none."""
        if self.also_in:
            return self
        mine = [p for p in passages if p.doc_id == self.doc_id and p.also_in]
        mine.sort(key=lambda p: not (p.start <= self.start and self.end <= p.end))
        seen: set[str] = set()
        also_in = []
        for p in mine:
            for entry in p.also_in:
                if entry.doc_id not in seen:
                    seen.add(entry.doc_id)
                    if (mapped := entry.mapped(self.start, self.end)) is not None:
                        also_in.append(mapped)
        return self.model_copy(update={"also_in": also_in}) if also_in else self


class ShortAnswer(BaseModel):
    """The minimal phrase that answers: `text == document.text[start:end]`, inside citation n."""

    text: str
    doc_id: str
    start: int
    end: int
    n: int = Field(description="The citation whose sentence holds it.")
    score: float = 0.0
    resolved_date: str | None = Field(
        None, description='The day it names when it is a relative day ("Thursday"), resolved.'
    )


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
    short_answer: ShortAnswer | None = Field(
        None, description="The phrase that answers (extractive answers), a slice of citation n."
    )
    as_of: dt.date | None = Field(None, description=AS_OF_DESCRIPTION)
    period: Period | None = Field(None, description=PERIOD_DESCRIPTION)
    prefer_newest: bool = Field(
        False,
        description='The question asks about the present ("now", "current", "Who is …"): the '
        "answer comes from the newest article that answers it, older claims are marked earlier.",
    )
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds.")


class SearchResult(BaseModel):
    """Ranked passages only, no answer."""

    query: str
    mode: Mode
    passages: list[Passage]
    as_of: dt.date | None = Field(None, description=AS_OF_DESCRIPTION)
    period: Period | None = Field(None, description=PERIOD_DESCRIPTION)
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
    short_answer: ShortAnswer | None = None

    def to_answer(
        self, question: str, passages: list[Passage], mode: Mode, timings: dict[str, float]
    ) -> Answer:
        """The user-facing Answer: this draft plus what the assistant knows about the request.
        Citations get their document's date and date source here, for every answerer, and
        the copies of their span (`also_in`, mapped from their passage's copies)."""
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        fields["citations"] = [c.dated(passages).with_copies(passages) for c in self.citations]
        return Answer(question=question, passages=passages, mode=mode, timings=timings, **fields)


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
    documents_signed: int = Field(
        0, description="Documents shingled and signed for copy detection (new or changed ones)."
    )
    copy_groups: int = Field(0, description="Stories published more than once.")
    copies_seconds: float = Field(
        0.0, description="Of `seconds`, the time spent signing and grouping copies."
    )
    seconds: float = 0.0
    warnings: list[str] = Field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.full_rebuild)

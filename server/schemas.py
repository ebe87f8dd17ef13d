"""Request and response bodies of the HTTP API, as pydantic models.

The answers themselves (`Answer`, `SearchResult`, `Passage`, `Citation`, `Filters`) are the
shared models of `rag.models`, so the CLI, the eval runner and the API speak one schema. What is
defined here is only what HTTP adds: request envelopes, document listings, status and errors.
Every error status a route can return is declared with `ErrorBody` so the OpenAPI document is
honest (schemathesis checks responses against it).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from rag.events import DeltaEvent, DoneEvent, PassagesEvent
from rag.models import (
    DATE_DESCRIPTION,
    DATE_SOURCE_DESCRIPTION,
    BuildReport,
    DateSource,
    Document,
    DocumentRef,
    Query,
    SearchQuery,
)


class _HttpQuestion(BaseModel):
    """HTTP's rule for the question: blank is a 422 naming the field. (The length limit is a
    setting, so it is checked per app by `Assistant.check_question`.)"""

    question: str = Field(
        min_length=1,
        description="1 to max_question_chars (default 2,000) characters after trimming.",
        examples=["Who chairs the Arab Parliament?"],
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is empty after trimming whitespace")
        return value


class SearchRequest(_HttpQuestion, SearchQuery):
    """Rank passages for a question. Unknown fields are rejected, not silently ignored."""


class AskRequest(_HttpQuestion, Query):
    """Answer a question, citing exact spans of the articles."""

    stream: bool | None = Field(
        None,
        description="Answer as Server-Sent Events (passages, delta…, done). Unset: follow the "
        "Accept header (text/event-stream streams).",
    )

    def query(self) -> Query:
        """The request as the assistant's `Query` (without the HTTP-only `stream`)."""
        return Query.of(self)


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `filters.doc_ids`.")
    reason: str


class ErrorDetail(BaseModel):
    type: str = Field(description="validation_error, not_found, unauthorized, internal_error, …")
    message: str
    fields: list[FieldError] | None = Field(None, description="Validation errors only.")
    request_id: str | None = Field(None, description="Internal errors only; also X-Request-ID.")


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON of an error response, with only the keys that apply."""
    return {"error": {"type": type_, "message": message, **extra}}


class DocumentInfo(BaseModel):
    id: str = Field(description="Path relative to the seeds folder; an opaque key over HTTP.")
    title: str
    source: str | None = None
    date: str | None = Field(None, description=DATE_DESCRIPTION)
    date_source: DateSource | None = Field(None, description=DATE_SOURCE_DESCRIPTION)
    dateline: str | None = None
    length: int = Field(description="Characters of normalised text.")
    sha256: str

    @classmethod
    def of(cls, doc: Document) -> DocumentInfo:
        return cls(
            id=doc.id,
            title=doc.title,
            source=doc.source,
            date=doc.date,
            date_source=doc.date_source,
            dateline=doc.dateline,
            length=len(doc.text),
            sha256=doc.sha256,
        )


class DocumentCopy(DocumentRef):
    """Another publication of the same story (a republished wire copy, a trimmed reprint)."""


class DocumentDetail(DocumentInfo):
    text: str = Field(description="The text every citation offset refers to.")
    canonical: str | None = Field(
        None,
        description="The story's first publication (earliest date, then longest text) when "
        "this article has copies — this document's own id when it is that one; null when it "
        "has none.",
    )
    copies: list[DocumentCopy] = Field(
        default_factory=list,
        description="The other publications of the same story, canonical first (search and "
        "ask return the story once, listing these in `also_in`).",
    )

    @classmethod
    def of(
        cls, doc: Document, copies: list[Document] | None = None, canonical: str | None = None
    ) -> DocumentDetail:
        return cls(
            **DocumentInfo.of(doc).model_dump(),
            text=doc.text,
            canonical=canonical if copies else None,
            copies=[DocumentCopy.of(c) for c in copies or []],
        )


class DocumentPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[DocumentInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed"]
    index_version: str | None = None
    documents: int | None = None
    chunks: int | None = None
    model: str | None = None
    watching: bool = False
    error: str | None = Field(None, description="Why loading failed (status=failed).")
    worker: int = Field(
        default_factory=os.getpid,
        description="Process id of the worker that answered (`rag serve --workers N`).",
    )
    answer_processes: int = Field(
        0,
        description="Answer processes up (`RAG_ANSWER_PROCESSES`); 0: answers are computed "
        "in this process.",
    )


Trigger = Literal["api", "watch"]  # what started a rebuild
RebuildStart = Literal["started", "queued"]


class RebuildAccepted(BaseModel):
    status: RebuildStart = Field(
        description="started: a rebuild began now; queued: one is running, another will follow "
        "it so that changes made meanwhile are picked up."
    )
    status_url: str = "/v1/index/status"


class RebuildRun(BaseModel):
    trigger: Trigger
    started_at: float = Field(description="Unix time.")
    finished_at: float | None = Field(None, description="Unix time; unset while running.")
    ok: bool | None = Field(None, description="Unset while running.")
    report: BuildReport | None = None
    error: str | None = None


class IndexStatus(BaseModel):
    serving_version: str | None
    documents: int
    chunks: int
    running: bool
    queued: bool
    watching: bool
    completed: int = Field(description="Rebuilds finished by this process (ok or not).")
    last: RebuildRun | None = Field(None, description="The latest rebuild, running or finished.")
    reload_error: str | None = Field(
        None, description="Why the newest index version could not be loaded (old one serves)."
    )


def _sse_event(event: str, data_schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["event", "data"],
        "properties": {
            "event": {"const": event},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data_schema,
            },
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# One event of the /v1/ask stream (Open API 3.1: `schema` of text/event-stream is per event).
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _sse_event(
            PassagesEvent.kind,
            {
                "type": "object",
                "required": ["passages"],
                "properties": {"passages": {"type": "array", "items": _ref("Passage")}},
            },
            "First: the retrieved passages.",
        ),
        _sse_event(
            DeltaEvent.kind,
            {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            "Answer text as it is produced; the deltas concatenate to Answer.answer.",
        ),
        _sse_event(
            DoneEvent.kind, _ref("Answer"), "Last: the full answer with citations and timings."
        ),
        _sse_event("error", _ref("ErrorBody"), "Instead of what remains, if answering failed."),
    ]
}

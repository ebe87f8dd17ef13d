"""What the server and its child processes say to each other: typed messages, one encoding.

Two kinds of child process talk to the server over a `multiprocessing` pipe, one message per
frame (`send_bytes` / `recv_bytes`, `encode` / `decode`):

- an answer process (`server.answer_pool`): at start-up it sends `Ready` or `LoadFailed`; then
  it answers each `AskMessage`, `SearchMessage` or `TimelineMessage` with a `Result` (the
  result's JSON, sent on to the client as it is), a `Failure` (a `RagError`: its class, message
  and field, raised again in the server) or a `Crash` (anything else; the child logged it).
  Every question carries the index version the server serves, and its query was checked by
  the server (`Assistant.check`), so the answer process does not check it again.
- the rebuild child (`server.rebuild`): one `Built` (the `BuildReport`) or one `Failure`.

A frame is a tag byte and a body: the request tags carry `version + "\\n" + JSON`; `Result`
carries the JSON untouched, so an answer crosses the pipe and reaches the client without being
parsed or serialised again in the server.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from rag import errors
from rag.errors import RagError
from rag.models import BuildReport, Query, SearchQuery


@dataclass(frozen=True, slots=True)
class AskMessage:
    """An extractive answer to `query` on index `version`; with `embed` (a chat follow-up),
    retrieval uses that text's vector instead of the question's."""

    version: str
    query: Query
    embed: str | None = None


@dataclass(frozen=True, slots=True)
class SearchMessage:
    """Ranked passages for `query` on index `version`."""

    version: str
    query: SearchQuery


@dataclass(frozen=True, slots=True)
class TimelineMessage:
    """The timeline of `query` on index `version`."""

    version: str
    query: SearchQuery


@dataclass(frozen=True, slots=True)
class Ready:
    """An answer process has loaded the model and the index."""


@dataclass(frozen=True, slots=True)
class LoadFailed:
    """An answer process could not load (it exits)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Result:
    """A question's result as JSON (the `Answer`, `SearchResult` or `Timeline` model's)."""

    body: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """A `RagError` raised in the child: raised again in the server with its class, message
    and field (so it keeps its HTTP status)."""

    type: str
    message: str
    field: str | None = None

    @classmethod
    def of(cls, exc: RagError) -> Failure:
        return cls(type(exc).__name__, str(exc), getattr(exc, "field", None))

    def error(self) -> RagError:
        """The error to raise: the same class when it is one of `rag.errors`, else RagError."""
        cls = getattr(errors, self.type, RagError)
        if not (isinstance(cls, type) and issubclass(cls, RagError)):
            cls = RagError
        try:
            if self.field is not None:
                return cls(self.message, field=self.field)  # type: ignore[call-arg]
            return cls(self.message)
        except TypeError:  # a constructor with other arguments: keep the message
            return RagError(self.message)


@dataclass(frozen=True, slots=True)
class Crash:
    """An answer process failed in a way that is not the user's doing (it logged why)."""


@dataclass(frozen=True, slots=True)
class Built:
    """The rebuild child's report of the version it built."""

    report: BuildReport


Question = AskMessage | SearchMessage | TimelineMessage
Message = Question | Ready | LoadFailed | Result | Failure | Crash | Built

_ASK, _SEARCH, _TIMELINE = b"a", b"s", b"t"
_READY, _LOAD_FAILED, _RESULT, _FAILURE, _CRASH, _BUILT = b"r", b"f", b"0", b"1", b"2", b"b"


def encode(message: Message) -> bytes:
    """One frame: the tag byte and the body."""
    match message:
        case AskMessage(version, query, embed):
            body = json.dumps({"query": query.model_dump(mode="json"), "embed": embed})
            return _ASK + version.encode() + b"\n" + body.encode()
        case SearchMessage(version, query):
            return _SEARCH + version.encode() + b"\n" + query.model_dump_json().encode()
        case TimelineMessage(version, query):
            return _TIMELINE + version.encode() + b"\n" + query.model_dump_json().encode()
        case Result(body):
            return _RESULT + body
        case Failure():
            return _FAILURE + json.dumps(asdict(message)).encode()
        case Crash():
            return _CRASH
        case Ready():
            return _READY
        case LoadFailed(reason):
            return _LOAD_FAILED + reason.encode()
        case Built(report):
            return _BUILT + report.model_dump_json().encode()
    raise TypeError(f"not a message: {message!r}")


def decode(frame: bytes) -> Message:
    """The message of one frame (ValueError for an unknown tag)."""
    tag, body = frame[:1], frame[1:]
    if tag == _RESULT:
        return Result(body)
    if tag in (_ASK, _SEARCH, _TIMELINE):
        return _question(tag, body)
    if tag == _FAILURE:
        return Failure(**_object(body))
    if tag == _CRASH:
        return Crash()
    if tag == _READY:
        return Ready()
    if tag == _LOAD_FAILED:
        return LoadFailed(body.decode(errors="replace"))
    if tag == _BUILT:
        return Built(BuildReport.model_validate_json(body))
    raise ValueError(f"unknown message tag {tag!r}")


def _question(tag: bytes, frame: bytes) -> Question:
    head, _, body = frame.partition(b"\n")
    version = head.decode()
    if tag == _ASK:
        data = json.loads(body)
        query = Query.model_validate(data["query"]).mark_checked()
        return AskMessage(version, query, data["embed"])
    search = SearchQuery.model_validate_json(body).mark_checked()
    return SearchMessage(version, search) if tag == _SEARCH else TimelineMessage(version, search)


def _object(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("a message body is not a JSON object")
    return data

"""The assistant as Model Context Protocol tools, built with the official SDK's FastMCP.

Tools: `search_articles`, `ask`, `get_document` (whole text or a `[start, end)` span),
`list_documents` (filters: source, date range, title text; paged) and `timeline` (dated events
for a question or a name, oldest first: `rag.temporal.timeline`). The input schemas of
`search_articles`,
`timeline` and `ask` are generated from the HTTP API's own request models
(`SearchRequest`, `AskRequest` = `rag.models.SearchQuery` / `Query` plus HTTP's question rule),
and arguments are validated by those models, so a bad argument is a tool error naming the field.
Every result is structured content (the same models the HTTP API returns) plus a readable text.

Two transports share the tools: stdio (`rag mcp`, `run_stdio`), where the index is opened in
this process, and streamable HTTP mounted at `/mcp` in `rag serve` (`mount_http`). Either way
the questions go down the one serving path, `server.answering`: in `rag serve`, the server's
(answer processes, the batcher, the CPU pool, hot-swapped index versions); in `rag mcp`, a
runtime of its own over the index it opened (no answer processes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field, ValidationError

from rag.errors import RagError
from rag.ingest.article_dates import full_date
from rag.models import Answer, Document, Filters, SearchResult
from rag.settings import Settings
from rag.temporal.timeline import Timeline, timeline_text
from server.answering import Answering
from server.errors import ApiError
from server.runtime import Runtime, open_assistant
from server.schemas import (
    AskRequest,
    DocumentCopy,
    DocumentDetail,
    DocumentInfo,
    DocumentPage,
    SearchRequest,
)

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


M = TypeVar("M", bound=BaseModel)

INSTRUCTIONS = (
    "Questions about a folder of news articles, answered with exact citations. Use `ask` for "
    "an answer (every [n] marker cites document.text[start:end] == quote), `search_articles` "
    "for ranked passages, `list_documents` to browse, `get_document` to read a document or a "
    "cited span (pass the citation's start and end). Dates are ISO 8601; --MM-DD is a date "
    "whose year the article does not state, and date_source says where a date was found."
)


Backend = Callable[[], Awaitable[Answering]]  # where the tools' questions go (per transport)


def at_once(answering: Answering) -> Backend:
    """Inside `rag serve` (and tests): the server's own serving path, there from the start."""

    async def backend() -> Answering:
        return answering

    return backend


class LocalBackend:
    """`rag mcp`: the model and index load on a thread at startup (the client's handshake
    does not wait for them); every tool waits for them, then answers through a runtime of
    this process."""

    def __init__(self, settings: Settings) -> None:
        self._loaded: concurrent.futures.Future[Answering] = concurrent.futures.Future()

        def load() -> None:
            try:
                runtime = Runtime(settings, open_assistant(settings))
                self._loaded.set_result(Answering(runtime))
            except BaseException as exc:  # surfaced by every tool call
                self._loaded.set_exception(exc)

        threading.Thread(target=load, name="rag-mcp-load", daemon=True).start()

    async def __call__(self) -> Answering:
        return await asyncio.wrap_future(self._loaded)


# --------------------------------------------------------------------------- results


class DocumentSpan(DocumentInfo):
    """A document's text, or the `[start, end)` span of it: `text == document.text[start:end]`."""

    start: int
    end: int
    text: str
    canonical: str | None = Field(
        None, description=DocumentDetail.model_fields["canonical"].description
    )
    copies: list[DocumentCopy] = Field(
        default_factory=list, description=DocumentDetail.model_fields["copies"].description
    )


def _answer_text(answer: Answer) -> str:
    from server.chat import message_content, short_answer_of

    short = short_answer_of(answer)
    lines = [message_content(answer)]
    if short:
        lines.insert(0, f"Short answer: {short}\n")
    for c in answer.citations:
        dated = f" {_date_text(c.date, c.date_source)}" if c.date else ""
        earlier = " (earlier)" if c.earlier else ""
        days = "".join(f"; {r.text} = {r.date}" for r in c.resolved_dates)
        lines.append(f'[{c.n}]{earlier} {c.doc_id} [{c.start}:{c.end}]{dated} "{c.quote}"{days}')
    period = answer.period
    within = f", period {period.since or '…'} to {period.until or '…'}" if period else ""
    lines.append(f"(as of {answer.as_of}{within})")
    return "\n".join(lines)


def _search_text(result: SearchResult) -> str:
    if not result.passages:
        return "No passages found."
    return "\n\n".join(
        f"{p.rank}. {p.title} ({p.doc_id} [{p.start}:{p.end}], {_date_text(p.date, p.date_source)}"
        f", score {p.score:.3f})\n{p.text}"
        for p in result.passages
    )


def _page_text(page: DocumentPage) -> str:
    head = f"{page.total} documents match; showing {len(page.items)} from offset {page.offset}."
    rows = [
        f"- {d.id}: {d.title} ({d.source or 'unknown source'}, {_date_text(d.date, d.date_source)})"
        for d in page.items
    ]
    return "\n".join([head, *rows])


def _date_text(date: str | None, source: str | None) -> str:
    """A date for people: `2024-02-09 (dateline)`, `--02-09, year not stated (dateline)`,
    `undated`."""
    if not date:
        return "undated"
    partial = ", year not stated" if date.startswith("--") else ""
    return f"{date}{partial} ({source})" if source else f"{date}{partial}"


def _span_text(span: DocumentSpan) -> str:
    head = [
        f"{span.title} ({span.id} [{span.start}:{span.end}] of {span.length}, "
        f"{span.source or 'unknown source'}, {_date_text(span.date, span.date_source)})"
    ]
    original = span.canonical if span.canonical != span.id else None
    for c in span.copies:
        role = "republished copy of" if c.doc_id == original else "also published as"
        dated = _date_text(c.date, c.date_source)
        head.append(f"{role}: {c.doc_id} ({c.source or 'unknown source'}, {dated})")
    return "\n".join(head) + f"\n\n{span.text}"


def _result(model: BaseModel, text: str) -> CallToolResult:
    """Structured content (the model) plus a readable text, as one tool result."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
    )


def _tool_error(exc: Exception) -> ToolError:
    """A user-facing tool error: the field and reason, or why the service cannot answer."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        return ToolError(f"invalid {where}: {str(err['msg']).removeprefix('Value error, ')}")
    if isinstance(exc, ApiError):
        return ToolError(exc.message)
    if isinstance(exc, RagError):  # QuestionError included: its message names the problem
        field = getattr(exc, "field", None)
        return ToolError(f"invalid {field}: {exc}" if field else str(exc))
    raise exc


# --------------------------------------------------------------------------- tools


def _model_tool(
    name: str,
    model: type[M],
    impl: Callable[[M], Awaitable[CallToolResult]],
    output: type[BaseModel],
    *,
    exclude: tuple[str, ...] = (),
) -> Callable[..., Awaitable[CallToolResult]]:
    """A tool function whose parameters are `model`'s fields (so its input schema is the
    model's), validating its arguments with `model` (validators included) before `impl`."""

    async def tool(**kwargs: Any) -> CallToolResult:
        try:
            return await impl(model(**kwargs))
        except (ValidationError, RagError, ApiError) as exc:
            raise _tool_error(exc) from None

    tool.__name__ = tool.__qualname__ = name
    params = []
    for field_name, field in model.model_fields.items():
        if field_name in exclude:
            continue
        # The constraints and description travel; the default goes on the parameter.
        info = Field(description=field.description, examples=field.examples)
        required = field.is_required()
        params.append(
            inspect.Parameter(
                field_name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if required else field.default,
                annotation=Annotated[(field.annotation, *field.metadata, info)],
            )
        )
    tool.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        params, return_annotation=Annotated[CallToolResult, output]
    )
    return tool


def _list_filter(
    docs: list[Document],
    source: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    title_contains: str | None,
) -> list[Document]:
    """The documents matching every given condition (an undated one, or one dated without its
    year, fails any date bound)."""

    def keep(d: Document) -> bool:
        if source and source.lower() not in (d.source or "").lower():
            return False
        if title_contains and title_contains.lower() not in d.title.lower():
            return False
        if not (date_from or date_to):
            return True
        day = full_date(d.date)
        if day is None:
            return False
        return not ((date_from and day < date_from) or (date_to and day > date_to))

    return [d for d in docs if keep(d)]


def build_mcp(backend: Backend) -> MCPServer:
    """The MCP server with the five tools over `backend`."""
    mcp = MCPServer("rag-articles", instructions=INSTRUCTIONS, log_level="WARNING")

    async def search_impl(req: SearchRequest) -> CallToolResult:
        result = (await (await backend()).search(req)).model()
        return _result(result, _search_text(result))

    async def ask_impl(req: AskRequest) -> CallToolResult:
        answer = (await (await backend()).ask(req.query())).model()
        return _result(answer, _answer_text(answer))

    mcp.add_tool(
        _model_tool("search_articles", SearchRequest, search_impl, SearchResult),
        description="Rank passages of the articles for a question (no answer). Each passage "
        "has its document id and exact [start, end) offsets into the document text.",
    )
    mcp.add_tool(
        _model_tool("ask", AskRequest, ask_impl, Answer, exclude=("stream",)),
        description="Answer a question from the articles: the answer with [n] markers, its "
        "citations (doc_id, title, start, end, quote == document text[start:end]) and, when "
        "there is one, a short answer. Says so when the articles don't answer it.",
    )
    mcp.add_tool(
        _model_tool("timeline", SearchRequest, _timeline_impl(backend), Timeline),
        description="Dated events for a question or a name, oldest first: each event is one "
        "sentence (doc_id, start, end, quote == document text[start:end]) dated by the day it "
        "names or its story's first publication, copies of a story folded into also_in; and "
        "the stories (title, dates, sources) the events belong to.",
    )
    mcp.add_tool(_document_tool(backend))
    mcp.add_tool(_list_tool(backend))
    return mcp


def _timeline_impl(backend: Backend) -> Callable[[SearchRequest], Awaitable[CallToolResult]]:
    async def timeline_impl(req: SearchRequest) -> CallToolResult:
        found = (await (await backend()).timeline(req)).model()
        return _result(found, timeline_text(found))

    return timeline_impl


def _document_tool(backend: Backend) -> Callable[..., Awaitable[CallToolResult]]:
    async def get_document(
        doc_id: Annotated[str, Field(description="A document id (from search, ask or list).")],
        start: Annotated[int | None, Field(ge=0, description="Span start (default 0).")] = None,
        end: Annotated[int | None, Field(ge=0, description="Span end (default: the end).")] = None,
    ) -> Annotated[CallToolResult, DocumentSpan]:
        """A document's metadata (date, date_source, and the other publications of its story:
        canonical, copies) and text, or only the span [start, end) of it (e.g. a citation's).
        Offsets are characters of the text every citation refers to."""
        try:
            snap = (await backend()).rt.ready().snapshot  # the document and its copies: one index
        except (RagError, ApiError) as exc:
            raise _tool_error(exc) from None
        doc = snap.docs.get(doc_id)
        if doc is None:
            raise ToolError(f"invalid doc_id: no document {doc_id!r} in the index")
        lo = 0 if start is None else start
        hi = len(doc.text) if end is None else end
        if hi > len(doc.text) or lo > hi:
            raise ToolError(
                f"invalid span: need 0 <= start <= end <= {len(doc.text)}, got [{lo}, {hi})"
            )
        copies = [snap.docs[c] for c in snap.copies_of(doc_id)]
        detail = DocumentDetail.of(doc, copies, snap.canonical_of(doc_id))
        info = detail.model_dump(exclude={"text"})
        span = DocumentSpan(**info, start=lo, end=hi, text=doc.text[lo:hi])
        return _result(span, _span_text(span))

    return get_document


def _list_tool(backend: Backend) -> Callable[..., Awaitable[CallToolResult]]:
    async def list_documents(
        source: Annotated[str | None, Field(description="Source contains (any case).")] = None,
        date_from: Annotated[dt.date | None, Field(description=_DATE_FROM)] = None,
        date_to: Annotated[dt.date | None, Field(description=_DATE_TO)] = None,
        title_contains: Annotated[
            str | None, Field(description="Title contains (any case).")
        ] = None,
        offset: Annotated[int, Field(ge=0, description="Documents to skip.")] = 0,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size.")] = 50,
    ) -> Annotated[CallToolResult, DocumentPage]:
        """The indexed documents (id, title, source, date, length), filtered and paged."""
        try:
            docs = (await backend()).rt.ready().documents()
        except (RagError, ApiError) as exc:
            raise _tool_error(exc) from None
        docs = _list_filter(docs, source, date_from, date_to, title_contains)
        items = [DocumentInfo.of(d) for d in docs[offset : offset + limit]]
        page = DocumentPage(total=len(docs), offset=offset, limit=limit, items=items)
        return _result(page, _page_text(page))

    return list_documents


_DATE_FROM = Filters.model_fields["date_from"].description
_DATE_TO = Filters.model_fields["date_to"].description
_TITLE = "Title contains (any case)."


# --------------------------------------------------------------------------- transports


def run_stdio(settings: Settings) -> None:
    """`rag mcp`: serve the tools over stdin/stdout until the client closes them."""
    build_mcp(LocalBackend(settings)).run("stdio")


McpLifespan = Callable[[], contextlib.AbstractAsyncContextManager[None]]


def mount_http(answering: Answering) -> tuple[list[BaseRoute], McpLifespan]:
    """The `/mcp` streamable-HTTP route for `rag serve`, and the context manager that runs its
    session manager (entered inside the app's lifespan: it can run once per app)."""
    settings = answering.rt.settings
    mcp = build_mcp(at_once(answering))
    app = mcp.streamable_http_app(streamable_http_path="/mcp", host=settings.host)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            yield

    return list(app.routes), lifespan

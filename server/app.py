"""The HTTP API: `create_app(settings)` for tests and embedding, `serve(settings)` for `rag serve`.

The model and the index are loaded once, on a worker thread after startup, so `/health` answers
at once and `/ready` says 503 until questions can be answered. Model calls never run on the event
loop: concurrent questions are embedded together (`server.batching`), and retrieval and answering
run in the thread pool. A background task swaps in newer index versions (built by this server, by
`--watch`, or by `rag index` in another process); each request keeps the snapshot it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import importlib.util
import ipaddress
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Query as QueryParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from rag import store
from rag.assistant import Assistant, StreamEvent
from rag.errors import CorpusError, IndexError_, QuestionError, RagError
from rag.models import Answer, Passage, Query, SearchResult
from rag.settings import Settings
from server import web
from server.batching import EmbeddingBatcher
from server.metrics import CONTENT_TYPE, Metrics
from server.middleware import RequestContextMiddleware, request_id_of, route_of
from server.rebuild import Rebuilder
from server.schemas import (
    SSE_EVENT_SCHEMA,
    AskRequest,
    DocumentDetail,
    DocumentInfo,
    DocumentPage,
    ErrorBody,
    Health,
    IndexStatus,
    Readiness,
    RebuildAccepted,
    RebuildRun,
    SearchRequest,
    error_body,
)
from server.watch import watch_seeds

logger = logging.getLogger("server")
T = TypeVar("T")

REFRESH_SECONDS = 0.5  # how often the live index version is checked (a file read)
MAX_EMBED_BATCH = 32
# Retrieval and extractive answering are mostly Python, so they hold the GIL: more threads than
# this only interleave requests (all finish late) instead of finishing them in turn.
CPU_WORKERS = 2


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error response with a stable `type` clients can branch on."""

    def __init__(
        self, status: int, type_: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers


_ERROR_DESCRIPTIONS = {
    401: "Missing or wrong bearer token.",
    403: "No admin token is configured and the client is not on loopback.",
    404: "No such document.",
    413: "Request body larger than max_body_bytes.",
    422: "Invalid field values, unknown fields or malformed JSON.",
    500: "Unexpected failure; details are in the server log under the request id.",
    503: "Model or index not loaded (yet), or the index is unusable.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[c]} for c in codes}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _field_reason(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "json_invalid":
        ctx = err.get("ctx") or {}
        pos = err.get("loc", ("body", "?"))[-1]
        return f"malformed JSON: {ctx.get('error', 'decode error')} (at character {pos})"
    if kind == "extra_forbidden":
        return "unknown field"
    if tuple(err.get("loc", ())) == ("body",):
        if kind == "missing":
            return "a JSON request body is required"
        if kind in ("model_attributes_type", "dict_type"):
            return "expected a JSON object (sent as Content-Type: application/json)"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        field = "body" if err.get("type") == "json_invalid" else _field_path(loc)
        fields.append({"field": field, "reason": _field_reason(dict(err))})
    first = fields[0] if fields else {"field": "body", "reason": "invalid request"}
    message = f"invalid {first['field']}: {first['reason']}"
    body = error_body("validation_error", message, fields=fields)
    return JSONResponse(body, status_code=422)


async def _question_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuestionError)
    fields = [{"field": exc.field, "reason": str(exc)}]
    return JSONResponse(
        error_body("validation_error", f"invalid {exc.field}: {exc}", fields=fields), 422
    )


def rag_error_type(exc: RagError) -> str:
    if isinstance(exc, IndexError_):
        return "index_unavailable"
    if isinstance(exc, CorpusError):
        return "corpus_error"
    return "unavailable"


async def _rag_error(request: Request, exc: Exception) -> JSONResponse:
    """Setup problems (index missing or corrupt, model missing): the service is unavailable."""
    assert isinstance(exc, RagError)
    kind = rag_error_type(exc)
    logger.warning("%s on %s: %s", kind, route_of(request.scope), exc)
    return JSONResponse(error_body(kind, str(exc)), status_code=503)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.type, exc.message), status_code=exc.status, headers=exc.headers
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the API's error shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI reports a body that is not UTF-8 as a bare 400; it is malformed JSON too.
        reason = "malformed JSON: the body is not valid UTF-8"
        fields = [{"field": "body", "reason": reason}]
        return JSONResponse(
            error_body("validation_error", f"invalid body: {reason}", fields=fields), 422
        )
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(kind, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


# ---------------------------------------------------------------------------------------------
# State shared by the routes
# ---------------------------------------------------------------------------------------------


class Runtime:
    """What the routes need: the assistant once loaded, the batcher, rebuilds and metrics."""

    def __init__(self, settings: Settings, assistant: Assistant | None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.assistant: Assistant | None = None
        self.batcher: EmbeddingBatcher | None = None
        self.rebuilder: Rebuilder | None = None
        self.load_error: str | None = None
        self.watching = False
        self.stopping = threading.Event()
        self.cpu_pool = ThreadPoolExecutor(CPU_WORKERS, thread_name_prefix="rag-answer")
        if assistant is not None:
            self._attach(assistant)

    def _attach(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.batcher = EmbeddingBatcher(
            assistant.embed,
            max_wait_ms=self.settings.batch_wait_ms,
            max_batch=MAX_EMBED_BATCH,
            on_batch=self.metrics.embed_batch.observe,
        )
        self.rebuilder = Rebuilder(self.settings, assistant, on_finished=self._rebuilt)
        self.metrics.track_index(self._counts)

    def _counts(self) -> tuple[int, int]:
        if self.assistant is None:
            return 0, 0
        data = self.assistant.snapshot.data
        return len(data.documents), len(data.chunks)

    def _rebuilt(self, run: RebuildRun) -> None:
        self.metrics.observe_rebuild(bool(run.ok), run.finished_at or time.time())

    async def compute(self, fn: Callable[..., T], *args: Any, blocking_io: bool = False) -> T:
        """Run `fn` off the event loop: CPU work on the small pool, network waits (the LLM
        answerer) on the large default one so they cannot starve extractive answers."""
        if blocking_io:
            return await run_in_threadpool(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.cpu_pool, fn, *args)

    def ready(self) -> Assistant:
        if self.assistant is not None:
            return self.assistant
        if self.load_error is not None:
            raise ApiError(503, "unavailable", f"the server could not load: {self.load_error}")
        raise ApiError(503, "unavailable", "the model and index are still loading; retry shortly")

    async def run(self) -> None:
        """Load (if needed), then keep the index fresh until cancelled at shutdown."""
        if self.assistant is None:
            try:
                assistant = await anyio.to_thread.run_sync(open_assistant, self.settings)
            except Exception as exc:
                self.load_error = public_reason(exc)
                logger.exception("could not load the model and index")
                return
            self._attach(assistant)
            logger.info("ready: index version %s", assistant.snapshot.version)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._refresh_loop)
            if self.settings.watch:
                tg.start_soon(self._watch)

    async def _refresh_loop(self) -> None:
        assert self.assistant is not None
        while True:
            await anyio.sleep(REFRESH_SECONDS)
            try:
                await anyio.to_thread.run_sync(self.assistant.refresh)
            except Exception:  # pragma: no cover - refresh() already turns index errors into logs
                logger.exception("index refresh failed")

    async def _watch(self) -> None:
        assert self.rebuilder is not None
        rebuilder = self.rebuilder
        self.watching = True
        try:
            await watch_seeds(
                self.settings.seeds_dir,
                lambda: rebuilder.request("watch"),
                debounce_ms=self.settings.debounce_ms,
                stop_event=self.stopping,
            )
        finally:
            self.watching = False


def public_reason(exc: Exception) -> str:
    """What a client may read about a failure: a RagError's message names the fix; anything
    else is internal (the traceback is in the log)."""
    if isinstance(exc, RagError):
        return str(exc)
    return f"unexpected {exc.__class__.__name__}; see the server log"


def open_assistant(settings: Settings) -> Assistant:
    """Load the model, build the index first if there is none yet, and open it."""
    from rag.embedding import Embedder
    from rag.indexing import build_index

    embedder = Embedder.load(settings)
    if store.current_version(settings.index_dir) is None and settings.seeds_dir.is_dir():
        logger.info("no index at %s: building it from %s", settings.index_dir, settings.seeds_dir)
        build_index(settings, embedder=embedder, progress=False)
    return Assistant.open(settings=settings, embedder=embedder)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
bearer = HTTPBearer(auto_error=False, description="Required when RAG_ADMIN_TOKEN is set.")


# ---------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------

router = APIRouter()

SSE_DOC = (
    "With `stream: true` (or `Accept: text/event-stream`): Server-Sent Events `passages` "
    "(`{passages: [...]}`), then `delta` (`{text}`) as the answer is written, then `done` (the "
    "full Answer). A failure after the stream began arrives as an `error` event (ErrorBody)."
)


@router.post(
    "/v1/ask",
    response_model=Answer,
    summary="Answer a question with exact citations",
    description=SSE_DOC,
    responses={
        200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}},
        **_errors(413, 422, 500, 503),
    },
    tags=["questions"],
)
async def ask(body: AskRequest, request: Request, rt: RuntimeDep) -> Any:
    assistant = rt.ready()
    assert rt.batcher is not None
    question = assistant.check_question(body.question)
    uses_llm = (body.answerer or rt.settings.answerer) == "llm"
    if uses_llm and not _llm_available():
        raise ApiError(503, "unavailable", "the llm answerer is not available in this build")
    stream = body.stream
    if stream is None:
        stream = "text/event-stream" in request.headers.get("accept", "")
    t0 = time.perf_counter()
    vector = await rt.batcher.embed(question)
    embed_ms = (time.perf_counter() - t0) * 1000
    query = body.query()
    if stream:
        return await _stream_answer(
            rt, assistant, query, vector, embed_ms, request_id_of(request.scope), uses_llm
        )
    answer = await rt.compute(
        lambda: assistant.ask(query, query_vector=vector), blocking_io=uses_llm
    )
    answer.timings = _with_embedding(answer.timings, embed_ms)
    return answer


@router.post(
    "/v1/search",
    response_model=SearchResult,
    summary="Rank passages for a question (no answer)",
    responses=_errors(413, 422, 500, 503),
    tags=["questions"],
)
async def search(body: SearchRequest, rt: RuntimeDep) -> Any:
    assistant = rt.ready()
    assert rt.batcher is not None
    question = assistant.check_question(body.question)
    mode = body.mode or rt.settings.mode
    t0 = time.perf_counter()
    vector = await rt.batcher.embed(question) if mode != "bm25" else None
    embed_ms = (time.perf_counter() - t0) * 1000
    result = await rt.compute(lambda: assistant.search(body, mode=mode, query_vector=vector))
    if vector is not None:
        result.timings = _with_embedding(result.timings, embed_ms)
    return result


def _with_embedding(timings: dict[str, float], embed_ms: float) -> dict[str, float]:
    """Report the batched embedding (queueing included) the assistant did not see."""
    out = dict(timings)
    out["total"] = round(out.get("total", 0.0) - out.get("embed", 0.0) + embed_ms, 3)
    out["embed"] = round(embed_ms, 3)
    return out


@functools.cache
def _llm_available() -> bool:
    """The optional LLM answerer is a separate module; without it, say so instead of a 500."""
    return importlib.util.find_spec("rag.llm") is not None


async def _stream_answer(
    rt: Runtime,
    assistant: Assistant,
    query: Query,
    vector: Any,
    embed_ms: float,
    request_id: str,
    uses_llm: bool,
) -> StreamingResponse:
    """SSE: the first step runs before the response starts, so early errors keep their status."""
    events: Iterator[StreamEvent] = assistant.stream_ask(query, query_vector=vector)
    first = await rt.compute(next, events)

    async def body() -> AsyncIterator[str]:
        yield _sse_event(*first, embed_ms=embed_ms)
        try:
            while (item := await rt.compute(next, events, None, blocking_io=uses_llm)) is not None:
                yield _sse_event(*item, embed_ms=embed_ms)
        except RagError as exc:
            logger.warning("stream %s failed: %s", request_id, exc)
            yield _sse("error", error_body(rag_error_type(exc), str(exc)))
        except Exception:
            logger.exception("stream failed: request_id=%s route=/v1/ask", request_id)
            yield _sse(
                "error", error_body("internal_error", "internal error", request_id=request_id)
            )

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_event(kind: str, value: Any, *, embed_ms: float) -> str:
    if kind == "passages":
        passages: list[Passage] = value
        return _sse(kind, {"passages": [p.model_dump(mode="json") for p in passages]})
    if kind == "delta":
        return _sse(kind, {"text": value})
    answer: Answer = value
    answer.timings = _with_embedding(answer.timings, embed_ms)
    return _sse(kind, answer.model_dump(mode="json"))


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# ---------------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------------


@router.get(
    "/v1/documents",
    response_model=DocumentPage,
    summary="List the indexed documents",
    responses=_errors(422, 500, 503),
    tags=["documents"],
)
async def list_documents(
    rt: RuntimeDep,
    offset: Annotated[int, QueryParam(ge=0, description="Documents to skip.")] = 0,
    limit: Annotated[int, QueryParam(ge=1, le=1000, description="Page size.")] = 50,
    q: Annotated[
        str | None, QueryParam(max_length=200, description="Words the title, id or source contain.")
    ] = None,
) -> DocumentPage:
    docs = web.matching_documents(rt.ready().documents(), q)
    items = [DocumentInfo.of(d) for d in docs[offset : offset + limit]]
    return DocumentPage(total=len(docs), offset=offset, limit=limit, items=items)


@router.get(
    "/v1/documents/{doc_id:path}",
    response_model=DocumentDetail,
    summary="One document's text and metadata (citation offsets refer to this text)",
    responses=_errors(404, 500, 503),
    tags=["documents"],
)
async def get_document(doc_id: str, rt: RuntimeDep) -> DocumentDetail:
    # Looked up in the index's table only: an id is a key here, never a path to open.
    doc = rt.ready().document(doc_id)
    if doc is None:
        raise ApiError(404, "not_found", "no document with this id in the index")
    return DocumentDetail.of(doc)


# ---------------------------------------------------------------------------------------------
# Index
# ---------------------------------------------------------------------------------------------


@router.post(
    "/v1/index/rebuild",
    status_code=202,
    response_model=RebuildAccepted,
    summary="Start an incremental rebuild from the articles folder",
    responses=_errors(401, 403, 413, 500, 503),
    tags=["index"],
)
async def rebuild(
    request: Request,
    rt: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> RebuildAccepted:
    _authorize(request, credentials, rt.settings)
    rt.ready()
    assert rt.rebuilder is not None
    return RebuildAccepted(status=rt.rebuilder.request("api"))


@router.get(
    "/v1/index/status",
    response_model=IndexStatus,
    summary="The served index version and the last rebuild's result",
    responses=_errors(500, 503),
    tags=["index"],
)
async def index_status(rt: RuntimeDep) -> IndexStatus:
    assistant = rt.ready()
    assert rt.rebuilder is not None
    running, queued, completed, last = rt.rebuilder.state()
    snap = assistant.snapshot
    return IndexStatus(
        serving_version=snap.version,
        documents=len(snap.data.documents),
        chunks=len(snap.data.chunks),
        running=running,
        queued=queued,
        watching=rt.watching,
        completed=completed,
        last=last,
        reload_error=assistant.last_reload_error,
    )


def _authorize(
    request: Request, credentials: HTTPAuthorizationCredentials | None, settings: Settings
) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if token:
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "a valid `Authorization: Bearer <token>` header is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return
    host = request.client.host if request.client else ""
    if not _is_loopback(host):
        raise ApiError(403, "forbidden", "without an admin token only loopback clients may rebuild")


def _is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------


@router.get("/health", response_model=Health, summary="The process is alive", tags=["ops"])
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Model and index loaded",
    responses={503: {"model": Readiness, "description": "Still loading, or loading failed."}},
    tags=["ops"],
)
async def ready(rt: RuntimeDep) -> Any:
    if rt.assistant is None:
        state = "failed" if rt.load_error else "loading"
        body = Readiness(status=state, error=rt.load_error, watching=rt.watching)
        return JSONResponse(body.model_dump(), status_code=503)
    snap = rt.assistant.snapshot
    return Readiness(
        status="ready",
        index_version=snap.version,
        documents=len(snap.data.documents),
        chunks=len(snap.data.chunks),
        model=rt.settings.model,
        watching=rt.watching,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    tags=["ops"],
)
async def metrics(rt: RuntimeDep) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)


# ---------------------------------------------------------------------------------------------
# App
# ---------------------------------------------------------------------------------------------


def create_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    """An app over `settings`; with `assistant` given it is ready at once (tests, embedding)."""
    runtime = Runtime(settings, assistant)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run)
            yield
            runtime.stopping.set()
            tg.cancel_scope.cancel()

    app = FastAPI(
        title="rag-articles",
        version="0.1.0",
        summary="Questions about a folder of articles, answered with exact citations.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.include_router(router)
    app.include_router(web.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(QuestionError, _question_error)
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    # Added last = outermost: request ids, size limit, metrics and 500s cover everything.
    app.add_middleware(
        RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, metrics=runtime.metrics
    )
    return app


def check_startable(settings: Settings) -> None:
    """Fail fast, before binding a port, when there is neither an index nor articles to build."""
    if store.current_version(settings.index_dir) is None and not settings.seeds_dir.is_dir():
        raise IndexError_(
            f"no index at {settings.index_dir} and no articles folder at {settings.seeds_dir}: "
            "pass --seeds DIR (it is indexed at startup) or --index DIR"
        )


def serve(settings: Settings) -> None:
    """`rag serve`: one process, model loaded once, all cores to the model."""
    import uvicorn

    check_startable(settings)
    logging.getLogger("server").setLevel(logging.INFO)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=5,
    )

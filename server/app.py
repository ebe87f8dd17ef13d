"""The HTTP API: `create_app(settings)` for tests and embedding, `serve(settings)` for `rag serve`.

This module only assembles the service: the shared state lives in `server.runtime` (loading,
index refresh, thread pools), how questions are answered in `server.answering` (one serving
path for every front door), the native error shapes in `server.errors`, the routes in
`server.routes` (one router per area, OpenAI-compatible ones included), and the MCP tools,
mounted at `/mcp` with their session manager run inside the app's lifespan, in `server.mcp`.
Middleware order: request context (ids, size limit, metrics, 500s) is outermost so it covers
everything, CORS (when configured) inside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.middleware.cors import CORSMiddleware

from rag.assistant import Assistant
from rag.errors import IndexStoreError, RagError
from rag.index import store
from rag.memory import limit_arenas
from rag.settings import Settings
from server import web
from server.answering import Answering
from server.errors import install_error_handlers
from server.mcp import mount_http
from server.middleware import RequestContextMiddleware
from server.routes import documents, index, openai, ops, questions, timeline
from server.runtime import Runtime, ensure_index

logger = logging.getLogger("server")
KEEP_ALIVE_SECONDS = 30
MALLOC_ARENAS = 2  # glibc malloc arenas for `rag serve` (MALLOC_ARENA_MAX in the env wins)


def create_app(
    settings: Settings, assistant: Assistant | None = None, *, load_first: bool = False
) -> FastAPI:
    """An app over `settings`; with `assistant` given it is ready at once (tests, embedding).

    Otherwise it loads in the background and answers /health (and 503s) meanwhile; with
    `load_first` its startup waits for the load instead, so a worker sharing a socket with
    others takes no connection before it can answer.
    """
    runtime = Runtime(settings, assistant)
    answering = Answering(runtime)
    mcp_routes, mcp_lifespan = mount_http(answering)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load_first:
            await runtime.load()
        try:
            async with mcp_lifespan(), anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                yield
                runtime.stopping.set()
                tg.cancel_scope.cancel()
        finally:
            await runtime.close()

    app = FastAPI(
        title="rag-articles",
        version="0.1.0",
        summary="Questions about a folder of articles, answered with exact citations.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's OpenTelemetry hooks look up the global providers on every request;
        # /metrics is this service's telemetry
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.answering = answering
    for module in (questions, timeline, documents, index, ops, openai, web):
        app.include_router(module.router)
    app.router.routes.extend(mcp_routes)  # POST/GET/DELETE /mcp (streamable HTTP)
    install_error_handlers(app)
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
        raise IndexStoreError(
            f"no index at {settings.index_dir} and no articles folder at {settings.seeds_dir}: "
            "pass --seeds DIR (it is indexed at startup) or --index DIR"
        )


def serve(settings: Settings) -> None:
    """`rag serve`: the model loaded once per process; `settings.workers` processes (uvicorn's
    workers, one listening socket) when one process's GIL is the limit."""
    import uvicorn

    check_startable(settings)
    # Before any worker thread exists: few malloc arenas, so memory freed by one thread is
    # reused by the next instead of staying behind in an arena of its own (see rag.memory).
    limit_arenas(MALLOC_ARENAS)
    logging.getLogger("server").setLevel(logging.INFO)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": 5,
        # uvicorn's default (5 s) closes a kept-alive connection when the loop was busy for that
        # long, racing the client's next request on it (seen as a reset in soaks on 2 cores)
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    if settings.watch:
        raise RagError(
            "--watch needs a single worker: run `rag serve --watch` with --workers 1, or rebuild "
            "with `rag index` (every worker picks up the new version)"
        )
    ensure_index(settings)  # once here, not once per worker
    os.environ[WORKER_SETTINGS] = settings_json(settings)
    uvicorn.run("server.app:worker_app", factory=True, workers=settings.workers, **options)


WORKER_SETTINGS = "RAG__WORKER_SETTINGS"  # the parent's settings, CLI flags included


def settings_json(settings: Settings) -> str:
    """`settings` as JSON with secrets in clear, for the worker processes only."""
    data = settings.model_dump(mode="json")
    for name, value in settings:
        if isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
    return json.dumps(data)


def worker_app() -> FastAPI:
    """The app of one `rag serve --workers N` process (a spawned interpreter: uvicorn's factory).

    Each worker loads the model and the live index version itself and follows `CURRENT` like
    any replica, so a rebuild (by `rag index`, or `POST /v1/index/rebuild` on whichever worker
    receives it) reaches all of them. A worker accepts connections only once loaded
    (`load_first`), so none gets a 503 while a sibling could answer. Per process, not shared:
    `/metrics` and the rebuild status describe the worker that answered.
    """
    limit_arenas(MALLOC_ARENAS)
    logging.getLogger("server").setLevel(logging.INFO)
    # read once and dropped, so the processes this worker starts (rebuilds) don't inherit it
    settings = Settings.model_validate(json.loads(os.environ.pop(WORKER_SETTINGS)))
    return create_app(settings, load_first=True)

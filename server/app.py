"""The HTTP API: `create_app(settings)` for tests and embedding, `serve(settings)` for `rag serve`.

This module only assembles the service: the shared state lives in `server.runtime` (loading,
index refresh, thread pools), the native error shapes in `server.errors`, the routes in
`server.routes` (one router per area, OpenAI-compatible ones included), and the MCP tools,
mounted at `/mcp` with their session manager run inside the app's lifespan, in `server.mcp`.
Middleware order: request context (ids, size limit, metrics, 500s) is outermost so it covers
everything, CORS (when configured) inside it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from rag import store
from rag.assistant import Assistant
from rag.errors import IndexStoreError
from rag.memory import limit_arenas
from rag.settings import Settings
from server import web
from server.errors import install_error_handlers
from server.mcp import mount_http
from server.middleware import RequestContextMiddleware
from server.routes import documents, index, openai, ops, questions
from server.runtime import Runtime

logger = logging.getLogger("server")
KEEP_ALIVE_SECONDS = 30
MALLOC_ARENAS = 2  # glibc malloc arenas for `rag serve` (MALLOC_ARENA_MAX in the env wins)


def create_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    """An app over `settings`; with `assistant` given it is ready at once (tests, embedding)."""
    runtime = Runtime(settings, assistant)
    mcp_routes, mcp_lifespan = mount_http(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp_lifespan(), anyio.create_task_group() as tg:
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
    for module in (questions, documents, index, ops, openai, web):
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
    """`rag serve`: one process, model loaded once, all cores to the model."""
    import uvicorn

    check_startable(settings)
    # Before any worker thread exists: few malloc arenas, so memory freed by one thread is
    # reused by the next instead of staying behind in an arena of its own (see rag.memory).
    limit_arenas(MALLOC_ARENAS)
    logging.getLogger("server").setLevel(logging.INFO)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
        timeout_graceful_shutdown=5,
        # uvicorn's default (5 s) closes a kept-alive connection when the loop was busy for that
        # long, racing the client's next request on it (seen as a reset in soaks on 2 cores)
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )

"""The state the routes share: the assistant once loaded, the embedding batcher, rebuilds, metrics.

The model and the index are loaded once, on a worker thread after startup, so `/health` answers
at once and `/ready` says 503 until questions can be answered (`Runtime.ready()` raises that 503
for every other route). Model calls never run on the event loop: retrieval and answering run in
a small CPU pool (`Runtime.compute`), and so does the embedding of a question when the engine
embeds one text per call (`onnx-int8`, the default); other engines embed concurrent questions
together (`server.batching`, `Runtime.embed`). The answer processes (`server.answer_pool`, the
default on a multi-core machine) are started and stopped here. Which of these answers a
question is decided in one place, `server.answering`, for every front door. A background task
swaps in newer index versions (built by this server, by `--watch`, or by `rag index` in another
process); each request keeps the snapshot it started with.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from rag.assistant import Assistant
from rag.memory import CacheStat, cache_stats, freeze_heap, thaw_heap, trim_native_heap
from rag.settings import Settings
from server.answer_pool import AnswerPool, pool_size
from server.batching import EmbeddingBatcher
from server.errors import ApiError, public_reason
from server.metrics import Metrics
from server.rebuild import Rebuilder, ensure_index, open_assistant
from server.schemas import RebuildRun
from server.watch import watch_seeds

logger = logging.getLogger("server")
T = TypeVar("T")

REFRESH_SECONDS = 0.5  # how often the live index version is checked (a file read)
TRIM_SECONDS = 60.0  # how often free native memory is handed back to the OS (malloc_trim)
REFREEZE_SECONDS = 10.0  # after a swap, when the old version is surely gone: freeze the heap again
MAX_EMBED_BATCH = 32
# Retrieval and extractive answering are mostly Python, so they hold the GIL: more threads than
# this only interleave requests (all finish late) instead of finishing them in turn.
CPU_WORKERS = 2
POOL_START_SECONDS = 300.0  # how long startup waits for the answer processes to load


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
        self.pool: AnswerPool | None = None  # answer processes (`settings.answer_processes`)
        # the index version when this runtime froze the heap (`rag.memory.freeze_heap`), if it did
        self.frozen: str | None = None
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
        self.metrics.track_caches(self.cache_stats)

    def cache_stats(self) -> dict[str, CacheStat]:
        """Every cache of the process with its size and bound, and the index versions and
        rebuilds held. (The embedding queue holds only questions being embedded: `waiting`.)"""
        snapshot = self.assistant.snapshot if self.assistant is not None else None
        stats = cache_stats(snapshot, self.settings.index_dir)
        if self.rebuilder is not None:
            running, queued, _, _ = self.rebuilder.state()
            stats["rebuilds.pending"] = CacheStat(int(running) + int(queued), 2)
        return stats

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

    @property
    def batches_questions(self) -> bool:
        """Whether concurrent questions are embedded together in one model call.

        Not for an engine that embeds one text per call (`Embedder.per_text`: `onnx-int8`):
        a batch would be split again, and measured on 2 cores its cost per question is the same
        at batch 1 and 32 anyway. Its questions are embedded on the CPU pool instead, where
        two run at once (ONNX Runtime releases the GIL), rather than queued behind one call.
        """
        return self.assistant is not None and not self.assistant.embedder.per_text

    async def embed(self, question: str) -> Any:
        """The question's vector, batched with concurrent questions where that helps
        (`batches_questions`); and the milliseconds taken (queueing included) as
        `(vector, embed_ms)`."""
        assert self.batcher is not None and self.assistant is not None
        t0 = time.perf_counter()
        if self.batches_questions:
            vector = await self.batcher.embed(question)
        else:
            vector = (await self.compute(self.assistant.embed, [question]))[0]
        return vector, (time.perf_counter() - t0) * 1000

    def ready(self) -> Assistant:
        if self.assistant is not None:
            return self.assistant
        if self.load_error is not None:
            raise ApiError(503, "unavailable", f"the server could not load: {self.load_error}")
        raise ApiError(503, "unavailable", "the model and index are still loading; retry shortly")

    async def load(self) -> bool:
        """Load the model and index unless given, and start the answer processes (not with a
        given assistant); False (and `load_error` set) if loading failed."""
        if self.assistant is None:
            try:
                await anyio.to_thread.run_sync(ensure_index, self.settings)
                size = pool_size(self.settings)
                if size:  # they load while this process does
                    self.pool = AnswerPool(self.settings, size)
                    self.pool.start()
                assistant = await anyio.to_thread.run_sync(open_assistant, self.settings)
                if self.pool is not None:
                    await self.pool.wait_ready(POOL_START_SECONDS)
            except Exception as exc:
                self.load_error = public_reason(exc)
                logger.exception("could not load the model and index")
                await self.close()
                return False
            self._attach(assistant)
            freeze_heap()  # the model and index: no more full collections walking them
            self.frozen = assistant.snapshot.version
            logger.info(
                "ready: index version %s, %d answer processes",
                assistant.snapshot.version,
                self.pool.live if self.pool is not None else 0,
            )
        return True

    async def close(self) -> None:
        """Stop the answer processes and unfreeze the heap (at shutdown)."""
        if self.frozen is not None:
            thaw_heap()
            self.frozen = None
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.close()
            await anyio.to_thread.run_sync(pool.join)

    async def run(self) -> None:
        """Load (if needed), then keep the index fresh until cancelled at shutdown."""
        if not await self.load():
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._refresh_loop)
            if self.settings.watch:
                tg.start_soon(self._watch)

    async def _refresh_loop(self) -> None:
        """Swap in new index versions; now and then return freed native memory to the OS (a
        swap frees the old version only when its last request ends, and glibc keeps freed
        pages of its per-thread arenas until asked). After a swap the heap is thawed, and
        frozen again `REFREEZE_SECONDS` later, when the old version's requests have ended."""
        assert self.assistant is not None
        next_trim = time.monotonic() + TRIM_SECONDS
        refreeze_at: float | None = None
        while True:
            await anyio.sleep(REFRESH_SECONDS)
            try:
                await anyio.to_thread.run_sync(self.assistant.refresh)
                version = self.assistant.snapshot.version
                if self.frozen is not None and version != self.frozen:  # here or by a rebuild
                    thaw_heap()  # the old version must be collectable once its requests end
                    self.frozen = version
                    refreeze_at = time.monotonic() + REFREEZE_SECONDS
                if refreeze_at is not None and time.monotonic() >= refreeze_at:
                    refreeze_at = None
                    freeze_heap()
                if time.monotonic() >= next_trim:
                    next_trim = time.monotonic() + TRIM_SECONDS
                    await anyio.to_thread.run_sync(trim_native_heap)
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


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency on a worker thread, one hop per request
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

"""Micro-batching of query embeddings: concurrent questions share one model call.

One forward pass over 16 short questions costs little more than a pass over one, and the model
is serialised anyway (torch modules are not re-entrant), so under load embedding questions one
at a time would make them queue behind each other. The batcher collects the texts that arrive
within `max_wait` of the oldest waiting one (or until `max_batch` are waiting), embeds them in
one call on a worker thread, and hands each caller its row. While a batch is being embedded,
new questions gather for the next one, so a busy server batches more and waits less.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
import numpy as np

logger = logging.getLogger(__name__)

EmbedFn = Callable[[list[str]], np.ndarray]


@dataclass(slots=True)
class _Waiting:
    text: str
    future: asyncio.Future[np.ndarray]
    since: float = field(default_factory=time.monotonic)


class EmbeddingBatcher:
    def __init__(
        self,
        embed: EmbedFn,
        *,
        max_wait_ms: float = 2.0,
        max_batch: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._embed = embed
        self.max_wait = max_wait_ms / 1000
        self.max_batch = max_batch
        self._on_batch = on_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[_Waiting] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Questions queued for the next batch (0 whenever no request is being embedded)."""
        return len(self._queue)

    async def embed(self, text: str) -> np.ndarray:
        """The normalised query vector of `text`, computed together with concurrent callers."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Futures and events belong to one loop; an app driven from a new loop (a test
            # client per call, say) starts afresh rather than awaiting a dead loop's objects.
            self._loop, self._queue, self._arrived, self._worker = loop, [], asyncio.Event(), None
        item = _Waiting(text, loop.create_future())
        self._queue.append(item)
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run())
        return await item.future

    async def _run(self) -> None:
        """Drain the queue batch by batch; exits when idle (the next caller restarts it)."""
        while self._queue:
            deadline = self._queue[0].since + self.max_wait
            while len(self._queue) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            batch = [w for w in self._queue[: self.max_batch] if not w.future.done()]
            del self._queue[: self.max_batch]
            if batch:
                await self._embed_batch(batch)

    async def _embed_batch(self, batch: list[_Waiting]) -> None:
        try:
            vectors = await anyio.to_thread.run_sync(self._embed, [w.text for w in batch])
        except Exception as exc:  # every caller of this batch gets the error, the worker lives on
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch))
        for w, vec in zip(batch, vectors, strict=True):
            if not w.future.done():  # a caller that went away (cancelled) is skipped
                w.future.set_result(vec)

"""Incremental index rebuilds inside the server, one at a time, on a background thread.

A rebuild reuses the model the server already holds (loading a second copy would double memory
and take seconds), writes a new index version with `build_index` (which takes the cross-process
build lock, so it also coexists with `rag index` run by hand), then swaps the new version in.
A request arriving while a rebuild runs queues exactly one follow-up, so changes made during a
build are never lost and bursts don't pile up builds. A failure is recorded and logged; the
version already loaded keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from rag.assistant import Assistant
from rag.errors import RagError
from rag.indexing import build_index
from rag.models import BuildReport
from rag.settings import Settings
from server.schemas import RebuildRun

logger = logging.getLogger(__name__)

Trigger = Literal["api", "watch"]


class Rebuilder:
    def __init__(
        self,
        settings: Settings,
        assistant: Assistant,
        on_finished: Callable[[RebuildRun], None] | None = None,
    ) -> None:
        self.settings = settings
        self.assistant = assistant
        self._on_finished = on_finished
        self._lock = threading.Lock()
        self._running = False
        self._queued: Trigger | None = None
        self._last: RebuildRun | None = None
        self.completed = 0

    def request(self, trigger: Trigger) -> Literal["started", "queued"]:
        """Start a rebuild now, or queue one to follow the rebuild in progress."""
        with self._lock:
            if self._running:
                self._queued = trigger
                return "queued"
            self._running = True
        threading.Thread(
            target=self._loop, args=(trigger,), name="rag-rebuild", daemon=True
        ).start()
        return "started"

    def state(self) -> tuple[bool, bool, int, RebuildRun | None]:
        """(running, queued, completed, last run) read consistently."""
        with self._lock:
            return self._running, self._queued is not None, self.completed, self._last

    def _loop(self, trigger: Trigger) -> None:
        while True:
            self._run_once(trigger)
            with self._lock:
                if self._queued is None:
                    self._running = False
                    return
                trigger, self._queued = self._queued, None

    def _run_once(self, trigger: Trigger) -> None:
        started = RebuildRun(trigger=trigger, started_at=time.time())
        with self._lock:
            self._last = started
        report: BuildReport | None = None
        error: str | None = None
        try:
            report = build_index(self.settings, embedder=self.assistant.embedder, progress=False)
            self.assistant.refresh()
            why = self.assistant.last_reload_error
            if why is not None and self.assistant.snapshot.version != report.version:
                raise RagError(f"built version {report.version} but could not load it: {why}")
            logger.info(
                "rebuild (%s) done: %s, %d added, %d changed, %d removed -> %s",
                trigger,
                report.reason,
                len(report.added),
                len(report.changed),
                len(report.removed),
                report.version,
            )
        except Exception as exc:  # a failed rebuild must never take the serving index down
            error = str(exc) if isinstance(exc, RagError) else f"unexpected {type(exc).__name__}"
            logger.exception("rebuild (%s) failed; the previous index keeps serving", trigger)
        run = started.model_copy(
            update={
                "finished_at": time.time(),
                "ok": error is None,
                "report": report,
                "error": error,
            }
        )
        with self._lock:
            self._last = run
            self.completed += 1
        if self._on_finished is not None:
            try:
                self._on_finished(run)
            except Exception:  # pragma: no cover - metrics must not break rebuilds
                logger.exception("rebuild callback failed")

"""Incremental index rebuilds for the server, one at a time, each in a child process.

A rebuild runs `build_index` in a fresh (spawned) process, which writes a new index version
(taking the cross-process build lock, so it also coexists with `rag index` run by hand); the
server then swaps the new version in. The child costs a second or two to start and load the
model, but everything a build allocates (the previous version's tables, the writer's buffers,
the engine's scratch memory, the build code itself) dies with it: built in-process, the first
rebuild left ≈ 50 MiB in the server's malloc arenas for good (`bench/soak.py`; see
docs/performance.md). A child killed by the OOM killer or a signal is a failed rebuild, not a
dead server. (With a
Milvus Lite file, which one process at a time may open, the build runs in the server's own
rebuild thread with the model it holds.)
A request arriving while a rebuild runs queues exactly one follow-up, so changes made during a
build are never lost and bursts don't pile up builds. A failure is recorded and logged; the
version already loaded keeps serving.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from rag.assistant import Assistant
from rag.errors import RagError
from rag.index import store
from rag.models import BuildReport
from rag.settings import Settings
from server.messages import Built, Failure, decode, encode
from server.schemas import RebuildRun, RebuildStart, Trigger

if TYPE_CHECKING:
    from rag.embedding import Embedder

logger = logging.getLogger(__name__)


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

    def request(self, trigger: Trigger) -> RebuildStart:
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
            report = build_for_server(self.settings, self.assistant.embedder)
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


def milvus_lite(settings: Settings) -> bool:
    """Whether the dense index is a Milvus Lite file, which only this process may open."""
    if settings.store != "milvus":
        return False
    from rag.engines.milvus_client import is_lite

    return is_lite(settings.milvus_uri)


def build_for_server(settings: Settings, embedder: Embedder | None = None) -> BuildReport:
    """`build_index(settings)` for a running server: in a child process, or here (with
    `embedder`, if given) when the dense index is a Milvus Lite file, which one process at a
    time may open."""
    if not milvus_lite(settings):
        return build_in_child(settings)
    from rag.index.indexing import build_index

    return build_index(settings, embedder=embedder, progress=False)


def ensure_index(settings: Settings) -> None:
    """Build the index first if there is none yet, as rebuilds are built (`build_for_server`:
    a child process with `settings.threads`, so the build's memory and model leave with it)."""
    if store.current_version(settings.index_dir) is None and settings.seeds_dir.is_dir():
        logger.info("no index at %s: building it from %s", settings.index_dir, settings.seeds_dir)
        build_for_server(settings)


def open_assistant(settings: Settings) -> Assistant:
    """Build the index if missing (`ensure_index`), then load the model for questions with
    `settings.query_threads`, open the index and load the reader model (`RAG_READER=model`)."""
    from rag.embedding import Embedder

    ensure_index(settings)
    serving = settings.with_overrides(threads=settings.query_threads)
    assistant = Assistant.open(settings=serving, embedder=Embedder.load(serving))
    if serving.reader == "model":
        assistant.reader()  # loaded now: a missing or altered model fails the start, once
    return assistant


def build_in_child(settings: Settings) -> BuildReport:
    """`build_index(settings)` in a spawned process; its report, or a RagError saying why not.
    The child answers with one message of `server.messages`: `Built` or `Failure`."""
    ctx = multiprocessing.get_context("spawn")  # no fork: the server's threads and locks stay
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_build, args=(settings, send), name="rag-rebuild")
    proc.start()
    send.close()
    try:
        reply = decode(receive.recv_bytes())
    except EOFError:  # the child died without answering
        proc.join()
        raise RagError(
            f"the build process ended without a result (exit code {proc.exitcode}); "
            "no new index version was switched in"
        ) from None
    finally:
        receive.close()
    proc.join()
    if isinstance(reply, Built):
        return reply.report
    if isinstance(reply, Failure):
        raise reply.error()
    raise RagError(f"the build process answered {type(reply).__name__}, not a report")


def _child_build(settings: Settings, send: Connection) -> None:
    from rag.index.indexing import build_index

    logging.basicConfig(level=logging.WARNING, format="rag-rebuild: %(levelname)s %(message)s")
    reply: Built | Failure
    try:
        reply = Built(build_index(settings, progress=False))
    except RagError as exc:
        reply = Failure.of(exc)
    except Exception as exc:
        logging.getLogger(__name__).exception("rebuild failed")
        reply = Failure("RagError", f"unexpected {type(exc).__name__}")
    send.send_bytes(encode(reply))
    send.close()

"""Answer processes: extractive answers (`/v1/ask`, `/v1/chat/completions`, MCP), searches and
timelines computed in worker processes, first come, first served.

In one process the Python half of every question (retrieval, sentence scoring, the short answer:
about 1 ms of the 4 a question costs) holds the GIL, so two cores never both run it; under load
the questions then take turns at the GIL in no particular order, and a few wait several turns.
Each answer process has its own model, index snapshot and GIL and answers one question at a
time; the HTTP process parses, dispatches and sends. Measured with `bench/load.py` on 2 cores:
see docs/performance.md (HTTP load).

Invariants:
- First come, first served: questions are sent in the order they arrived, each to the worker
  with the fewest unanswered (at most `WINDOW`), so none waits behind one that came later
  (`AnswerPool._pump`). (With an `asyncio.Queue` of idle workers a newcomer can take a worker
  freed for a waiter, which sends that waiter to the back of the line: measured p99 ≈ 2× the
  median.)
- Same index version: every question carries the version the HTTP process serves, and a worker
  that has not switched to it yet does so before answering; an idle worker also follows `CURRENT`
  on its own, so a rebuild reaches every process.
- Nothing fails for a worker's sake: a question whose worker dies is answered in the HTTP process
  (`call` returns None: answering only reads, so a retry is safe) and a new worker is started;
  while no worker is up, questions are answered in the HTTP process.
- Errors keep their kind: a RagError raised in a worker is raised again here with its class and
  message (so the same HTTP status); any other failure is logged by the worker and raised here as
  `AnswerProcessError` (a 500 without internals).

The messages on each worker's pipe are those of `server.messages` (typed, one encoding shared
with the rebuild child): questions in, `Result` / `Failure` / `Crash` back, and `Ready` or
`LoadFailed` at start-up. Which questions come here is decided by `server.answering`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from rag.errors import RagError
from rag.settings import Settings
from server.messages import (
    AskMessage,
    Crash,
    Failure,
    LoadFailed,
    Question,
    Ready,
    Result,
    SearchMessage,
    TimelineMessage,
    decode,
    encode,
)

logger = logging.getLogger("server")

MAX_AUTO = 4  # answer processes that "auto" starts at most (each holds the model and the index)
# Above this many chunks "auto" starts none: each process would hold its own copy of the index's
# tables and BM25 (≈ 850 MiB private at 1M chunks, see docs/performance.md, a million chunks).
AUTO_MAX_CHUNKS = 250_000
# Questions sent to a worker ahead of its answers. With 2 the next question already waits in its
# pipe when it finishes one; with 1 it idled until the HTTP process got a core to send another
# (21 % of the time under load on 2 cores, sampled with py-spy).
WINDOW = 2
IDLE_REFRESH_SECONDS = 0.5  # an idle worker checks for a new index version this often
TRIM_SECONDS = 60.0  # and hands freed native memory back to the OS this often


class AnswerProcessError(Exception):
    """A worker failed in a way that is not the user's doing (it logged the details)."""


def pool_size(settings: Settings) -> int:
    """How many answer processes `rag serve` starts (`settings.answer_processes`).

    `auto`: one per core this process may use, up to `MAX_AUTO`, for the default engine
    (`onnx-int8`, which embeds one question per call; other engines batch concurrent questions in
    the HTTP process instead), and none with a single core, with `--workers` above 1 (those
    processes are the parallelism), with a live index above `AUTO_MAX_CHUNKS` (memory), or with
    a Milvus Lite index (a file that one process at a time may open).
    """
    from server.rebuild import milvus_lite

    wanted = settings.answer_processes
    if milvus_lite(settings):
        if wanted not in ("auto", 0):
            logger.warning("answer processes are off: a Milvus Lite index opens in one process")
        return 0
    if wanted != "auto":
        return int(wanted)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if settings.workers > 1 or settings.embed_backend != "onnx-int8" or cores < 2:
        return 0
    if _live_chunks(settings) > AUTO_MAX_CHUNKS:
        logger.info("no answer processes: the index is large (set RAG_ANSWER_PROCESSES to force)")
        return 0
    return min(cores, MAX_AUTO)


def _live_chunks(settings: Settings) -> int:
    """Chunks in the live index version, from its manifest (0 when there is none yet)."""
    from rag.index import store
    from rag.index.manifest import read_manifest

    if store.current_version(settings.index_dir) is None:
        return 0
    _, path = store.version_path(settings.index_dir)
    return read_manifest(path).n_chunks


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    # one per question sent and not yet answered, in the order sent (a worker answers in order)
    replies: collections.deque[asyncio.Future[bytes | None]] = field(
        default_factory=collections.deque
    )


class AnswerPool:
    """`size` answer processes over `settings`' index; `call` hands each question to one."""

    def __init__(self, settings: Settings, size: int) -> None:
        self.settings = settings
        self.size = size
        self.restarts = 0  # workers started again after dying
        self.answered = 0  # questions answered by a worker (not handed back to the HTTP process)
        self._ctx = multiprocessing.get_context("spawn")  # no fork: the server has threads
        self._workers: list[_Worker] = []
        # questions not sent yet, first come first served: (message, its reply)
        self._pending: collections.deque[tuple[bytes, asyncio.Future[bytes | None]]] = (
            collections.deque()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._settled = asyncio.Event()
        self._stopped: list[BaseProcess] = []  # exited or exiting, not yet joined

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the processes (they load in the background); call on the event loop."""
        self._loop = asyncio.get_running_loop()
        for _ in range(self.size):
            self._spawn()

    async def wait_ready(self, timeout: float) -> int:
        """Wait until every process has loaded or failed (at most `timeout` s); how many are up."""
        deadline = time.monotonic() + timeout
        while any(not w.ready for w in self._workers) and time.monotonic() < deadline:
            self._settled.clear()
            try:
                await asyncio.wait_for(self._settled.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        if self.live < self.size:
            logger.warning("%d of %d answer processes are up", self.live, self.size)
        return self.live

    @property
    def live(self) -> int:
        return sum(w.ready for w in self._workers)

    def close(self) -> None:
        """Stop taking questions and close every pipe, so each process exits after its current
        question (call on the event loop, then `join` off it)."""
        self._closing = True
        for w in list(self._workers):
            self._drop(w)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the closed processes to exit; kill those that don't within `timeout`."""
        for process in self._stopped:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join()
        self._stopped = []

    def _spawn(self) -> None:
        assert self._loop is not None
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_serve, args=(self.settings, theirs), name="rag-answer", daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self._workers.append(worker)
        self._loop.add_reader(ours.fileno(), self._on_readable, worker)

    def _drop(self, worker: _Worker) -> None:
        """Forget a worker; its questions (and, with no worker left, every waiting one) get None:
        they are answered in-process instead."""
        if worker in self._workers:
            self._workers.remove(worker)
            assert self._loop is not None
            self._loop.remove_reader(worker.conn.fileno())
            worker.conn.close()
            self._stopped = [p for p in self._stopped if p.is_alive()]  # reaps the exited
            self._stopped.append(worker.process)
        unanswered = list(worker.replies)
        worker.replies.clear()
        if not self.live or self._closing:
            unanswered += [reply for _, reply in self._pending]
            self._pending.clear()
        for reply in unanswered:
            if not reply.done():
                reply.set_result(None)
        self._settled.set()

    def _lost(self, worker: _Worker) -> None:
        """A worker's pipe closed: it died (or failed to load). Replace it if it had been up."""
        was_ready = worker.ready
        self._drop(worker)
        if self._closing:
            return
        worker.process.join(1.0)  # it closed its pipe on the way out: the exit code, if it has one
        code = worker.process.exitcode
        if not was_ready:
            logger.error("an answer process could not start (exit code %s)", code)
            return
        logger.error("an answer process died (exit code %s); starting a new one", code)
        self.restarts += 1
        self._spawn()

    # ------------------------------------------------------------------ dispatch

    async def call(self, question: Question) -> bytes | None:
        """The JSON result of `question` (its query already checked), from the first free
        worker; None when no worker could answer (answer in-process)."""
        if not self.live:
            return None
        assert self._loop is not None
        reply: asyncio.Future[bytes | None] = self._loop.create_future()
        self._pending.append((encode(question), reply))
        self._pump()
        data = await reply  # cancelled with the request: then skipped, or its answer dropped
        return None if data is None else result_of(data)

    def _pump(self) -> None:
        """Send waiting questions, oldest first, to the workers with room for one more."""
        while self._pending:
            worker = min(
                (w for w in self._workers if w.ready), key=lambda w: len(w.replies), default=None
            )
            if worker is None or len(worker.replies) >= WINDOW:
                return
            message, reply = self._pending.popleft()
            if reply.done():  # its request was cancelled while it waited
                continue
            try:
                worker.conn.send_bytes(message)
            except OSError:
                self._pending.appendleft((message, reply))
                self._lost(worker)
                continue
            worker.replies.append(reply)

    def _on_readable(self, worker: _Worker) -> None:
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            self._lost(worker)
            return
        if not worker.ready:  # the start-up handshake
            hello = decode(data)
            if isinstance(hello, Ready):
                worker.ready = True
                self._settled.set()
            else:
                logger.error("an answer process failed to load: %s", hello)
        elif worker.replies:
            reply = worker.replies.popleft()
            self.answered += 1
            if not reply.done():
                reply.set_result(data)
        self._pump()


def result_of(frame: bytes) -> bytes:
    """A worker's reply: the JSON result, or the error it stands for raised."""
    reply = decode(frame)
    if isinstance(reply, Result):
        return reply.body
    if isinstance(reply, Failure):
        raise reply.error()
    raise AnswerProcessError("an answer process failed (see its log)")


# ---------------------------------------------------------------------------- the worker


def _serve(settings: Settings, conn: Connection) -> None:
    """An answer process: load, say so, then answer questions until the pipe closes."""
    from rag.memory import freeze_heap, limit_arenas, thaw_heap, trim_native_heap
    from server.rebuild import open_assistant

    # Ctrl-C (or a TERM sent to the whole process group) is for the server: it stops, closes the
    # pipe, and this process exits after its question; it is not replaced as if it had died
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    limit_arenas(2)
    logging.basicConfig(
        level=logging.WARNING, format="rag-answer[%(process)d]: %(levelname)s %(message)s"
    )
    try:
        assistant = open_assistant(settings)
    except Exception as exc:
        logging.getLogger(__name__).exception("could not load the model and index")
        reason = str(exc) if isinstance(exc, RagError) else type(exc).__name__
        conn.send_bytes(encode(LoadFailed(reason)))
        return
    freeze_heap()
    frozen = assistant.snapshot.version
    conn.send_bytes(encode(Ready()))
    next_trim = time.monotonic() + TRIM_SECONDS
    while True:
        try:
            if conn.poll(IDLE_REFRESH_SECONDS):
                conn.send_bytes(_answer(assistant, conn.recv_bytes()))
            else:
                assistant.refresh()
        except (EOFError, OSError):  # the server is gone (or stopping)
            return
        if assistant.snapshot.version != frozen:  # swapped: no question holds the old one now
            thaw_heap()
            freeze_heap()
            frozen = assistant.snapshot.version
        if time.monotonic() >= next_trim:
            next_trim = time.monotonic() + TRIM_SECONDS
            trim_native_heap()


def _answer(assistant: Any, frame: bytes) -> bytes:
    """One question: switch to the version it expects if needed, answer, encode the reply."""
    try:
        question = decode(frame)
        if not isinstance(question, Question):
            raise TypeError(f"not a question: {question!r}")
        if question.version != assistant.snapshot.version:
            assistant.refresh()
        match question:
            case AskMessage(_, query, embed):  # `embed`: a chat follow-up's turns, retrieved with
                vector = None if embed is None else assistant.embed([embed])[0]
                result = assistant.ask(query, query_vector=vector)
            case SearchMessage(_, query):
                result = assistant.search(query)
            case TimelineMessage(_, query):
                result = assistant.timeline(query)
        return encode(Result(result.model_dump_json().encode()))
    except RagError as exc:
        return encode(Failure.of(exc))
    except Exception:
        logging.getLogger(__name__).exception("answering failed")
        return encode(Crash())

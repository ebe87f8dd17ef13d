"""The one API the CLI, the HTTP service and the eval runner share.

    assistant = Assistant.open("index")
    answer = assistant.ask("Who chairs the Arab Parliament?")

The model is loaded once per process. The index is held as an immutable snapshot; `refresh()`
loads a newer version (built by this or another process) and swaps it in atomically, while
calls already running finish on the snapshot they started with.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from rag.answer import question_steps as steps
from rag.answer.question_steps import ms
from rag.embedding import Embedder
from rag.errors import IndexStoreError, QuestionError
from rag.events import DeltaEvent, DoneEvent, PassagesEvent, StreamEvent
from rag.index import store
from rag.memory import release_memory
from rag.models import (
    Answer,
    AnswerDraft,
    Document,
    Passage,
    Query,
    SearchQuery,
    SearchResult,
)
from rag.retrieve.retrieval import Snapshot
from rag.settings import Settings, load_settings
from rag.temporal.time_answer import answer_in_time
from rag.temporal.time_scope import InScope

if TYPE_CHECKING:
    from rag.llm import LlmClient
    from rag.reader.runtime import Reader
    from rag.temporal.timeline import Timeline

logger = logging.getLogger(__name__)
Q = TypeVar("Q", bound=SearchQuery)


class Assistant:
    """Questions over one index: search, ask and stream answers with exact citations.

    Thread-safe: the HTTP service calls one instance from many threads. Build it with
    `Assistant.open`; `refresh()` picks up a newer index version without a restart.

    Example:
        >>> assistant = Assistant.open("index")
        >>> answer = assistant.ask("Who chairs the Arab Parliament?")
        >>> print(answer.answer)
        >>> for c in answer.citations:
        ...     print(c.n, c.doc_id, c.start, c.end, c.quote)
    """

    def __init__(self, settings: Settings, snapshot: Snapshot, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._snapshot = snapshot
        self._reload = threading.Lock()
        self.last_reload_error: str | None = None
        self._llm: LlmClient | None = None  # built on first LLM answer (see llm_client)
        self._llm_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> Assistant:
        """Load the live index version and the embedding model (once per process).

        Args:
            index_dir: the index folder (default: `settings.index_dir`, i.e. `RAG_INDEX_DIR`
                or `index`).
            settings: all other settings (default: from `RAG_*` environment variables).
            embedder: an already loaded model to share (tests, benchmarks); ignored when the
                index was embedded with another backend (questions always use the index's).

        Returns:
            An `Assistant` serving the live version.

        Raises:
            IndexStoreError: there is no index, it is corrupt, or it was built with another
                embedding model (each message names the fix, e.g. `rag index --rebuild`).
            RagError: the embedding model cannot be loaded.
        """
        settings = settings or load_settings()
        if index_dir is not None:
            settings = settings.with_overrides(index_dir=Path(index_dir))
        snapshot = Snapshot.load(settings.index_dir)
        built_with = snapshot.manifest.model
        if built_with != settings.model:
            raise IndexStoreError(
                f"index at {settings.index_dir} was built with model {built_with!r}, "
                f"but the model setting is {settings.model!r}: run `rag index --rebuild`"
            )
        return cls(settings, snapshot, _embedder_for(snapshot, settings, embedder))

    # ------------------------------------------------------------------ index versions

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> bool:
        """Swap in the live index version if it changed; True when a new one was loaded."""
        with self._reload:
            live = store.current_version(self.settings.index_dir)
            if live is None or live == self._snapshot.version:
                return False
            try:
                snapshot = Snapshot.load(self.settings.index_dir)
            except IndexStoreError as exc:
                self.last_reload_error = str(exc)
                logger.error("could not load index version %s: %s", live, exc)
                return False
            self.embedder = _embedder_for(snapshot, self.settings, self.embedder)
            previous, self._snapshot = self._snapshot, snapshot
            self.last_reload_error = None
            logger.info("now serving index version %s", snapshot.version)
        # The previous version is freed when the last request using it ends (nothing else
        # holds it); return what it leaves behind now if none is running.
        del previous
        release_memory()
        return True

    # ------------------------------------------------------------------ documents

    def documents(self) -> list[Document]:
        return self._snapshot.data.documents

    def document(self, doc_id: str) -> Document | None:
        return self._snapshot.docs.get(doc_id)

    # ------------------------------------------------------------------ questions

    def check_question(self, question: str) -> str:
        """The question trimmed; QuestionError when it is empty or longer than the limit."""
        text = question.strip() if isinstance(question, str) else ""
        if not text:
            raise QuestionError("question is empty")
        if len(text) > self.settings.max_question_chars:
            raise QuestionError(
                f"question is {len(text)} characters; the limit is "
                f"{self.settings.max_question_chars}"
            )
        return text

    def check(self, query: Q) -> Q:
        """`query` with its question trimmed and checked against the limit, once: a checked
        query (`SearchQuery.checked`) is returned as it is and not checked again on its way
        through `search`, `ask`, `stream_ask` or `timeline`. QuestionError like
        `check_question`. (A query already trimmed is marked checked itself, not copied.)"""
        if query.checked:
            return query
        question = self.check_question(query.question)
        if question != query.question:
            query = query.model_copy(update={"question": question})
        return query.mark_checked()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised float32 query vectors, one row per text (the model's own forward pass)."""
        return self.embedder.encode_queries(texts)

    def search(
        self,
        query: SearchQuery | str,
        /,
        *,
        query_vector: np.ndarray | None = None,
        snapshot: Snapshot | None = None,
        **options: Any,
    ) -> SearchResult:
        """Rank passages of the articles for a question; no answer is written.

        Args:
            query: a `SearchQuery` (or `Query`), or the question as a string.
            query_vector: the question's embedding when the caller already has it (the HTTP
                service embeds concurrent questions together).
            snapshot: the index version to search (default: the live one).
            **options: `top_k`, `mode`, `filters`, `as_of` overriding those of `query`.

        Returns:
            A `SearchResult`: up to `top_k` passages best first, each with its document id,
            title, exact offsets (`document.text[start:end] == passage.text`) and scores, and
            the time each stage took.

        Raises:
            QuestionError: the question is empty or too long.

        Example:
            >>> assistant.search("Arab Parliament speaker", top_k=3).passages[0].doc_id
            '002_ada552b2d9cfc3c4.txt'
        """
        t0 = time.perf_counter()
        q = self._resolve(SearchQuery.of(query, **options))
        snap = snapshot or self._snapshot
        qvec = self._vector(q, query_vector)
        t1 = time.perf_counter()
        scope = steps.scope_of(self.settings, snap, q)
        passages = steps.retrieve_in(self.settings, snap, q, qvec, scope)
        t2 = time.perf_counter()
        return SearchResult(
            query=q.question,
            mode=q.mode,
            passages=passages,
            timings={"embed": ms(t1 - t0), "retrieve": ms(t2 - t1), "total": ms(t2 - t0)},
            **scope.fields(answer=False),
        )

    def _vector(self, q: SearchQuery, given: np.ndarray | None) -> np.ndarray | None:
        """The question's embedding: `given`, else computed unless only BM25 ranks."""
        if given is None and q.mode != "bm25":
            return self.embed([q.question])[0]
        return given

    def _resolve(self, query: SearchQuery) -> Any:
        """The query with its question checked and unset options taken from the settings."""
        s = self.settings
        fill: dict[str, Any] = {
            "question": query.question if query.checked else self.check_question(query.question),
            "top_k": query.top_k or s.top_k,
            "mode": query.mode or s.mode,
            "as_of": query.as_of or s.as_of or dt.date.today(),
        }
        if isinstance(query, Query):
            fill["answerer"] = query.answerer or s.answerer
        return query.model_copy(update=fill)

    def ask(
        self,
        query: Query | str,
        /,
        *,
        query_vector: np.ndarray | None = None,
        **options: Any,
    ) -> Answer:
        """Answer a question from the articles, every sentence citing an exact span.

        Args:
            query: a `Query`, or the question as a string.
            query_vector: the question's embedding when the caller already has it.
            **options: `top_k`, `mode`, `filters`, `as_of`, `answerer` overriding those of
                `query`. `as_of` (default `RAG_AS_OF`, else today) hides later articles and
                anchors relative words; see `rag.temporal.time_scope` and
                `rag.temporal.time_answer`.

        Returns:
            An `Answer`: `answer` (text with `[n]` markers, or a plain statement that the
            articles don't say, with `abstained=True`), `citations` (each marker's document,
            title, `start`, `end` and `quote == document.text[start:end]`), the `passages`
            it was drawn from, `confidence` and `timings` in milliseconds.

        Raises:
            QuestionError: the question is empty or too long.

        Example:
            >>> answer = assistant.ask("Who chairs the Arab Parliament?")
            >>> answer.citations[0].quote in answer.answer
            True
        """
        for event in self.stream_ask(query, query_vector=query_vector, **options):
            if isinstance(event, DoneEvent):
                return event.answer
        raise RuntimeError("answer stream ended without a result")  # pragma: no cover

    def stream_ask(
        self,
        query: Query | str,
        /,
        *,
        query_vector: np.ndarray | None = None,
        **options: Any,
    ) -> Iterator[StreamEvent]:
        """Answer a question as a stream of events, for terminals and Server-Sent Events.

        Takes the same arguments as `ask`. Yields, in order (`rag.events`): a
        `PassagesEvent` once retrieval is done; `DeltaEvent`s, pieces of the answer text as
        they are produced (one piece for the extractive answerer, many from an LLM); and
        finally a `DoneEvent` with the same `Answer` that `ask` returns. The whole request uses
        one index snapshot, even if a newer version is swapped in meanwhile.

        Raises:
            QuestionError: the question is empty or too long (before anything is yielded).

        Example:
            >>> [e.kind for e in assistant.stream_ask("Who chairs the Arab Parliament?")]
            ['passages', 'delta', 'done']
        """
        t0 = time.perf_counter()
        q = self._resolve(Query.of(query, **options))
        snap = self._snapshot  # one snapshot for the whole request
        qvec = query_vector if query_vector is not None else self.embed([q.question])[0]
        t1 = time.perf_counter()
        scope = steps.scope_of(self.settings, snap, q)
        passages = steps.retrieve_in(self.settings, snap, q, qvec, scope)
        t2 = time.perf_counter()
        yield PassagesEvent(passages)

        asked = InScope(snap, scope, q.question, qvec, passages)
        answer = functools.partial(self._extractive, snap, q.question, qvec)
        in_time = functools.partial(answer_in_time, asked, answer)
        if q.answerer == "llm":
            from rag.temporal.time_llm import stream_llm

            draft = yield from stream_llm(self.llm_client(), asked, in_time)
        else:
            draft = in_time()
            yield DeltaEvent(draft.answer)
        t3 = time.perf_counter()
        timings = {
            "embed": ms(t1 - t0),
            "retrieve": ms(t2 - t1),
            "answer": ms(t3 - t2),
            "total": ms(t3 - t0),
        }
        done = draft.to_answer(q.question, passages, q.mode, timings)
        yield DoneEvent(done.model_copy(update=scope.fields(answer=True)))

    def _extractive(
        self, snap: Snapshot, question: str, qvec: np.ndarray | None, passages: list[Passage]
    ) -> AnswerDraft:
        """The extractive answer: the reader's (`RAG_READER=model`) or the rules'."""
        return steps.extractive(self.settings, snap, question, qvec, passages, self.reader)

    def timeline(
        self,
        query: SearchQuery | str,
        /,
        *,
        query_vector: np.ndarray | None = None,
        **options: Any,
    ) -> Timeline:
        """Dated events for a question or a name, oldest first, each an exact cited sentence
        with the copies of its story folded (`rag.temporal.timeline`), and the stories they belong
        to.

        Takes the arguments of `search` (`top_k`, passages to draw the events from, defaults
        to `rag.temporal.timeline.TIMELINE_TOP_K`). Raises QuestionError like `search`.

        The timeline reports the `as_of` and `period` it used, like `search`.

        Example:
            >>> [e.event_date for e in assistant.timeline("Ilse Brandt").events][:2]
            ['2022-03-14', '2023-06-12']
        """
        from rag.temporal.timeline import TIMELINE_TOP_K

        t0 = time.perf_counter()
        asked = SearchQuery.of(query, **options)
        q = self._resolve(asked.model_copy(update={"top_k": asked.top_k or TIMELINE_TOP_K}))
        qvec = self._vector(q, query_vector)
        return steps.timeline_of(self.settings, self._snapshot, q, qvec, started=t0)

    def reader(self) -> Reader:
        """The process's reader model (`RAG_READER=model`), loaded on first use."""
        from rag.reader.runtime import MODEL_DIR, get_reader

        return get_reader(self.settings.reader_model or MODEL_DIR)

    def llm_client(self) -> LlmClient:
        """The one LLM client of this assistant (its connection pool is shared by all
        questions), built from the settings on first use; thread-safe."""
        if self._llm is None:
            with self._llm_lock:
                if self._llm is None:
                    from rag.llm import LlmClient

                    self._llm = LlmClient.from_settings(self.settings)
        return self._llm


def _embedder_for(snapshot: Snapshot, settings: Settings, embedder: Embedder | None) -> Embedder:
    """An embedder with the backend the snapshot's vectors were made with (torch before the
    setting existed): questions and chunks must come from the same engine."""
    backend = snapshot.manifest.embed_backend
    if embedder is not None and embedder.backend == backend:
        return embedder
    if embedder is not None:
        logger.warning("index embedded with %s: questions use %s too", backend, backend)
    return Embedder.load(settings.with_overrides(embed_backend=backend))

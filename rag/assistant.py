"""The one API the CLI, the HTTP service and the eval runner share.

    assistant = Assistant.open("index")
    answer = assistant.ask("Who chairs the Arab Parliament?")

The model is loaded once per process. The index is held as an immutable snapshot; `refresh()`
loads a newer version (built by this or another process) and swaps it in atomically, while
calls already running finish on the snapshot they started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag import store
from rag.answering import extractive_answer
from rag.embedding import Embedder
from rag.errors import IndexError_, QuestionError
from rag.models import (
    Answer,
    AnswerDraft,
    AnswererName,
    Document,
    Filters,
    Mode,
    Passage,
    SearchResult,
)
from rag.retrieval import Snapshot, retrieve
from rag.settings import Settings, load_settings

logger = logging.getLogger(__name__)

StreamEvent = tuple[str, Any]  # ("passages", list[Passage]) | ("delta", str) | ("done", Answer)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Assistant:
    def __init__(self, settings: Settings, snapshot: Snapshot, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._snapshot = snapshot
        self._reload = threading.Lock()
        self.last_reload_error: str | None = None

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> Assistant:
        settings = settings or load_settings()
        if index_dir is not None:
            settings = settings.with_overrides(index_dir=Path(index_dir))
        snapshot = Snapshot.load(settings.index_dir)
        built_with = snapshot.manifest.get("settings", {}).get("model")
        if built_with != settings.model:
            raise IndexError_(
                f"index at {settings.index_dir} was built with model {built_with!r}, "
                f"but the model setting is {settings.model!r}: run `rag index --rebuild`"
            )
        return cls(settings, snapshot, embedder or Embedder.load(settings))

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
            except IndexError_ as exc:
                self.last_reload_error = str(exc)
                logger.error("could not load index version %s: %s", live, exc)
                return False
            self._snapshot = snapshot
            self.last_reload_error = None
            logger.info("now serving index version %s", snapshot.version)
            return True

    # ------------------------------------------------------------------ documents

    def documents(self) -> list[Document]:
        return self._snapshot.data.documents

    def document(self, doc_id: str) -> Document | None:
        return self._snapshot.docs.get(doc_id)

    # ------------------------------------------------------------------ questions

    def check_question(self, question: str) -> str:
        text = question.strip() if isinstance(question, str) else ""
        if not text:
            raise QuestionError("question is empty")
        if len(text) > self.settings.max_question_chars:
            raise QuestionError(
                f"question is {len(text)} characters; the limit is "
                f"{self.settings.max_question_chars}"
            )
        return text

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode_queries(texts)

    def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        mode: Mode | None = None,
        filters: Filters | None = None,
        query_vector: np.ndarray | None = None,
        snapshot: Snapshot | None = None,
    ) -> SearchResult:
        t0 = time.perf_counter()
        query = self.check_question(query)
        snap = snapshot or self._snapshot
        mode = mode or self.settings.mode
        qvec = query_vector
        if qvec is None and mode != "bm25":
            qvec = self.embed([query])[0]
        t1 = time.perf_counter()
        passages = self._retrieve(snap, query, qvec, mode, top_k, filters)
        t2 = time.perf_counter()
        return SearchResult(
            query=query,
            mode=mode,
            passages=passages,
            timings={"embed": _ms(t1 - t0), "retrieve": _ms(t2 - t1), "total": _ms(t2 - t0)},
        )

    def _retrieve(
        self,
        snap: Snapshot,
        query: str,
        qvec: np.ndarray | None,
        mode: Mode,
        top_k: int | None,
        filters: Filters | None,
    ) -> list[Passage]:
        s = self.settings
        return retrieve(
            snap,
            query,
            qvec,
            mode=mode,
            top_k=top_k or s.top_k,
            filters=filters,
            rrf_k=s.rrf_k,
            weights=(s.dense_weight, s.bm25_weight),
            mmr_lambda=s.mmr_lambda,
        )

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: Mode | None = None,
        filters: Filters | None = None,
        answerer: AnswererName | None = None,
        query_vector: np.ndarray | None = None,
    ) -> Answer:
        events = self.stream_ask(
            question,
            top_k=top_k,
            mode=mode,
            filters=filters,
            answerer=answerer,
            query_vector=query_vector,
        )
        for kind, value in events:
            if kind == "done":
                return value
        raise RuntimeError("answer stream ended without a result")  # pragma: no cover

    def stream_ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: Mode | None = None,
        filters: Filters | None = None,
        answerer: AnswererName | None = None,
        query_vector: np.ndarray | None = None,
    ) -> Iterator[StreamEvent]:
        """Passages first, then the answer text as it is produced, then the full Answer."""
        t0 = time.perf_counter()
        question = self.check_question(question)
        snap = self._snapshot  # one snapshot for the whole request
        mode = mode or self.settings.mode
        answerer = answerer or self.settings.answerer
        qvec = query_vector if query_vector is not None else self.embed([question])[0]
        t1 = time.perf_counter()
        passages = self._retrieve(snap, question, qvec, mode, top_k, filters)
        t2 = time.perf_counter()
        yield "passages", passages

        def extractive() -> AnswerDraft:
            s = self.settings
            return extractive_answer(
                snap,
                question,
                qvec,
                passages,
                max_sentences=s.answer_sentences,
                threshold=s.abstain_threshold,
            )

        if answerer == "llm":
            from rag.llm import stream_llm_answer

            draft: AnswerDraft | None = None
            for item in stream_llm_answer(self.settings, question, passages, extractive):
                if isinstance(item, str):
                    yield "delta", item
                else:
                    draft = item
            assert draft is not None
        else:
            draft = extractive()
            yield "delta", draft.answer
        t3 = time.perf_counter()
        yield (
            "done",
            Answer(
                question=question,
                answer=draft.answer,
                abstained=draft.abstained,
                citations=draft.citations,
                passages=passages,
                mode=mode,
                answerer=draft.answerer,
                fallback=draft.fallback,
                fallback_reason=draft.fallback_reason,
                dropped_citations=draft.dropped_citations,
                confidence=draft.confidence,
                timings={
                    "embed": _ms(t1 - t0),
                    "retrieve": _ms(t2 - t1),
                    "answer": _ms(t3 - t2),
                    "total": _ms(t3 - t0),
                },
            ),
        )

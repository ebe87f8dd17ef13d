"""The one serving path: how a question is answered, for every front door.

`/v1/ask` (JSON and the Server-Sent Events the web page reads), `/v1/search`, `/v1/timeline`,
the OpenAI chat route and the MCP tools (over HTTP and stdio) all call `Answering`; none of them
decides where the work runs. Each request's question is checked once (`Answering.check`, the
assistant's rule: trimmed, not empty, within `max_question_chars`), and the checked query is not
checked again on the way, in this process or in an answer process.

Where a question is answered:

- **answer processes** (`server.answer_pool`), when they are up: extractive, non-streamed
  answers, searches and timelines. The result comes back as JSON and is sent on as it is.
- **one trip to the CPU pool** (`Runtime.compute`): the same requests when no answer process is
  up and the engine embeds one text per call (`onnx-int8`): embedding, retrieval and answer in
  one hop; a BM25 search (nothing to embed); every timeline.
- **the embedding batcher, then the CPU pool** (`Runtime.embed`): otherwise (an engine that
  embeds concurrent questions together, an LLM answer, a stream). LLM answers wait on the
  network on the large thread pool, so they never hold up extractive ones.

Results are typed: `Served[Answer]`, `Served[SearchResult]`, `Served[Timeline]` hold the model,
or the JSON an answer process sent; `json()` gives bytes to send, `model()` the model, and
neither is parsed or serialised more than once. A stream is an `AnswerStream` of the typed
events of `rag.events`; its first event (the passages) is computed before it is returned, so
errors found early keep their HTTP status.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel

from rag.errors import QuestionError
from rag.events import DoneEvent, StreamEvent
from rag.models import Answer, Query, SearchQuery, SearchResult
from rag.temporal.timeline import Timeline
from server.messages import AskMessage, SearchMessage, TimelineMessage
from server.runtime import Runtime

M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q", bound=SearchQuery)


class Served(Generic[M]):
    """A result as a front door needs it: the model, or its JSON as an answer process sent it.
    `json()` and `model()` each convert at most once (and not at all when the form is there)."""

    __slots__ = ("_json", "_model", "_type")

    def __init__(self, type_: type[M], model: M | None = None, json: bytes | None = None):
        assert model is not None or json is not None
        self._type, self._model, self._json = type_, model, json

    @classmethod
    def of(cls, model: M) -> Served[M]:
        return cls(type(model), model=model)

    def json(self) -> bytes:
        """The result as JSON (the model's own `model_dump_json`)."""
        if self._json is None:
            assert self._model is not None
            self._json = self._model.model_dump_json().encode()
        return self._json

    def model(self) -> M:
        if self._model is None:
            assert self._json is not None
            self._model = self._type.model_validate_json(self._json)
        return self._model


class AnswerStream:
    """An answer as typed events (`rag.events`), pulled one at a time off the event loop; the
    first (the passages) is already computed. `close()` ends it early (a client that left)."""

    def __init__(
        self,
        rt: Runtime,
        events: Iterator[StreamEvent],
        first: StreamEvent,
        *,
        blocking_io: bool,
        embed_ms: float,
    ) -> None:
        self._rt, self._events, self._next = rt, events, first
        self._blocking_io, self._embed_ms = blocking_io, embed_ms
        self._running = threading.Lock()  # held while a pool thread advances the events

    def __aiter__(self) -> AnswerStream:
        return self

    async def __anext__(self) -> StreamEvent:
        event, self._next = self._next, None
        if event is None:
            event = await self._rt.compute(self._pull, blocking_io=self._blocking_io)
        if event is None:
            raise StopAsyncIteration
        if isinstance(event, DoneEvent):  # the embedding was timed here, not by the assistant
            timings = with_embedding(event.answer.timings, self._embed_ms)
            event = DoneEvent(event.answer.model_copy(update={"timings": timings}))
        return event

    def _pull(self) -> StreamEvent | None:
        with self._running:
            return next(self._events, None)

    def close(self) -> None:
        """End the stream now: its frame (which holds the index snapshot) is released at once
        rather than whenever the garbage collector gets to it. One still running on the pool
        is not touched: in CPython 3.11 `gen.close()` on a generator another thread is
        executing reads that frame's stack before it checks, and can crash the process (seen
        in tests/test_soak_structure.py); it ends by itself, and its frame goes with this
        object."""
        if isinstance(self._events, Generator) and self._running.acquire(blocking=False):
            try:
                self._events.close()
            finally:
                self._running.release()


class Answering:
    """Answers questions for every front door over one `Runtime` (see the module doc)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def check(self, query: Q, field: str = "question") -> Q:
        """`query` with its question checked (once: a checked query is returned as it is);
        QuestionError naming `field` (the request's name for the question) when it fails."""
        try:
            return self.rt.ready().check(query)
        except QuestionError as exc:
            if field == "question" or exc.field != "question":
                raise
            raise QuestionError(str(exc), field=field) from None

    def uses_llm(self, query: Query) -> bool:
        return (query.answerer or self.rt.settings.answerer) == "llm"

    async def ask(self, query: Query, *, embed: str | None = None) -> Served[Answer]:
        """The answer to `query`. With `embed`, retrieval uses that text's vector instead of
        the question's (a chat follow-up: `server.chat`)."""
        query = self.check(query)
        assistant = self.rt.ready()
        llm = self.uses_llm(query)
        if not llm and self.rt.pool is not None:
            body = await self.rt.pool.call(AskMessage(self._version(), query, embed))
            if body is not None:
                return Served(Answer, json=body)
        if not llm and not self.rt.batches_questions:

            def one_trip() -> Answer:
                vector = None if embed is None else assistant.embed([embed])[0]
                return assistant.ask(query, query_vector=vector)

            return Served.of(await self.rt.compute(one_trip))
        vector, embed_ms = await self.rt.embed(embed or query.question)
        answer = await self.rt.compute(
            lambda: assistant.ask(query, query_vector=vector), blocking_io=llm
        )
        answer.timings = with_embedding(answer.timings, embed_ms)
        return Served.of(answer)

    async def stream(self, query: Query, *, embed: str | None = None) -> AnswerStream:
        """The answer to `query` as events; the passages are found before this returns."""
        query = self.check(query)
        assistant = self.rt.ready()
        vector, embed_ms = await self.rt.embed(embed or query.question)
        events = assistant.stream_ask(query, query_vector=vector)
        first = await self.rt.compute(next, events)
        blocking = self.uses_llm(query)
        return AnswerStream(self.rt, events, first, blocking_io=blocking, embed_ms=embed_ms)

    async def search(self, query: SearchQuery) -> Served[SearchResult]:
        query = self.check(query)
        assistant = self.rt.ready()
        if self.rt.pool is not None:
            body = await self.rt.pool.call(SearchMessage(self._version(), query))
            if body is not None:
                return Served(SearchResult, json=body)
        mode = query.mode or self.rt.settings.mode
        if mode == "bm25" or not self.rt.batches_questions:  # one trip: nothing to batch
            return Served.of(await self.rt.compute(assistant.search, query))
        vector, embed_ms = await self.rt.embed(query.question)
        result = await self.rt.compute(lambda: assistant.search(query, query_vector=vector))
        result.timings = with_embedding(result.timings, embed_ms)
        return Served.of(result)

    async def timeline(self, query: SearchQuery, *, field: str = "question") -> Served[Timeline]:
        """The timeline of `query` (`field`: the request's name for the question)."""
        query = self.check(query, field)
        assistant = self.rt.ready()
        if self.rt.pool is not None:
            body = await self.rt.pool.call(TimelineMessage(self._version(), query))
            if body is not None:
                return Served(Timeline, json=body)
        return Served.of(await self.rt.compute(assistant.timeline, query))

    def _version(self) -> str:
        """The index version this process serves: an answer process answers on it too
        (`AnswerPool.call` returns None when none could answer: then it is answered here)."""
        return self.rt.ready().snapshot.version


def with_embedding(timings: dict[str, float], embed_ms: float) -> dict[str, float]:
    """Report the embedding done before the assistant was called (queueing included)."""
    out = dict(timings)
    out["total"] = round(out.get("total", 0.0) - out.get("embed", 0.0) + embed_ms, 3)
    out["embed"] = round(embed_ms, 3)
    return out


def answering_of(request: Request) -> Answering:
    return request.app.state.answering  # type: ignore[no-any-return]


async def get_answering(request: Request) -> Answering:
    # async: FastAPI runs a plain `def` dependency on a worker thread, one hop per request
    return answering_of(request)


AnsweringDep = Annotated[Answering, Depends(get_answering)]

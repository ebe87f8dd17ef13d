"""`POST /v1/ask` (JSON or Server-Sent Events) and `POST /v1/search`.

An extractive answer is one trip to the CPU pool (embedding, retrieval, answer) when the engine
embeds one question per call; otherwise the question is embedded through the shared batcher
before the assistant sees it, and the reported timings say so (`embed` includes queueing).
Answers and results are sent as the model's own JSON (`json_response`), skipping FastAPI's
second validation of a model it has just been handed. A streamed answer runs its first step
before the response starts, so errors found early keep their HTTP status; later failures
arrive as an `error` event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from rag.assistant import Assistant, StreamEvent
from rag.errors import RagError
from rag.models import Answer, Passage, Query, SearchQuery, SearchResult
from server.errors import error_responses, rag_error_type
from server.middleware import request_id_of
from server.runtime import Runtime, RuntimeDep, close_events
from server.schemas import SSE_EVENT_SCHEMA, AskRequest, SearchRequest, error_body

logger = logging.getLogger("server")
router = APIRouter(tags=["questions"])

SSE_DOC = (
    "With `stream: true` (or `Accept: text/event-stream`): Server-Sent Events `passages` "
    "(`{passages: [...]}`), then `delta` (`{text}`) as the answer is written, then `done` (the "
    "full Answer). A failure after the stream began arrives as an `error` event (ErrorBody)."
)


@router.post(
    "/v1/ask",
    response_model=Answer,
    summary="Answer a question with exact citations",
    description=SSE_DOC,
    responses={
        200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}},
        **error_responses(413, 422, 500, 503),
    },
)
async def ask(body: AskRequest, request: Request, rt: RuntimeDep) -> Any:
    assistant = rt.ready()
    question = assistant.check_question(body.question)
    uses_llm = (body.answerer or rt.settings.answerer) == "llm"
    stream = body.stream
    if stream is None:
        stream = "text/event-stream" in request.headers.get("accept", "")
    query = body.query()
    if not stream and not uses_llm and rt.answers_in_one_trip:
        return Response(await rt.answer_json(query), media_type="application/json")
    vector, embed_ms = await rt.embed(question)
    if stream:
        return await _stream_answer(
            rt, assistant, query, vector, embed_ms, request_id_of(request.scope), uses_llm
        )
    answer = await rt.compute(
        lambda: assistant.ask(query, query_vector=vector), blocking_io=uses_llm
    )
    answer.timings = with_embedding(answer.timings, embed_ms)
    return json_response(answer)


@router.post(
    "/v1/search",
    response_model=SearchResult,
    summary="Rank passages for a question (no answer)",
    responses=error_responses(413, 422, 500, 503),
)
async def search(body: SearchRequest, rt: RuntimeDep) -> Any:
    assistant = rt.ready()
    question = assistant.check_question(body.question)
    mode = body.mode or rt.settings.mode
    found = await rt.search_json(SearchQuery.of(body, mode=mode))
    if found is not None:
        return Response(found, media_type="application/json")
    vector, embed_ms = await rt.embed(question) if mode != "bm25" else (None, 0.0)
    result = await rt.compute(lambda: assistant.search(body, mode=mode, query_vector=vector))
    if vector is not None:
        result.timings = with_embedding(result.timings, embed_ms)
    return json_response(result)


def json_response(model: Answer | SearchResult) -> Response:
    """The model as JSON, as FastAPI would send it for `response_model` (same bytes as
    `model_dump_json`), without FastAPI's dump-validate-dump of an already valid model."""
    return Response(model.model_dump_json(), media_type="application/json")


def with_embedding(timings: dict[str, float], embed_ms: float) -> dict[str, float]:
    """Report the batched embedding (queueing included) the assistant did not see."""
    out = dict(timings)
    out["total"] = round(out.get("total", 0.0) - out.get("embed", 0.0) + embed_ms, 3)
    out["embed"] = round(embed_ms, 3)
    return out


async def _stream_answer(
    rt: Runtime,
    assistant: Assistant,
    query: Query,
    vector: Any,
    embed_ms: float,
    request_id: str,
    uses_llm: bool,
) -> StreamingResponse:
    """SSE: the first step runs before the response starts, so early errors keep their status."""
    events: Iterator[StreamEvent] = assistant.stream_ask(query, query_vector=vector)
    first = await rt.compute(next, events)

    async def body() -> AsyncIterator[str]:
        try:
            yield _sse_event(*first, embed_ms=embed_ms)
            while (item := await rt.compute(next, events, None, blocking_io=uses_llm)) is not None:
                yield _sse_event(*item, embed_ms=embed_ms)
        except RagError as exc:
            logger.warning("stream %s failed: %s", request_id, exc)
            yield _sse("error", error_body(rag_error_type(exc), str(exc)))
        except Exception:
            logger.exception("stream failed: request_id=%s route=/v1/ask", request_id)
            yield _sse(
                "error", error_body("internal_error", "internal error", request_id=request_id)
            )
        finally:
            close_events(events)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_event(kind: str, value: Any, *, embed_ms: float) -> str:
    if kind == "passages":
        passages: list[Passage] = value
        return _sse(kind, {"passages": [p.model_dump(mode="json") for p in passages]})
    if kind == "delta":
        return _sse(kind, {"text": value})
    answer: Answer = value
    answer.timings = with_embedding(answer.timings, embed_ms)
    return _sse(kind, answer.model_dump(mode="json"))


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

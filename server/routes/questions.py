"""`POST /v1/ask` (JSON or Server-Sent Events) and `POST /v1/search`.

How the question is answered (answer process, batcher or CPU pool) is `server.answering`'s
decision, the same for every front door; these routes only pick JSON or a stream and send what
comes back: a result an answer process sent as JSON goes out as those bytes, skipping FastAPI's
second validation of a model it would otherwise be handed. A streamed answer runs its first
step before the response starts, so errors found early keep their HTTP status; later failures
arrive as an `error` event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from rag.errors import RagError
from rag.events import StreamEvent
from rag.models import Answer, SearchResult
from server.answering import AnsweringDep, AnswerStream, Served
from server.errors import error_responses, rag_error_type
from server.middleware import request_id_of
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
async def ask(body: AskRequest, request: Request, answering: AnsweringDep) -> Any:
    query = answering.check(body.query())
    stream = body.stream
    if stream is None:
        stream = "text/event-stream" in request.headers.get("accept", "")
    if stream:
        events = await answering.stream(query)
        return _sse_response(events, request_id_of(request.scope))
    return json_response(await answering.ask(query))


@router.post(
    "/v1/search",
    response_model=SearchResult,
    summary="Rank passages for a question (no answer)",
    responses=error_responses(413, 422, 500, 503),
)
async def search(body: SearchRequest, answering: AnsweringDep) -> Any:
    return json_response(await answering.search(body))


def json_response(served: Served[Any]) -> Response:
    """The result as JSON, as FastAPI would send it for `response_model` (the same bytes as
    `model_dump_json`), without FastAPI's dump-validate-dump of an already valid model."""
    return Response(served.json(), media_type="application/json")


def _sse_response(events: AnswerStream, request_id: str) -> StreamingResponse:
    """SSE: the events as they come; a failure after the first arrives as an `error` event."""

    async def body() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield _sse_event(event)
        except RagError as exc:
            logger.warning("stream %s failed: %s", request_id, exc)
            yield _sse("error", error_body(rag_error_type(exc), str(exc)))
        except Exception:
            logger.exception("stream failed: request_id=%s route=/v1/ask", request_id)
            yield _sse(
                "error", error_body("internal_error", "internal error", request_id=request_id)
            )
        finally:
            events.close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_event(event: StreamEvent) -> str:
    return _sse(event.kind, event.data())


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

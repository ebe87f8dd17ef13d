"""OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions`.

Clients written for OpenAI work unchanged (`OpenAI(base_url="http://host:8000/v1", ...)`).
One model id per answerer: `rag-extractive`, and `rag-llm` only when an LLM is configured.
A completion answers the conversation's last user message from the articles (see `server.chat`
for how follow-ups are handled); the same question costs what it costs on `/v1/ask` plus a
little formatting, and the message's `[n]` markers point at the exact spans listed in the extra
top-level `citations` field. An abstention is an ordinary assistant message.

Errors on these routes (and only these) have OpenAI's shape `{"error": {message, type, param,
code}}`: `OpenAIRoute` converts validation errors (400 naming the field), refusals, auth
failures and service errors. With `RAG_API_KEY` set, `Authorization: Bearer <key>` is required.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from rag.errors import QuestionError, RagError
from rag.events import DeltaEvent, DoneEvent
from rag.ingest.tokens import cl100k
from rag.models import Answer, Query
from server.answering import AnsweringDep, AnswerStream
from server.chat import (
    Plan,
    chat_citations,
    message_content,
    rewrite_question,
    rule_plan,
    short_answer_of,
    sources_text,
    user_turns,
)
from server.errors import ApiError, error_responses, public_reason, validation_fields
from server.middleware import request_id_of
from server.openai_schemas import (
    EXTRACTIVE_MODEL,
    LLM_MODEL,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    OpenAIError,
    OpenAIErrorBody,
    Usage,
    unsupported_param,
)
from server.runtime import Runtime, RuntimeDep, runtime_of

logger = logging.getLogger("server")
STARTED = int(time.time())


def _openai_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Invalid body or a parameter that cannot be honoured (`param` names it).",
        401: "RAG_API_KEY is set and the bearer key is missing or wrong.",
        404: "No such model.",
        503: "Model or index not loaded (yet), or the index is unusable.",
    }
    out: dict[int | str, dict[str, Any]] = {
        c: {"model": OpenAIErrorBody, "description": described[c]} for c in codes
    }
    # The size limit and unexpected failures are answered before these routes, natively.
    out.update(error_responses(413, 500))
    return out


def _error_response(exc: OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body.model_dump(), status_code=exc.status, headers=exc.headers)


def _as_openai_error(exc: Exception) -> OpenAIError | None:
    """The OpenAI-shaped error for an exception raised while handling a request, if known."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, RequestValidationError):
        first = validation_fields(exc)[0]
        param = _openai_param(first["field"])
        return OpenAIError(400, f"invalid {param}: {first['reason']}", param=param)
    if isinstance(exc, QuestionError):
        return OpenAIError(400, f"invalid question: {exc}", param="messages")
    if isinstance(exc, ApiError):
        return OpenAIError(exc.status, exc.message, type_="server_error", code=exc.type)
    if isinstance(exc, RagError):
        return OpenAIError(503, public_reason(exc), type_="server_error", code="unavailable")
    return None


def _openai_param(field: str) -> str:
    """`messages.0.role` -> `messages[0].role` (OpenAI's spelling)."""
    out = ""
    for part in field.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


class OpenAIRoute(APIRoute):
    """A route whose errors are answered in OpenAI's shape, after the API key check."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                _check_api_key(request)
                return await handler(request)
            except Exception as exc:
                converted = _as_openai_error(exc)
                if converted is None:
                    raise
                return _error_response(converted)

        return route


def _check_api_key(request: Request) -> None:
    secret = runtime_of(request).settings.api_key
    key = secret.get_secret_value() if secret else ""
    if not key:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise OpenAIError(
            401,
            "a valid API key is required: send `Authorization: Bearer <RAG_API_KEY>`",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


bearer = HTTPBearer(auto_error=False, description="Required when RAG_API_KEY is set.")
router = APIRouter(tags=["openai"], route_class=OpenAIRoute, dependencies=[Depends(bearer)])


def _models(rt: Runtime) -> list[str]:
    return [EXTRACTIVE_MODEL] + ([LLM_MODEL] if rt.settings.llm_base_url else [])


@router.get(
    "/v1/models",
    response_model=ModelList,
    summary="OpenAI-compatible: the answerers as models",
    responses=_openai_responses(401),
)
async def list_models(rt: RuntimeDep) -> ModelList:
    return ModelList(data=[ModelCard(id=m, created=STARTED) for m in _models(rt)])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    summary="OpenAI-compatible chat: answer the last user message with exact citations",
    description="With `stream: true`: `data:` chunks (`chat.completion.chunk`), then "
    "`data: [DONE]`. Extensions: `citations`, `short_answer`, `abstained`.",
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **_openai_responses(400, 401, 404, 503),
    },
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, answering: AnsweringDep
) -> Any:
    rt = answering.rt
    refused = unsupported_param(body)
    if refused is not None:
        raise OpenAIError(400, refused[1], param=refused[0], code="unsupported_parameter")
    if body.model not in _models(rt):
        raise OpenAIError(
            404,
            f"the model {body.model!r} does not exist; available: {', '.join(_models(rt))}",
            param="model",
            code="model_not_found",
        )
    turns = user_turns(body.messages)
    # the one check of the question: the last turn (a rewritten follow-up is made to fit)
    asked = answering.check(Query(question=turns[-1]), field="messages")
    plan = await _plan(rt, body, turns)
    rewritten = {"question": plan.question} if plan.rewritten else {}
    query = Query.of(
        asked,  # still checked, unless the question was rewritten: then checked on the way
        **rewritten,
        top_k=body.top_k,
        mode=body.mode,
        filters=body.filters,
        answerer="llm" if body.model == LLM_MODEL else "extractive",
        as_of=body.as_of,
    )
    meta = _Meta(body, rt.ready().snapshot.version, turns)
    # as on /v1/ask (`server.answering`); a follow-up without an LLM is embedded with the turn
    # before it (`server.chat`)
    if body.stream:
        events = await answering.stream(query, embed=plan.context)
        return _stream(rt, events, meta, request_id_of(request.scope))
    answer = await answering.ask(query, embed=plan.context)
    return _completion(answer.model(), meta)


async def _plan(rt: Runtime, body: ChatCompletionRequest, turns: list[str]) -> Plan:
    """The question to answer: a follow-up is rewritten by the LLM when one is configured,
    else answered by the two-turn rule (`server.chat`)."""
    limit = rt.settings.max_question_chars
    if len(turns) > 1 and rt.settings.llm_base_url:
        rewritten = await rt.compute(
            rewrite_question,
            rt.ready().llm_client(),
            body.messages,
            rt.settings.max_question_chars,
            blocking_io=True,
        )
        if rewritten:
            return Plan(rewritten, rewritten=True)
    return rule_plan(turns, limit)


class _Meta:
    """What every response or chunk of one completion shares."""

    def __init__(self, body: ChatCompletionRequest, version: str | None, turns: list[str]):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = body.model
        self.fingerprint = version
        self.turns = turns
        self.include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def usage(self, content: str) -> Usage:
        """Tokens in tiktoken's cl100k: the user turns read, and the message written."""
        enc = cl100k()  # encode_ordinary: no thread pool per call, unlike the batch API
        prompt = sum(len(enc.encode_ordinary(t)) for t in self.turns)
        completion = len(enc.encode_ordinary(content))
        return Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def chunk(self, choices: list[ChunkChoice], **extra: Any) -> str:
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            system_fingerprint=self.fingerprint,
            **extra,
        )
        return _data(chunk.model_dump(mode="json", exclude_none=True))


def _completion(answer: Answer, meta: _Meta) -> ChatCompletion:
    content = message_content(answer)
    return ChatCompletion(
        id=meta.id,
        created=meta.created,
        model=meta.model,
        choices=[Choice(message=AssistantMessage(content=content))],
        usage=meta.usage(content),
        system_fingerprint=meta.fingerprint,
        citations=chat_citations(answer),
        short_answer=short_answer_of(answer),
        abstained=answer.abstained,
        as_of=answer.as_of,
        period=answer.period,
    )


def _stream(rt: Runtime, events: AnswerStream, meta: _Meta, request_id: str) -> StreamingResponse:
    """OpenAI chunks: role, the answer's deltas, the source list, a last chunk with
    `finish_reason` and the citations, usage if asked, `[DONE]`. Retrieval ran before the
    response starts, so its errors keep their status; later ones arrive as an error event.
    The passages have no place in the chat format."""

    async def body() -> AsyncIterator[str]:
        try:
            yield meta.chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])
            async for event in events:
                if isinstance(event, DeltaEvent) and event.text:
                    yield meta.chunk([ChunkChoice(delta=Delta(content=event.text))])
                elif isinstance(event, DoneEvent):  # token counts (tiktoken) stay off the loop
                    for chunk in await rt.compute(_closing_chunks, event.answer, meta):
                        yield chunk
        except Exception as exc:
            converted = _as_openai_error(exc)
            if converted is None:
                logger.exception("chat stream failed: request_id=%s", request_id)
                converted = OpenAIError(500, "internal error", type_="server_error")
            yield _data(converted.body.model_dump())
            return
        finally:
            events.close()
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _closing_chunks(answer: Answer, meta: _Meta) -> list[str]:
    """The chunks after the answer text: its sources, the last one, usage if asked."""
    sources = sources_text(answer)
    chunks = [meta.chunk([ChunkChoice(delta=Delta(content=sources))])] if sources else []
    chunks.append(
        meta.chunk(
            [ChunkChoice(delta=Delta(), finish_reason="stop")],
            citations=chat_citations(answer),
            short_answer=short_answer_of(answer),
            abstained=answer.abstained,
            as_of=answer.as_of,
            period=answer.period,
        )
    )
    if meta.include_usage:
        chunks.append(meta.chunk([], usage=meta.usage(message_content(answer))))
    return chunks


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

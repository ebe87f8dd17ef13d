"""Bodies of the OpenAI-compatible routes (`/v1/models`, `/v1/chat/completions`).

The shapes follow OpenAI's chat-completions API closely enough that the official clients work
unchanged; what this service adds is an extra top-level `citations` list (exact spans:
`document.text[start:end] == quote`) and `short_answer` beside the message, as Perplexity's API
puts sources beside the message. Request fields that do not apply to a retrieval assistant are
accepted and ignored (sampling, token limits, `user`, …); fields whose meaning cannot be honoured
(tools, several choices, structured output, …) are refused by `unsupported_param` with the
OpenAI error shape naming the parameter. Errors on these routes are always `OpenAIErrorBody`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rag.models import (
    ALSO_IN_DESCRIPTION,
    AS_OF_DESCRIPTION,
    PERIOD_DESCRIPTION,
    AlsoIn,
    Citation,
    Filters,
    Mode,
    Period,
    ResolvedDate,
    SearchQuery,
)

EXTRACTIVE_MODEL = "rag-extractive"
LLM_MODEL = "rag-llm"


# --------------------------------------------------------------------------- errors


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, server_error, …")
    param: str | None = Field(None, description="The offending request field, e.g. `messages`.")
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Every error of the OpenAI-compatible routes has this shape (OpenAI's own)."""

    error: OpenAIErrorDetail


class OpenAIError(Exception):
    """An error answered in OpenAI's shape on the OpenAI-compatible routes."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = OpenAIErrorBody(
            error=OpenAIErrorDetail(message=message, type=type_, param=param, code=code)
        )
        self.headers = headers


# --------------------------------------------------------------------------- models


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rag-articles"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --------------------------------------------------------------------------- requests


class ContentPart(BaseModel):
    """One part of a message's content; only `text` parts can be read."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request. Unknown fields are accepted and ignored, as are
    sampling and length controls (the answer is extracted or grounded, not sampled freely).
    `top_k`, `mode`, `filters` and `as_of` are this service's extensions (the `/v1/ask`
    fields); `as_of` may also come as `metadata.as_of`."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description=f"`{EXTRACTIVE_MODEL}`, or `{LLM_MODEL}` when configured.")
    messages: list[ChatMessage] = Field(
        min_length=1, description="The conversation; the last user message is answered."
    )
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, description="Only 1 is supported.")
    tools: list[Any] | None = Field(None, description="Not supported (refused when non-empty).")
    functions: list[Any] | None = Field(None, description="Not supported (refused when set).")
    tool_choice: Any = Field(None, description="Only `none` or `auto` (without tools).")
    function_call: Any = Field(None, description="Only `none` or `auto` (without functions).")
    response_format: dict[str, Any] | None = Field(None, description="Only `{type: text}`.")
    logprobs: bool | None = Field(None, description="Not supported (refused when true).")
    modalities: list[str] | None = Field(None, description="Only `[text]`.")
    audio: dict[str, Any] | None = Field(None, description="Not supported (refused when set).")
    temperature: float | None = Field(None, description="Accepted and ignored.")
    top_p: float | None = Field(None, description="Accepted and ignored.")
    max_tokens: int | None = Field(None, description="Accepted and ignored.")
    max_completion_tokens: int | None = Field(None, description="Accepted and ignored.")
    user: str | None = Field(None, description="Accepted and ignored.")
    metadata: dict[str, Any] | None = Field(
        None, description="OpenAI's metadata: ignored, except `as_of` when the body has none."
    )
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve (default 5).")
    mode: Mode | None = Field(None, description="Retrieval mode (default hybrid).")
    filters: Filters | None = None
    as_of: dt.date | None = Field(None, description=SearchQuery.model_fields["as_of"].description)

    @model_validator(mode="before")
    @classmethod
    def _as_of_from_metadata(cls, data: Any) -> Any:
        """`metadata.as_of` (OpenAI clients pass it as `metadata={"as_of": ...}`) stands for
        `as_of` when the body field is absent; validated as it, so a bad one names `as_of`."""
        if isinstance(data, dict) and data.get("as_of") is None:
            meta = data.get("metadata")
            if isinstance(meta, dict) and meta.get("as_of") is not None:
                return {**data, "as_of": meta["as_of"]}
        return data


def unsupported_param(req: ChatCompletionRequest) -> tuple[str, str] | None:
    """`(param, reason)` for the first field whose meaning this service cannot honour."""
    if req.n is not None and req.n != 1:
        return "n", "only n=1 is supported"
    if req.tools:
        return "tools", "tool calling is not supported by this assistant"
    if req.functions:
        return "functions", "function calling is not supported by this assistant"
    if req.tool_choice not in (None, "none", "auto"):
        return "tool_choice", "tool calling is not supported by this assistant"
    if req.function_call not in (None, "none", "auto"):
        return "function_call", "function calling is not supported by this assistant"
    if req.response_format and req.response_format.get("type", "text") != "text":
        return "response_format", "only response_format {type: text} is supported"
    if req.logprobs:
        return "logprobs", "log probabilities are not available"
    if req.modalities and set(req.modalities) != {"text"}:
        return "modalities", "only the text modality is supported"
    if req.audio:
        return "audio", "audio output is not supported"
    return None


# --------------------------------------------------------------------------- responses


class ChatCitation(BaseModel):
    """Marker `[n]` of the message: `quote == document.text[start:end]`."""

    n: int
    doc_id: str
    title: str
    source: str | None = None
    date: str | None = None
    date_source: str | None = None
    start: int
    end: int
    quote: str
    also_in: list[AlsoIn] = Field(default_factory=list, description=ALSO_IN_DESCRIPTION)
    resolved_dates: list[ResolvedDate] = Field(
        default_factory=list, description=Citation.model_fields["resolved_dates"].description
    )
    earlier: bool = Field(False, description=Citation.model_fields["earlier"].description)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = Field(None, description="The index version answered from.")
    citations: list[ChatCitation] = Field(description="Extension: exact spans behind [n].")
    short_answer: str | None = Field(None, description="Extension: the answer in a few words.")
    abstained: bool = Field(False, description="Extension: the articles don't say.")
    as_of: dt.date | None = Field(None, description=f"Extension: {AS_OF_DESCRIPTION}")
    period: Period | None = Field(None, description=f"Extension: {PERIOD_DESCRIPTION}")


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed completion; the stream ends with `data: [DONE]`. The
    last chunk with a choice carries `finish_reason` and the extension fields."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    citations: list[ChatCitation] | None = None
    short_answer: str | None = None
    abstained: bool | None = None
    as_of: dt.date | None = None
    period: Period | None = None

"""The HTTP client for OpenAI-compatible `/v1/chat/completions` servers.

One `LlmClient` is built from the settings once (`LlmClient.from_settings`) and holds one
`httpx.Client`, whose connection pool is reused across questions and threads (httpx clients are
thread-safe). `generate` streams the answer text, retrying 429/5xx/connection errors with
exponential backoff (or the server's Retry-After) only while nothing has been yielded yet.

Every failure is raised as `LLMFailure` with a safe reason. The API key is sent only as a bearer
header: it never appears in a log line, an exception message or a reason, because reasons are
fixed strings and anything derived from a server response or an httpx exception goes through
`LlmClient.redact` first.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from rag.settings import LlmSettings

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.2  # first retry waits ~0.2 s, then 0.4, 0.8 ... (+ up to 100 % jitter)
BACKOFF_MAX_S = 5.0  # cap on one wait, Retry-After included
TOTAL_TIMEOUT_FACTOR = 10  # a whole streamed answer may take at most this × timeout
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a non-streamed body or error body read at most

_sleep: Callable[[float], None] = time.sleep  # module attribute so tests can skip real waits


class LLMFailure(Exception):
    """An LLM call failed; `reason` is safe to show (no key, no URL, no server text)."""

    def __init__(
        self, reason: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LlmConfig:
    """The `llm_*` settings the client uses; `api_key` is kept out of `repr`."""

    base_url: str | None
    model: str | None
    timeout: float
    max_tokens: int
    temperature: float
    context_window: int
    retries: int
    api_key: str = field(default="", repr=False)
    anchor: bool = False  # small local model: reader anchor + llama.cpp citation grammar

    @classmethod
    def from_settings(cls, settings: LlmSettings) -> LlmConfig:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            context_window=settings.llm_context_window,
            retries=settings.llm_retries,
            api_key=key,
            anchor=settings.llm_anchor,
        )

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


def _endpoint(base_url: str) -> str:
    """`{base_url}/chat/completions`, keeping any query (e.g. `?api-version=`) at the end."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions"
    return urlunsplit(parts._replace(path=path))


def _safe_url(url: str) -> str:
    """The URL without user:password@ and without query (either could carry a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if parseable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff(attempt: int, retry_after: float | None) -> float:
    """Wait before retry `attempt + 1`: the server's Retry-After if given, else exponential with
    jitter (so many clients throttled at once do not retry in lockstep); capped either way."""
    if retry_after is not None:
        return min(retry_after, BACKOFF_MAX_S)
    delay = BACKOFF_BASE_S * 2**attempt
    return min(delay + random.uniform(0, delay), BACKOFF_MAX_S)


class LlmClient:
    """One configured LLM endpoint and its connection pool; safe to share between threads."""

    def __init__(self, config: LlmConfig) -> None:
        self.config = config
        self._url = _endpoint(config.base_url or "")
        self._http = httpx.Client(timeout=httpx.Timeout(config.timeout), follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: LlmSettings) -> LlmClient:
        return cls(LlmConfig.from_settings(settings))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LlmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        """`text` with the API key and any secret part of the base URL replaced."""
        if self.config.api_key:
            text = text.replace(self.config.api_key, "[REDACTED]")
        if self.config.base_url:
            parts = urlsplit(self.config.base_url)
            for secret in (parts.password, parts.username, parts.query):
                if secret:
                    text = text.replace(secret, "[REDACTED]")
        return text

    def _body(self, messages: list[dict[str, str]], grammar: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "stream": True,
        }
        if grammar is not None:  # llama.cpp servers' GBNF constraint (an extension field)
            body["grammar"] = grammar
        return body

    def _headers(self) -> dict[str, str]:
        """Request headers; the bearer token only when a key is set (local servers need none)."""
        headers = {"Accept": "text/event-stream, application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def generate(
        self, messages: list[dict[str, str]], grammar: str | None = None
    ) -> Iterator[str]:
        """Raw answer text pieces, with retries on 429/5xx/connection errors before the first
        piece. Raises LLMFailure (with a safe reason) on any failure."""
        body = self._body(messages, grammar)
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            started = False
            try:
                for piece in self._one_request(body):
                    started = True
                    yield piece
                return
            except LLMFailure as exc:
                if started or not exc.retryable:
                    raise
                if attempt + 1 >= attempts:
                    if attempts == 1:
                        raise
                    raise LLMFailure(f"{exc.reason} (after {attempts} attempts)") from None
                delay = _backoff(attempt, exc.retry_after)
                logger.info(
                    "LLM attempt %d/%d failed (%s); retrying in %.2fs",
                    attempt + 1,
                    attempts,
                    exc.reason,
                    delay,
                )
                _sleep(delay)

    def _one_request(self, body: dict[str, Any]) -> Iterator[str]:
        timeout = self.config.timeout
        deadline = time.monotonic() + TOTAL_TIMEOUT_FACTOR * timeout
        logger.debug(
            "LLM request: POST %s model=%s messages=%d",
            self.redact(_safe_url(self._url)),
            self.config.model,
            len(body["messages"]),
        )
        try:
            with self._http.stream("POST", self._url, json=body, headers=self._headers()) as resp:
                if resp.status_code != 200:
                    self._raise_for_status(resp)
                ctype = resp.headers.get("content-type", "")
                if "json" in ctype and "event-stream" not in ctype:
                    yield _read_json_answer(resp)
                else:
                    yield from _read_sse(resp, deadline, TOTAL_TIMEOUT_FACTOR * timeout)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise LLMFailure("LLM base URL is not a valid http(s) URL") from None
        except httpx.TimeoutException:
            raise LLMFailure(f"LLM timed out after {timeout}s") from None
        except httpx.ConnectError as exc:
            logger.debug("LLM connect error: %s", self.redact(str(exc)))
            raise LLMFailure("could not connect to the LLM server", retryable=True) from None
        except httpx.TransportError as exc:
            # Connection reset / closed mid-response. Retryable only while nothing was yielded.
            logger.debug("LLM transport error: %s", self.redact(str(exc)))
            reason = f"LLM connection failed ({type(exc).__name__})"
            raise LLMFailure(reason, retryable=True) from None
        except httpx.HTTPError as exc:  # anything else httpx raises (bad URL, ...)
            logger.debug("LLM HTTP error: %s", self.redact(str(exc)))
            raise LLMFailure(f"LLM request failed ({type(exc).__name__})") from None

    def _raise_for_status(self, resp: httpx.Response) -> None:
        status = resp.status_code
        snippet = b""
        for chunk in resp.iter_bytes():
            snippet += chunk
            if len(snippet) >= 2048:
                break
        logger.warning(
            "LLM server returned HTTP %d: %s",
            status,
            self.redact(snippet[:500].decode("utf-8", "replace")),
        )
        retryable = status == 429 or status >= 500
        raise LLMFailure(
            f"LLM server returned HTTP {status}",
            retryable=retryable,
            retry_after=_retry_after(resp.headers.get("retry-after")) if retryable else None,
        )


def _malformed(what: str) -> LLMFailure:
    return LLMFailure(f"LLM server sent {what}")


def _read_json_answer(resp: httpx.Response) -> str:
    """A non-streamed completion: `choices[0].message.content`."""
    raw = b""
    for chunk in resp.iter_bytes():
        raw += chunk
        if len(raw) > MAX_RESPONSE_BYTES:
            raise _malformed("an oversized response")
    try:
        data = json.loads(raw)
    except ValueError:
        raise _malformed("malformed JSON") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _malformed("a response without choices[0].message.content") from None
    if content is None:
        return ""
    if not isinstance(content, str):
        raise _malformed("a response without choices[0].message.content")
    return content


def _read_sse(resp: httpx.Response, deadline: float, total_s: float) -> Iterator[str]:
    """Text deltas from a server-sent-event stream of chat.completion.chunk objects."""
    data: list[str] = []
    finished = False
    events = 0
    # a trailing blank line flushes a last event that arrived without one
    for line in itertools.chain(resp.iter_lines(), [""]):
        if time.monotonic() > deadline:
            raise LLMFailure(f"LLM timed out after {total_s}s")
        if line == "":
            if data:
                events += 1
                event, data = "\n".join(data), []
                if event.strip() == "[DONE]":
                    return
                piece, done = _parse_chunk(event)
                finished = finished or done
                if piece:
                    yield piece
            continue
        if line.startswith(":"):
            continue  # SSE comment / keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if not events:  # e.g. an HTML page: llm_base_url is not an OpenAI-compatible /v1 root
        raise _malformed("no completion (is llm_base_url an OpenAI-compatible API?)")
    if not finished:
        raise LLMFailure("LLM stream ended before the answer was complete")


def _parse_chunk(event: str) -> tuple[str, bool]:
    """(content delta, whether a finish_reason was given) of one stream chunk."""
    try:
        obj = json.loads(event)
    except ValueError:
        raise _malformed("malformed JSON") from None
    if not isinstance(obj, dict):
        raise _malformed("malformed JSON")
    if "error" in obj:
        raise LLMFailure("LLM server reported an error mid-stream")
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise _malformed("a stream chunk without choices")
    if not choices:
        return "", False  # e.g. a final usage-only chunk
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _malformed("a malformed stream chunk")
    delta = choice.get("delta") or choice.get("message") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    if content is not None and not isinstance(content, str):
        raise _malformed("a malformed stream chunk")
    return content or "", choice.get("finish_reason") is not None

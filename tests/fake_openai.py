"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat-completions protocol, for tests.

The LLM client is tested over real sockets (timeouts, refused connections, chunked SSE, broken
streams) rather than with a mocked transport, so what passes here is what an actual server
(OpenAI, vLLM, Ollama, llama.cpp, LM Studio) would exercise.

Script it per test, then point `llm_base_url` at `fake.base_url`:

    fake_llm.fail(500, times=2)         # two 500s ...
    fake_llm.answer("Baku [1].")        # ... then this answer (streamed if the client asks)
    fake_llm.requests                   # what the client sent: bodies and headers

Scripted replies are used in order; the last one given by `answer()` (or the default answer)
repeats once the script is exhausted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest

ReplyKind = Literal["answer", "status", "stall", "malformed", "missing", "drop"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted response."""

    kind: ReplyKind
    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # stall: how long to wait before answering
    message: str = ""  # status: the error message in the body
    stream: bool | None = None  # None: as the request asks; False: always one JSON body
    chunk_delay: float = 0.0  # pause between streamed chunks


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What the client sent: path, headers (lower-case names) and the JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body.get("messages", []))

    def message(self, role: str) -> str:
        return "\n".join(m["content"] for m in self.messages if m.get("role") == role)


class _QuietServer(ThreadingHTTPServer):
    """Daemon handler threads; a client hanging up (timeouts, broken streams) is not an error."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _words(text: str) -> list[str]:
    """Split text into word-sized streaming deltas that concatenate back to it exactly."""
    pieces: list[str] = []
    current = ""
    for ch in text:
        if ch == " " and current.strip():
            pieces.append(current)
            current = ""
        current += ch
    if current:
        pieces.append(current)
    return pieces


class FakeOpenAI:
    """The server and its script. Thread-safe: the handler runs on the server's threads."""

    def __init__(self, default_answer: str = "The answer is in the first passage [1].") -> None:
        self._lock = threading.Lock()
        self._script: list[Reply] = []
        self._default = Reply("answer", text=default_answer)
        self._closing = threading.Event()
        self.requests: list[RecordedRequest] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ scripting

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _push(self, reply: Reply, times: int = 1) -> FakeOpenAI:
        with self._lock:
            self._script.extend([reply] * times)
        return self

    def answer(
        self, text: str, *, stream: bool | None = None, chunk_delay: float = 0.0
    ) -> FakeOpenAI:
        """Answer with `text`; it also becomes the reply once the script runs out."""
        reply = Reply("answer", text=text, stream=stream, chunk_delay=chunk_delay)
        with self._lock:
            self._default = reply
        return self._push(reply)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        message: str = "",
    ) -> FakeOpenAI:
        """Return HTTP `status` with an OpenAI-style error body (`message`) `times` times."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        reply = Reply("status", status=status, headers=headers, message=message)
        return self._push(reply, times)

    def stall(self, seconds: float, *, times: int = 1) -> FakeOpenAI:
        """Wait `seconds` before sending anything (the client should time out first)."""
        return self._push(Reply("stall", seconds=seconds), times)

    def malformed(self, *, stream: bool | None = None) -> FakeOpenAI:
        """Send a body (or an SSE data line) that is not JSON."""
        return self._push(Reply("malformed", stream=stream))

    def missing_fields(self, *, stream: bool | None = None) -> FakeOpenAI:
        """Send valid JSON without `choices`."""
        return self._push(Reply("missing", stream=stream))

    def drop_midway(self, text: str) -> FakeOpenAI:
        """Stream the first half of `text`, then cut the connection mid-body."""
        return self._push(Reply("drop", text=text, stream=True))

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ serving

    def _next(self) -> Reply:
        with self._lock:
            return self._script.pop(0) if self._script else self._default

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.requests.append(RecordedRequest(h.path, headers, body))
        reply = self._next()
        stream = bool(body.get("stream")) if reply.stream is None else reply.stream
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up first
            self._respond(h, reply, stream, body)

    def _respond(
        self, h: BaseHTTPRequestHandler, reply: Reply, stream: bool, body: dict[str, Any]
    ) -> None:
        if reply.kind == "stall":
            self._closing.wait(reply.seconds)
            reply = Reply("answer", text="Too late [1].")
        if reply.kind == "status":
            message = reply.message or f"fake error {reply.status}"
            error = {"error": {"message": message, "type": "server_error"}}
            self._send_json(h, reply.status, error, reply.headers)
            return
        if not stream:
            if reply.kind == "malformed":
                self._send_raw(h, 200, b'{"choices": [ {"message": ', "application/json")
            elif reply.kind == "missing":
                self._send_json(h, 200, {"id": "x", "object": "chat.completion"})
            else:
                self._send_json(h, 200, _completion(body, reply.text))
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if reply.kind == "malformed":
            self._chunk(h, _sse(_chunk_obj(body, {"role": "assistant", "content": ""})))
            self._chunk(h, b'data: {"choices": [{"delta": {"content": "Baku\n\n')
            self._end(h)
            return
        if reply.kind == "missing":
            self._chunk(h, _sse({"id": "x", "object": "chat.completion.chunk"}))
            self._chunk(h, b"data: [DONE]\n\n")
            self._end(h)
            return
        pieces = _words(reply.text)
        if reply.kind == "drop":
            pieces = pieces[: max(1, len(pieces) // 2)]
        self._chunk(h, _sse(_chunk_obj(body, {"role": "assistant", "content": ""})))
        for piece in pieces:
            if reply.chunk_delay:
                time.sleep(reply.chunk_delay)
            self._chunk(h, _sse(_chunk_obj(body, {"content": piece})))
        if reply.kind == "drop":
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)  # no terminating chunk: a broken body
            h.close_connection = True
            return
        self._chunk(h, _sse(_chunk_obj(body, {}, finish="stop")))
        self._chunk(h, b"data: [DONE]\n\n")
        self._end(h)

    @staticmethod
    def _chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
        h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        h.wfile.flush()

    @staticmethod
    def _end(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    @staticmethod
    def _send_raw(
        h: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def _send_json(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        obj: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_raw(h, status, json.dumps(obj).encode(), "application/json", headers)


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _chunk_obj(body: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> Any:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def fake_llm() -> Iterator[FakeOpenAI]:
    """A running fake OpenAI server for one test."""
    with FakeOpenAI() as fake:
        yield fake

"""The HTTP API end to end: a real uvicorn server on a loopback port, the real model and index."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator

import anyio
import httpx
import numpy as np
import pytest

from rag.assistant import Assistant
from rag.settings import Settings
from server.app import create_app
from server.batching import EmbeddingBatcher
from server.testing import live_server

pytestmark = pytest.mark.slow

QUESTION = "Who chairs the Arab Parliament?"


@pytest.fixture(scope="module")
def client(seeds_settings: Settings, assistant: Assistant) -> Iterator[httpx.Client]:
    with (
        live_server(create_app(seeds_settings, assistant)) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        yield c


def parse_sse(text: str) -> list[tuple[str, dict]]:
    """Events of a text/event-stream body as (event, parsed data)."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def fields_of(response: httpx.Response) -> set[str]:
    body = response.json()
    assert body["error"]["type"] == "validation_error"
    return {f["field"] for f in body["error"]["fields"]}


# --------------------------------------------------------------------------- questions


def test_ask_cites_exact_spans(client: httpx.Client) -> None:
    r = client.post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"]
    answer = r.json()
    assert not answer["abstained"]
    assert "Al-Asoumi" in answer["answer"]
    assert answer["citations"] and answer["passages"]
    assert set(answer["timings"]) >= {"embed", "retrieve", "answer", "total"}
    for c in answer["citations"]:
        doc = client.get(f"/v1/documents/{c['doc_id']}")
        assert doc.status_code == 200
        assert doc.json()["text"][c["start"] : c["end"]] == c["quote"]
        assert f"[{c['n']}]" in answer["answer"]


def test_search_ranks_passages(client: httpx.Client) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        r = client.post("/v1/search", json={"question": QUESTION, "mode": mode, "top_k": 2})
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["mode"] == mode
        passages = result["passages"]
        assert 1 <= len(passages) <= 2
        assert passages[0]["doc_id"] == "000_2e40f42646a43cae.txt"
        text = client.get(f"/v1/documents/{passages[0]['doc_id']}").json()["text"]
        assert text[passages[0]["start"] : passages[0]["end"]] == passages[0]["text"]
        assert [p["rank"] for p in passages] == list(range(1, len(passages) + 1))


def test_filters_restrict_documents(client: httpx.Client) -> None:
    other = "002_ada552b2d9cfc3c4.txt"
    r = client.post("/v1/search", json={"question": QUESTION, "filters": {"doc_ids": [other]}})
    assert r.status_code == 200
    assert {p["doc_id"] for p in r.json()["passages"]} == {other}


@pytest.mark.parametrize("how", ["body", "accept"])
def test_ask_streams_passages_deltas_done(client: httpx.Client, how: str) -> None:
    if how == "body":
        r = client.post("/v1/ask", json={"question": QUESTION, "stream": True})
    else:
        r = client.post(
            "/v1/ask", json={"question": QUESTION}, headers={"Accept": "text/event-stream"}
        )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "passages" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) >= 3
    assert events[0][1]["passages"]
    done = events[-1][1]
    assert "".join(data["text"] for kind, data in events if kind == "delta") == done["answer"]
    assert done["citations"] and done["timings"]["total"] > 0


def test_each_front_door_checks_the_question_once(
    client: httpx.Client, assistant: Assistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every route answers through `server.answering`, which checks the question once: not
    again in the assistant (nor in an answer process: `server.messages`)."""
    checked: list[str] = []
    check_question = assistant.check_question

    def counting(question: str) -> str:
        checked.append(question)
        return check_question(question)

    monkeypatch.setattr(assistant, "check_question", counting)
    chat = {"model": "rag-extractive", "messages": [{"role": "user", "content": QUESTION}]}
    requests = [
        ("POST", "/v1/ask", {"json": {"question": QUESTION}}),
        ("POST", "/v1/ask", {"json": {"question": QUESTION, "stream": True}}),
        ("POST", "/v1/search", {"json": {"question": QUESTION}}),
        ("GET", "/v1/timeline", {"params": {"q": QUESTION}}),
        ("POST", "/v1/chat/completions", {"json": chat}),
    ]
    for method, path, options in requests:
        checked.clear()
        r = client.request(method, path, **options)
        assert r.status_code == 200, (path, r.text)
        assert checked == [QUESTION], path


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({}, "question"),
        ({"question": QUESTION, "top_k": 0}, "top_k"),
        ({"question": QUESTION, "top_k": 51}, "top_k"),
        ({"question": QUESTION, "mode": "fuzzy"}, "mode"),
        ({"question": QUESTION, "answerer": "oracle"}, "answerer"),
        ({"question": QUESTION, "colour": "red"}, "colour"),
        ({"question": QUESTION, "filters": {"doc_idz": ["a"]}}, "filters.doc_idz"),
        ({"question": QUESTION, "filters": {"date_from": "yesterday"}}, "filters.date_from"),
    ],
)
def test_ask_rejects_bad_fields(client: httpx.Client, body: dict, field: str) -> None:
    r = client.post("/v1/ask", json=body)
    assert r.status_code == 422, r.text
    assert field in fields_of(r)


def test_search_rejects_ask_only_fields(client: httpx.Client) -> None:
    r = client.post("/v1/search", json={"question": QUESTION, "stream": True})
    assert r.status_code == 422
    assert fields_of(r) == {"stream"}


def test_malformed_json_is_422(client: httpx.Client) -> None:
    r = client.post(
        "/v1/ask", content=b'{"question": "unfinished', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert "malformed JSON" in r.json()["error"]["fields"][0]["reason"]


def test_oversized_body_is_413(client: httpx.Client) -> None:
    big = json.dumps({"question": "a" * (70 * 1024)}).encode()
    r = client.post("/v1/ask", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "payload_too_large"
    assert r.headers["x-request-id"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold on the stream
        yield b'{"question": "'
        for _ in range(70):
            yield b"a" * 1024
        yield b'"}'

    r = client.post("/v1/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


# --------------------------------------------------------------------------- documents


def test_documents_paging(client: httpx.Client) -> None:
    page = client.get("/v1/documents", params={"offset": 0, "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = client.get("/v1/documents", params={"offset": 2, "limit": 2}).json()
    ids = [d["id"] for d in page["items"] + rest["items"]]
    assert ids == sorted(ids) and len(set(ids)) == 3
    first = page["items"][0]
    assert set(first) == {
        "id", "title", "source", "date", "date_source", "dateline", "length", "sha256"
    }  # fmt: skip
    doc = client.get(f"/v1/documents/{first['id']}").json()
    assert len(doc["text"]) == first["length"] and doc["sha256"] == first["sha256"]
    assert client.get("/v1/documents", params={"limit": 0}).status_code == 422
    assert client.get("/v1/documents", params={"offset": -1}).status_code == 422


@pytest.mark.parametrize(
    "path",
    [
        "/v1/documents/no-such-article.txt",
        "/v1/documents/..%2F..%2Fetc%2Fpasswd",
        "/v1/documents/%2Fetc%2Fpasswd",
        "/v1/documents/seeds/000_2e40f42646a43cae.txt",
        "/v1/documents/../pyproject.toml",
    ],
)
def test_unknown_documents_are_404(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found"
    assert "root:" not in r.text and "[project]" not in r.text


# --------------------------------------------------------------------------- operations


def test_health_ready_metrics(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["documents"] == 3 and ready.json()["chunks"] > 0
    assert ready.json()["index_version"]
    client.post("/v1/ask", json={"question": QUESTION})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'rag_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text
    assert 'rag_http_request_duration_seconds_bucket{le="0.5",route="/v1/ask"}' in text
    assert "rag_index_documents 3.0" in text
    assert "rag_index_last_rebuild_success" in text


def test_every_response_has_a_request_id(client: httpx.Client) -> None:
    for r in (
        client.get("/health"),
        client.get("/no/such/route"),
        client.post("/v1/ask", json={}),
        client.get("/openapi.json"),
    ):
        assert len(r.headers["x-request-id"]) >= 8
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )


def test_docs_and_page(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/ask", "/v1/search", "/v1/documents", "/v1/index/rebuild"} <= set(paths)
    assert "/v1/ask" in client.get("/").text


# --------------------------------------------------------------------------- rebuild auth


def _wait_rebuilt(c: httpx.Client) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = c.get("/v1/index/status").json()
        if status["completed"] and not status["running"]:
            return status
        time.sleep(0.1)
    raise AssertionError("rebuild did not finish")


def test_rebuild_requires_the_token(seeds_settings: Settings, assistant: Assistant) -> None:
    settings = seeds_settings.with_overrides(admin_token="s3cret-token")
    with (
        live_server(create_app(settings, assistant)) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        assert c.post("/v1/index/rebuild").status_code == 401
        wrong = c.post("/v1/index/rebuild", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "unauthorized"
        basic = c.post("/v1/index/rebuild", headers={"Authorization": "Basic s3cret-token"})
        assert basic.status_code == 401
        ok = c.post("/v1/index/rebuild", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 202 and ok.json()["status"] in ("started", "queued")
        status = _wait_rebuilt(c)
        assert status["last"]["ok"] is True
        assert status["last"]["report"]["reason"] == "up to date"
        assert "rag_index_last_rebuild_success 1.0" in c.get("/metrics").text


def test_rebuild_without_token_is_loopback_only(
    seeds_settings: Settings, assistant: Assistant
) -> None:
    app = create_app(seeds_settings, assistant)
    remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))

    async def from_elsewhere() -> None:
        async with httpx.AsyncClient(transport=remote, base_url="http://api") as c:
            r = await c.post("/v1/index/rebuild")
            assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"

    anyio.run(from_elsewhere)
    with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        assert c.post("/v1/index/rebuild").status_code == 202
        assert _wait_rebuilt(c)["last"]["ok"] is True


# --------------------------------------------------------------------------- failures


def test_unexpected_errors_leak_nothing(
    seeds_settings: Settings, assistant: Assistant, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot whose FAISS index is gone (retrieval fails) and one whose sentence vectors have
    the wrong width (answering fails after the passages were streamed)."""
    snap = assistant.snapshot
    no_dense = dataclasses.replace(snap, dense=None)
    sentences = dataclasses.replace(
        snap.data.sentences, vectors=np.zeros((len(snap.data.sentences.doc_ids), 7), np.float16)
    )
    bad_sentences = dataclasses.replace(
        snap, data=dataclasses.replace(snap.data, sentences=sentences)
    )

    broken = Assistant(seeds_settings, no_dense, assistant.embedder)
    with (
        live_server(create_app(seeds_settings, broken)) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        r = c.post("/v1/ask", json={"question": QUESTION, "mode": "dense"})
        assert r.status_code == 500
        rid = r.headers["x-request-id"]
        assert r.json() == {
            "error": {"type": "internal_error", "message": "internal error", "request_id": rid}
        }
        assert "NoneType" not in r.text and "Traceback" not in r.text
        assert any(rid in rec.getMessage() and rec.exc_info for rec in caplog.records)
        assert c.get("/health").status_code == 200  # the server lives on

    broken = Assistant(seeds_settings, bad_sentences, assistant.embedder)
    with (
        live_server(create_app(seeds_settings, broken)) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        r = c.post("/v1/ask", json={"question": QUESTION, "stream": True})
        assert r.status_code == 200  # the stream had started: the failure is an event
        events = parse_sse(r.text)
        assert [kind for kind, _ in events] == ["passages", "error"]
        error = events[-1][1]["error"]
        assert error["type"] == "internal_error" and error["message"] == "internal error"
        assert "shapes" not in r.text and "Traceback" not in r.text


def test_not_ready_until_loaded(fresh_corpus: Settings) -> None:
    """Without an assistant the app loads in the background; until then questions get 503."""
    app = create_app(fresh_corpus)
    transport = httpx.ASGITransport(app=app)  # no lifespan here: it never finishes loading

    async def probe() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            assert (await c.get("/health")).status_code == 200
            ready = await c.get("/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "loading"
            r = await c.post("/v1/ask", json={"question": QUESTION})
            assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable"

    anyio.run(probe)


def test_cors_is_off_by_default_and_configurable(
    seeds_settings: Settings, assistant: Assistant
) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }

    async def check(app: object, allowed: bool) -> None:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            r = await c.options("/v1/ask", headers=preflight)
            got = r.headers.get("access-control-allow-origin")
            assert (got == "https://app.example") is allowed

    anyio.run(check, create_app(seeds_settings, assistant), False)
    cors = seeds_settings.with_overrides(cors_origins=["https://app.example"])
    anyio.run(check, create_app(cors, assistant), True)


# --------------------------------------------------------------------------- batching


def _embed_batches(client: httpx.Client) -> float:
    """How many model calls the batcher has made (`rag_embed_batch_size_count`)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("rag_embed_batch_size_count"):
            return float(line.split()[-1])
    return 0.0


def test_concurrent_questions_answer_as_alone(client: httpx.Client) -> None:
    """16 questions at once get the answers each gets alone. The default engine embeds one
    text per call, so its questions skip the batcher and are embedded on the CPU pool."""
    questions = [
        QUESTION,
        "Where did Al-Asoumi meet Sahiba Gafarova?",
        "Who heads Azerbaijan's National Assembly?",
        "What did the Arab Parliament call on NAM to do?",
    ] * 4
    alone = {q: client.post("/v1/ask", json={"question": q}).json() for q in set(questions)}
    before = _embed_batches(client)

    async def together() -> list[dict]:
        async with httpx.AsyncClient(base_url=str(client.base_url), timeout=60) as c:
            rs = await asyncio.gather(*(c.post("/v1/ask", json={"question": q}) for q in questions))
        return [r.json() for r in rs]

    for q, got in zip(questions, anyio.run(together), strict=True):
        want = alone[q]
        assert (got["answer"], got["citations"], got["short_answer"]) == (
            want["answer"], want["citations"], want["short_answer"]
        )  # fmt: skip
        assert got["timings"]["embed"] > 0
    assert _embed_batches(client) == before  # onnx-int8: no batch was formed


def test_the_server_answers_with_query_threads(fresh_corpus: Settings) -> None:
    """`open_assistant` builds a missing index with `threads` (all cores) but embeds questions
    with `query_threads` (one by default), and the two settings stay apart."""
    from rag.embedding import pin_threads
    from rag.index import store
    from server.runtime import open_assistant

    try:
        assistant = open_assistant(fresh_corpus.with_overrides(threads=2))
        assert store.current_version(fresh_corpus.index_dir) is not None  # built at startup
        assert assistant.settings.query_threads == 1 and assistant.settings.cpu_threads() == 1
        answer = assistant.ask(QUESTION)
        assert not answer.abstained and "Al-Asoumi" in answer.answer
        assert Settings(query_threads=0).with_overrides(threads=0).cpu_threads() >= 1
    finally:
        pin_threads(Settings().cpu_threads())  # later tests build with the usual threads


def test_concurrent_questions_share_one_model_call() -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        time.sleep(0.05)  # a model call takes a while; meanwhile more questions arrive
        return np.array([[float(len(t)), 1.0] for t in texts], np.float32)

    batcher = EmbeddingBatcher(embed, max_wait_ms=20, max_batch=4)

    async def run() -> list[np.ndarray]:
        return list(await asyncio.gather(*(batcher.embed("q" * n) for n in range(1, 11))))

    vectors = anyio.run(run)
    assert [v[0] for v in vectors] == list(range(1, 11))  # each caller gets its own row
    assert sorted(len(c) for c in calls) == [2, 4, 4]  # 10 questions, batches of at most 4
    assert len(calls) == 3


def test_a_failed_batch_fails_its_callers_only() -> None:
    def embed(texts: list[str]) -> np.ndarray:
        if "boom" in texts:
            raise RuntimeError("model exploded")
        return np.ones((len(texts), 2), np.float32)

    batcher = EmbeddingBatcher(embed, max_wait_ms=0)

    async def run() -> None:
        with pytest.raises(RuntimeError):
            await batcher.embed("boom")
        assert (await batcher.embed("fine")).shape == (2,)

    anyio.run(run)

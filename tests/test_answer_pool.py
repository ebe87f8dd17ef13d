"""Answer processes (`RAG_ANSWER_PROCESSES`): questions answered in worker processes.

Real processes (spawned, each loading the model and the index), a real uvicorn on loopback: the
answers are the ones the server itself gives, a rebuild reaches the workers, a worker killed
mid-load costs no request, errors keep their HTTP status, and nothing outlives the server.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.errors import QuestionError, RagError
from rag.index import store
from rag.index.indexing import build_index
from rag.models import BuildReport, Query, SearchQuery
from rag.settings import Settings
from server.answer_pool import (
    AUTO_MAX_CHUNKS,
    AnswerPool,
    AnswerProcessError,
    pool_size,
    result_of,
)
from server.app import create_app
from server.messages import (
    AskMessage,
    Built,
    Crash,
    Failure,
    LoadFailed,
    Ready,
    Result,
    SearchMessage,
    TimelineMessage,
    decode,
    encode,
)
from server.testing import live_server
from tests.test_hot_swap import ADDED, NEW_ID, NEW_QUESTION, SEED_QUESTIONS

pytestmark = pytest.mark.slow

QUESTIONS = [
    *SEED_QUESTIONS,
    "Who heads the National Assembly of Azerbaijan?",
    "How many moons does the Zorbian planet have?",  # abstains
]


@contextmanager
def pooled_server(settings: Settings, processes: int = 2) -> Iterator[tuple[str, AnswerPool]]:
    app = create_app(settings.with_overrides(answer_processes=processes))
    with live_server(app, ready_timeout=240) as base:
        pool = app.state.runtime.pool
        assert pool is not None and pool.live == processes
        yield base, pool


def _answer_processes() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name == "rag-answer"]


def _without_timings(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "timings"}


def test_answer_processes_answer_as_the_server_itself(
    seeds_settings: Settings, assistant: Assistant
) -> None:
    with pooled_server(seeds_settings) as (base, pool), httpx.Client(base_url=base) as client:
        assert client.get("/ready").json()["answer_processes"] == 2
        assert len(_answer_processes()) == 2
        for q in QUESTIONS:
            got = client.post("/v1/ask", json={"question": q})
            assert got.status_code == 200, got.text
            want = assistant.ask(q).model_dump(mode="json")
            assert _without_timings(got.json()) == _without_timings(want), q
            found = client.post("/v1/search", json={"question": q, "top_k": 3, "mode": "bm25"})
            want = assistant.search(q, top_k=3, mode="bm25").model_dump(mode="json")
            assert _without_timings(found.json()) == _without_timings(want), q
            events = client.get("/v1/timeline", params={"q": q, "top_k": 5})
            want = assistant.timeline(q, top_k=5).model_dump(mode="json")
            assert _without_timings(events.json()) == _without_timings(want), q
        assert pool.answered == 3 * len(QUESTIONS)  # none fell back to the HTTP process
        # a user mistake is still the same 422, whoever would have answered
        long = client.post("/v1/ask", json={"question": "x" * 5000})
        assert long.status_code == 422 and long.json()["error"]["fields"][0]["field"] == "question"
    assert _answer_processes() == []  # stopped with the server


def test_chat_completions_are_answered_by_answer_processes(
    seeds_settings: Settings, assistant: Assistant
) -> None:
    """The OpenAI-compatible route's extractive answers, a follow-up included (retrieved with
    the turn before it), are the in-process server's, computed by an answer process."""
    conversation = [  # "Who said so?" alone has no answer in the articles; after this, it has
        {"role": "user", "content": "What is happening in Gaza according to the statement?"},
        {"role": "assistant", "content": "The statement discussed current developments."},
        {"role": "user", "content": "Who said so?"},
    ]
    bodies = [
        {"model": "rag-extractive", "messages": conversation[:1]},
        {"model": "rag-extractive", "messages": conversation},
    ]

    def content(data: dict[str, Any]) -> tuple[Any, ...]:
        return data["choices"][0]["message"]["content"], data["citations"], data["abstained"]

    with live_server(create_app(seeds_settings, assistant)) as base:
        want = [content(httpx.post(f"{base}/v1/chat/completions", json=b).json()) for b in bodies]
    with pooled_server(seeds_settings) as (base, pool):
        got = [content(httpx.post(f"{base}/v1/chat/completions", json=b).json()) for b in bodies]
        assert pool.answered == len(bodies)
    assert got == want
    assert not got[1][2] and got[1][1]  # the follow-up was retrieved with its context


def test_mcp_tools_are_answered_by_answer_processes(
    seeds_settings: Settings, assistant: Assistant
) -> None:
    """The MCP tools at `/mcp` take the same path as the HTTP routes (`server.answering`):
    their questions are answered by the answer processes, with the same results."""
    from mcp import Client

    question = SEED_QUESTIONS[0]

    async def call(base: str) -> list[dict[str, Any]]:
        async with Client(f"{base}/mcp", read_timeout_seconds=120) as client:
            results = [
                await client.call_tool("ask", {"question": question}),
                await client.call_tool("search_articles", {"question": question, "top_k": 3}),
                await client.call_tool("timeline", {"question": question, "top_k": 5}),
            ]
        assert not any(r.is_error for r in results), results
        return [_without_timings(r.structured_content or {}) for r in results]

    with pooled_server(seeds_settings) as (base, pool):
        got = anyio.run(call, base)
        assert pool.answered == 3
    with live_server(create_app(seeds_settings, assistant)) as base:
        want = anyio.run(call, base)
    assert got == want


def test_a_killed_answer_process_costs_no_request(seeds_settings: Settings) -> None:
    """SIGKILL one worker while 8 clients ask: the questions it held are answered by the HTTP
    process, a new worker starts, and every request gets its answer."""
    with pooled_server(seeds_settings) as (base, pool):
        errors: list[str] = []
        answered: list[int] = []

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:

                async def ask(n: int, until: float) -> None:
                    while time.monotonic() < until:
                        q = QUESTIONS[n % len(QUESTIONS)]
                        r = await client.post("/v1/ask", json={"question": q})
                        if r.status_code != 200 or r.json()["question"] != q:
                            errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        answered.append(n)

                async def kill() -> None:
                    await anyio.sleep(1.0)
                    victim = _answer_processes()[0]
                    assert victim.pid is not None
                    os.kill(victim.pid, signal.SIGKILL)

                until = time.monotonic() + 4
                async with anyio.create_task_group() as tg:
                    for n in range(8):
                        tg.start_soon(ask, n, until)
                    tg.start_soon(kill)

        anyio.run(scenario)
        assert not errors, errors[:5]
        assert len(answered) > 50
        deadline = time.monotonic() + 120
        while pool.live < 2:  # the replacement loads
            assert time.monotonic() < deadline, "no new answer process"
            time.sleep(0.2)
        assert pool.restarts == 1
        before = pool.answered
        r = httpx.post(f"{base}/v1/ask", json={"question": QUESTIONS[0]}, timeout=30)
        assert r.status_code == 200 and pool.answered == before + 1


def test_answer_processes_follow_a_rebuild(fresh_corpus: Settings, embedder: Embedder) -> None:
    """Another process rebuilds the index: once the server reports the new version, the
    answer processes answer from it (each question carries the version it expects)."""
    build_index(fresh_corpus, embedder=embedder, progress=False)
    with pooled_server(fresh_corpus) as (base, pool), httpx.Client(base_url=base) as client:
        before = client.post("/v1/ask", json={"question": NEW_QUESTION}).json()
        assert all(c["doc_id"] != NEW_ID for c in before["citations"])
        (fresh_corpus.seeds_dir / NEW_ID).write_text(ADDED)
        report = build_index(fresh_corpus, embedder=embedder, progress=False)
        deadline = time.monotonic() + 30
        while client.get("/ready").json()["index_version"] != report.version:
            assert time.monotonic() < deadline, "the server kept the old version"
            time.sleep(0.05)
        answered = pool.answered
        for _ in range(4):  # whichever worker gets it
            after = client.post("/v1/ask", json={"question": NEW_QUESTION}).json()
            cited = [c for c in after["citations"] if c["doc_id"] == NEW_ID]
            assert cited and "Kestrel-9" in " ".join(c["quote"] for c in cited), after
        assert pool.answered == answered + 4
    assert store.current_version(fresh_corpus.index_dir) == report.version


def test_worker_errors_keep_their_kind() -> None:
    """A worker's reply decodes to its result or to the error it stands for."""
    assert result_of(encode(Result(b'{"a": 1}'))) == b'{"a": 1}'
    with pytest.raises(QuestionError) as exc:
        result_of(encode(Failure.of(QuestionError("too long", field="question"))))
    assert str(exc.value) == "too long" and exc.value.field == "question"
    with pytest.raises(RagError, match="odd"):  # an unknown or non-RagError name: a RagError
        result_of(encode(Failure("SystemExit", "odd")))
    with pytest.raises(AnswerProcessError):
        result_of(encode(Crash()))


def test_messages_survive_the_pipe_encoding() -> None:
    """Every message decodes to what was encoded; a question arrives checked (the server
    checked it), so the answer process does not check it again."""
    query = Query(question="Who chairs", top_k=3, answerer="extractive").mark_checked()
    search = SearchQuery(question="Gafarova", mode="bm25").mark_checked()
    report = BuildReport(version="v1", full_rebuild=True, reason="rebuild requested", chunks=3)
    messages = [
        AskMessage("v1", query, "the turn before it"),
        SearchMessage("v2", search),
        TimelineMessage("v3", search),
        Ready(),
        LoadFailed("no index"),
        Result(b'{"answer": "x"}'),
        Failure("QuestionError", "too long", "q"),
        Crash(),
        Built(report),
    ]
    for message in messages:
        again = decode(encode(message))
        assert again == message, message  # a query's `checked` included


def test_auto_starts_answer_processes_only_where_they_help(tmp_path: Any) -> None:
    base = Settings(seeds_dir=tmp_path / "seeds", index_dir=tmp_path / "index")
    cores = len(os.sched_getaffinity(0))
    assert pool_size(base) == (min(cores, 4) if cores > 1 else 0)
    assert pool_size(base.with_overrides(answer_processes=3)) == 3
    assert pool_size(base.with_overrides(answer_processes=0)) == 0
    assert pool_size(base.with_overrides(workers=2)) == 0  # those processes are the parallelism
    assert pool_size(base.with_overrides(embed_backend="torch")) == 0  # batched in-process
    lite = base.with_overrides(store="milvus", answer_processes=2)
    assert pool_size(lite) == 0  # a Milvus Lite file opens in one process only


def test_auto_starts_none_for_a_large_index(seeds_settings: Settings, tmp_path: Any) -> None:
    """Each answer process holds its own copy of the index's tables: above AUTO_MAX_CHUNKS
    (read from the live version's manifest) auto starts none; an explicit number still counts."""
    live = store.version_path(seeds_settings.index_dir)[1]
    big = tmp_path / "index"
    version = big / "versions" / live.name
    version.mkdir(parents=True)
    manifest = json.loads((live / "manifest.json").read_text())
    assert 0 < manifest["counts"]["chunks"] <= AUTO_MAX_CHUNKS
    seeds = seeds_settings.with_overrides(index_dir=live.parent.parent)
    cores = len(os.sched_getaffinity(0))
    assert pool_size(seeds) == (min(cores, 4) if cores > 1 else 0)
    manifest["counts"]["chunks"] = AUTO_MAX_CHUNKS + 1
    (version / "manifest.json").write_text(json.dumps(manifest))
    (big / "CURRENT").write_text(live.name)
    large = seeds_settings.with_overrides(index_dir=big)
    assert pool_size(large) == 0
    assert pool_size(large.with_overrides(answer_processes=2)) == 2

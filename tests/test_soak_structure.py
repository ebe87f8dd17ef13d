"""Memory structure under a stream of novel questions, on a real server (the soak's CI stand-in).

An hour-long soak does not fit CI and RSS thresholds are noisy there, so this asserts what makes
memory flat instead: after thousands of never-seen questions (more distinct words than the stem
cache holds), SSE streams dropped mid-way, requests with made-up methods and paths, and two hot
swaps, every cache is within its stated bound, the Prometheus request series stay a fixed set,
no request state is left queued, and no index version older than the live one is still
referenced anywhere in the process (weak references, after `gc.collect()`).
"""

from __future__ import annotations

import gc
import random
import string
import time
import weakref
from pathlib import Path

import anyio
import httpx
import pytest

from rag.answer import short_answer
from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.index.indexing import build_index
from rag.memory import SNAPSHOTS_BOUND, UNBOUNDED
from rag.retrieve import lexical, retrieval
from rag.settings import Settings
from server.app import create_app
from server.metrics import METHODS
from server.runtime import Runtime
from server.testing import live_server

pytestmark = pytest.mark.slow

CLIENTS = 8
WORDS_PER_QUESTION = 60  # 600 characters: well under the question limit
SEARCHES = lexical.STEM_CACHE // WORDS_PER_QUESTION + 200  # more novel words than the bound
ASKS = 200
STREAMS = 60  # a third of them hang up after the first event


def novel_question(rng: random.Random) -> str:
    words = ("".join(rng.choices(string.ascii_lowercase, k=9)) for _ in range(WORDS_PER_QUESTION))
    return "what about " + " ".join(words) + "?"


async def drive(base: str, rng: random.Random, scale: float = 1.0) -> list[str]:
    """Novel questions (thousands at scale 1) from CLIENTS concurrent clients; the failures."""
    errors: list[str] = []
    jobs = (
        [("search", novel_question(rng)) for _ in range(int(SEARCHES * scale))]
        + [("ask", novel_question(rng)[: rng.randint(20, 240)]) for _ in range(int(ASKS * scale))]
        + [("stream", novel_question(rng)[: rng.randint(20, 240)]) for _ in range(STREAMS)]
    )
    rng.shuffle(jobs)
    limits = httpx.Limits(max_connections=CLIENTS + 4)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one(kind: str, q: str, n: int) -> None:
            if kind == "search":
                r = await client.post("/v1/search", json={"question": q, "mode": "bm25"})
            elif kind == "ask":
                r = await client.post("/v1/ask", json={"question": q})
            else:
                body = {"question": q, "stream": True}
                async with client.stream("POST", "/v1/ask", json=body) as r:
                    async for line in r.aiter_lines():
                        if n % 3 == 0 and line.startswith("event: passages"):
                            break  # hang up mid-stream
                        if line.startswith("event: error"):
                            errors.append(f"stream error for {q!r}")
            if r.status_code != 200:
                errors.append(f"{kind} {q!r}: HTTP {r.status_code}")

        async def worker(n: int) -> None:
            while jobs:
                kind, q = jobs.pop()
                await one(kind, q, n + len(jobs))

        async with anyio.create_task_group() as tg:
            for n in range(CLIENTS):
                tg.start_soon(worker, n)
        for n in range(40):  # made-up methods and paths must not create new metric series
            path = "/" + "".join(rng.choices(string.ascii_lowercase, k=12))
            await client.request("PURGE" if n % 2 else f"X{n}", path)
            await client.get(path)
    return errors


async def swap(base: str, runtime: Runtime, seeds_dir: Path, k: int) -> None:
    (seeds_dir / f"soak-{k}.txt").write_text(
        f"Soak edition {k}\n\nThe Zorbian council met {k} times this spring to discuss the "
        f"harbour. Councillor Vell proposed {k + 2} new piers and a lighthouse.\n"
    )
    old = runtime.assistant.snapshot.version  # type: ignore[union-attr]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        assert (await client.post("/v1/index/rebuild")).status_code == 202
        deadline = time.monotonic() + 90
        while True:
            st = (await client.get("/v1/index/status")).json()
            if st["serving_version"] != old and not st["running"] and not st["queued"]:
                assert st["last"]["ok"], st["last"]
                return
            assert time.monotonic() < deadline, st
            await anyio.sleep(0.1)


def test_caches_stay_bounded_and_swapped_out_versions_are_freed(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    build_index(fresh_corpus, embedder=embedder, progress=False)
    short_answer._packed.cache_clear()  # process-wide: other tests' corpora filled it before
    assistant = Assistant.open(settings=fresh_corpus, embedder=embedder)
    app = create_app(fresh_corpus, assistant)
    runtime: Runtime = app.state.runtime
    rng = random.Random(16)
    old_refs: list[weakref.ref[retrieval.Snapshot]] = []
    with live_server(app) as base:

        async def scenario() -> list[str]:
            errors = await drive(base, rng)
            for k in (1, 2):
                old_refs.append(weakref.ref(assistant.snapshot))
                await swap(base, runtime, fresh_corpus.seeds_dir, k)
                errors += await drive(base, random.Random(k), scale=0.1)
            return errors

        errors = anyio.run(scenario)
        metrics_text = httpx.get(f"{base}/metrics").text
        stats = runtime.cache_stats()
        waiting = runtime.batcher.waiting  # type: ignore[union-attr]
        routes = set(app.openapi()["paths"]) | {"/", "/openapi.json", "/docs", "<unmatched>"}
        labels = [
            s.labels for m in runtime.metrics.requests.collect() for s in m.samples if s.labels
        ]

    assert not errors, errors[:5]
    # every cache has a finite bound and is within it; the stem cache really was pushed to it
    for name, st in stats.items():
        assert st.bound < UNBOUNDED, f"{name} has no bound"
        assert st.within_bound, f"{name}: {st.size} entries > bound {st.bound}"
    assert stats["lexical.stem"].size == stats["lexical.stem"].bound == lexical.STEM_CACHE
    # the term cache is keyed by the snapshot's sentences, not by questions
    sentences = len(assistant.snapshot.data.sentences.doc_ids)
    assert stats["snapshot.sentence_terms"].size <= sentences
    # short-answer layouts are keyed by sentence text (articles are only added here, so every
    # sentence ever answered from is one of the live snapshot's)
    assert stats["short_answer.layout"].size <= sentences
    # no request left anything behind; no old index version is referenced any more
    assert waiting == 0
    assert stats["rebuilds.pending"].size == 0
    # freed by reference counting alone (the server never runs gc.collect() on a swap) ...
    assert [r() for r in old_refs] == [None, None], "a swapped-out snapshot is still referenced"
    gc.collect()
    live = assistant.snapshot.version
    assert retrieval.loaded_versions(fresh_corpus.index_dir) == [live]
    assert stats["snapshots.loaded"].bound == SNAPSHOTS_BOUND
    # per-snapshot tables (dates, by every question's time scope) went with their snapshots
    assert stats["time_scope.tables"].size == 1
    assert stats["time_scope.tables"].bound == SNAPSHOTS_BOUND
    # request metrics: route templates and HTTP verbs only, however odd the requests were
    assert {lab["route"] for lab in labels} <= routes
    assert {lab["method"] for lab in labels} <= METHODS | {"OTHER"}
    assert 'rag_cache_entries{cache="lexical.stem"}' in metrics_text

"""Many servers, one index: two `rag serve` processes (stateless replicas) over one index folder.

A third process — this test — rebuilds the index (an article is added) while clients keep
asking both replicas. Not one request may fail, and both end up answering from the new version
(each notices the new CURRENT on its own and swaps it in).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import anyio
import httpx
import pytest

from rag.embedding import Embedder
from rag.index import store
from rag.index.indexing import build_index
from rag.settings import Settings
from server.testing import wait_until_ready
from tests.conftest import ROOT
from tests.test_hot_swap import ADDED, NEW_ID, NEW_QUESTION, SEED_QUESTIONS

pytestmark = pytest.mark.slow
CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def replica(settings: Settings, *extra: str) -> Iterator[str]:
    """`rag serve` in its own process on a free loopback port; stopped when the block ends."""
    port = _free_port()
    args = ["serve", "--port", str(port), "--index", str(settings.index_dir), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAG_WATCH": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", *args, "--seeds", str(settings.seeds_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                wait_until_ready(base, max(1.0, deadline - time.monotonic()))
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "replica did not start"
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_two_replicas_pick_up_a_rebuild_with_zero_failed_requests(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    build_index(fresh_corpus, embedder=embedder, progress=False)
    old = store.current_version(fresh_corpus.index_dir)
    with ExitStack() as stack:
        bases = [stack.enter_context(replica(fresh_corpus)) for _ in range(2)]
        errors: list[str] = []
        sent = [0]
        done = [False]

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=30) as client:

                async def worker(n: int) -> None:
                    questions = [*SEED_QUESTIONS, NEW_QUESTION]
                    while not done[0]:
                        base, q = bases[n % 2], questions[sent[0] % len(questions)]
                        sent[0] += 1
                        try:
                            r = await client.post(f"{base}/v1/ask", json={"question": q})
                            if r.status_code != 200:
                                errors.append(f"{base} {q!r}: HTTP {r.status_code}")
                        except httpx.HTTPError as exc:
                            errors.append(f"{base} {q!r}: {exc!r}")

                async def rebuild() -> None:
                    await anyio.sleep(1.0)
                    (fresh_corpus.seeds_dir / NEW_ID).write_text(ADDED)
                    report = await anyio.to_thread.run_sync(
                        lambda: build_index(fresh_corpus, embedder=embedder, progress=False)
                    )
                    deadline = time.monotonic() + 60
                    for base in bases:
                        while (await client.get(f"{base}/ready")).json()[
                            "index_version"
                        ] != report.version:
                            assert time.monotonic() < deadline, f"{base} kept the old version"
                            await anyio.sleep(0.1)
                    for base in bases:
                        r = await client.post(f"{base}/v1/ask", json={"question": NEW_QUESTION})
                        cited = [c for c in r.json()["citations"] if c["doc_id"] == NEW_ID]
                        assert cited and "Kestrel-9" in " ".join(c["quote"] for c in cited)
                    await anyio.sleep(0.5)  # keep the load on the new version a moment
                    done[0] = True

                async with anyio.create_task_group() as tg:
                    for n in range(CLIENTS):
                        tg.start_soon(worker, n)
                    await rebuild()

        anyio.run(scenario)
    assert store.current_version(fresh_corpus.index_dir) != old
    assert not errors, errors[:5]
    assert sent[0] >= 2 * CLIENTS


def test_workers_share_one_port_and_all_pick_up_a_rebuild(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    """`rag serve --workers 2` with no index yet: the index is built once, two worker processes
    answer on one port (each says which it is in /ready), and a rebuild by another process
    reaches both while clients keep asking, with not one failed request."""
    assert store.current_version(fresh_corpus.index_dir) is None
    with replica(fresh_corpus, "--workers", "2") as base:
        versions = [p for p in (fresh_corpus.index_dir / "versions").iterdir() if p.name[0] == "v"]
        assert len(versions) == 1  # built once, not once per worker
        errors: list[str] = []
        seen: dict[int, str] = {}  # worker pid -> index version it reported last

        async def scenario() -> None:
            limits = httpx.Limits(max_keepalive_connections=0)  # a new connection per request
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

                async def poll(until: float) -> None:
                    while time.monotonic() < until:
                        try:
                            r = await client.get("/ready")
                            seen[r.json()["worker"]] = r.json()["index_version"]
                            r = await client.post("/v1/ask", json={"question": NEW_QUESTION})
                            if r.status_code != 200:
                                errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        except httpx.HTTPError as exc:
                            errors.append(repr(exc))

                async with anyio.create_task_group() as tg:
                    for _ in range(CLIENTS):
                        tg.start_soon(poll, time.monotonic() + 4)
                assert len(seen) == 2, seen  # both workers answered
                (fresh_corpus.seeds_dir / NEW_ID).write_text(ADDED)
                report = await anyio.to_thread.run_sync(
                    lambda: build_index(fresh_corpus, embedder=embedder, progress=False)
                )
                deadline = time.monotonic() + 60
                while set(seen.values()) != {report.version}:
                    assert time.monotonic() < deadline, f"a worker kept the old version: {seen}"
                    async with anyio.create_task_group() as tg:
                        for _ in range(CLIENTS):
                            tg.start_soon(poll, time.monotonic() + 0.5)

        anyio.run(scenario)
    assert not errors, errors[:5]


def test_workers_refuse_watch(fresh_corpus: Settings) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    args = ["serve", "--workers", "2", "--watch", "--port", str(_free_port())]
    paths = ["--seeds", str(fresh_corpus.seeds_dir), "--index", str(fresh_corpus.index_dir)]
    r = subprocess.run(
        [sys.executable, "-m", "server.cli", *args, *paths],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "--watch needs a single worker" in r.stderr

"""Hot swap under load: articles are added, changed and deleted while questions keep coming.

A real server with `watch=True` over a writable copy of the seeds (it builds its own index at
startup). Sixteen clients ask questions the whole time; not one request may fail, and once
/v1/index/status reports the rebuild done, answers reflect the articles as they now are.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest

from rag.settings import Settings
from server.app import create_app
from server.testing import live_server

pytestmark = pytest.mark.slow

NEW_ID = "zorbian.txt"
NEW_QUESTION = "Which satellite did the Zorbian Space Agency launch?"
ADDED = (
    "Zorbian Space Agency launches Kestrel-9\n\n"
    "The Zorbian Space Agency launched the satellite Kestrel-9 on 3 March 2031 from the Vell "
    "spaceport. Kestrel-9 will map the ice caps of the Zorbian highlands for five years.\n"
)
CHANGED = ADDED.replace("Kestrel-9", "Kestrel-10").replace("3 March 2031", "5 May 2032")
SEED_QUESTIONS = [
    "Who chairs the Arab Parliament?",
    "What did the Arab Parliament call on the Non-Aligned Movement to do?",
    "Where did the meeting with Sahiba Gafarova take place?",
]
CLIENTS = 16
MIN_REQUESTS = 300
MAX_REQUESTS = 1500
DEADLINE_S = 50


@dataclass
class Load:
    texts: dict[str, str]  # seed document texts, to check every seed citation exactly
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    finished_changes: bool = False
    sent_during_changes: int = 0

    def want_more(self, t_end: float) -> bool:
        if self.sent >= MAX_REQUESTS or time.monotonic() > t_end:
            return False
        return not self.finished_changes or self.sent < MIN_REQUESTS

    def check(self, question: str, r: httpx.Response) -> None:
        if r.status_code != 200:
            self.errors.append(f"{question!r}: HTTP {r.status_code} {r.text[:200]}")
            return
        answer = r.json()
        if answer["question"] != question or not isinstance(answer["answer"], str):
            self.errors.append(f"{question!r}: malformed answer {answer}")
        for c in answer["citations"]:
            if c["doc_id"] == NEW_ID:
                ok = any(c["quote"] == t[c["start"] : c["end"]] for t in (ADDED, CHANGED))
            else:
                ok = self.texts[c["doc_id"]][c["start"] : c["end"]] == c["quote"]
            if not ok:
                self.errors.append(f"{question!r}: citation {c} is not an exact span")
        if question in SEED_QUESTIONS and (answer["abstained"] or not answer["citations"]):
            self.errors.append(f"{question!r}: no cited answer from the unchanged seeds")


async def ask(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    r = await client.post("/v1/ask", json={"question": question})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def wait_rebuilt(client: httpx.AsyncClient, after: int, sha256: str | None) -> int:
    """Until a rebuild newer than `after` finished, none is pending, and NEW_ID is as expected."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = (await client.get("/v1/index/status")).json()
        if status["completed"] > after and not status["running"] and not status["queued"]:
            assert status["last"]["ok"], status["last"]
            doc = await client.get(f"/v1/documents/{NEW_ID}")
            if sha256 is None and doc.status_code == 404:
                return int(status["completed"])
            if sha256 is not None and doc.status_code == 200 and doc.json()["sha256"] == sha256:
                return int(status["completed"])
        await anyio.sleep(0.05)
    raise AssertionError(f"the index did not catch up: {status}")


@pytest.mark.parametrize("store", ["faiss", "milvus"])
def test_answers_follow_article_changes_under_load(fresh_corpus: Settings, store: str) -> None:
    """Each store: FAISS, and Milvus Lite (in the server process; each rebuild writes only the
    changed article into the live collection while requests search the previous version)."""
    settings = fresh_corpus.with_overrides(watch=True, debounce_ms=200, store=store)
    seeds = settings.seeds_dir
    with live_server(create_app(settings), ready_timeout=120) as base:

        async def scenario() -> Load:
            limits = httpx.Limits(max_connections=CLIENTS + 2)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
                docs = (await client.get("/v1/documents")).json()["items"]
                texts = {
                    d["id"]: (await client.get(f"/v1/documents/{d['id']}")).json()["text"]
                    for d in docs
                }
                load = Load(texts)
                t_end = time.monotonic() + DEADLINE_S
                questions = [*SEED_QUESTIONS, NEW_QUESTION]

                async def worker(n: int) -> None:
                    while load.want_more(t_end):
                        q = questions[(load.sent + n) % len(questions)]
                        load.sent += 1
                        try:
                            load.check(q, await client.post("/v1/ask", json={"question": q}))
                        except httpx.HTTPError as exc:
                            load.errors.append(f"{q!r}: {exc!r}")

                async def change_articles() -> None:
                    status = (await client.get("/v1/index/status")).json()
                    assert status["watching"]
                    done = status["completed"]
                    before = await ask(client, NEW_QUESTION)
                    assert all(c["doc_id"] != NEW_ID for c in before["citations"])

                    (seeds / NEW_ID).write_text(ADDED)
                    done = await wait_rebuilt(client, done, _sha(ADDED))
                    added = await ask(client, NEW_QUESTION)
                    cited = [c for c in added["citations"] if c["doc_id"] == NEW_ID]
                    assert cited and any("Kestrel-9" in c["quote"] for c in cited), added

                    (seeds / NEW_ID).write_text(CHANGED)
                    done = await wait_rebuilt(client, done, _sha(CHANGED))
                    changed = await ask(client, NEW_QUESTION)
                    quotes = " ".join(c["quote"] for c in changed["citations"])
                    assert "Kestrel-10" in quotes and "Kestrel-9" not in quotes, changed

                    (seeds / NEW_ID).unlink()
                    await wait_rebuilt(client, done, None)
                    removed = await ask(client, NEW_QUESTION)
                    assert all(c["doc_id"] != NEW_ID for c in removed["citations"]), removed
                    load.sent_during_changes = load.sent
                    load.finished_changes = True

                async with anyio.create_task_group() as tg:
                    for n in range(CLIENTS):
                        tg.start_soon(worker, n)
                    await change_articles()
                return load

        load = anyio.run(scenario)
    assert load.finished_changes
    assert not load.errors, load.errors[:5]
    assert load.sent >= MIN_REQUESTS
    assert load.sent_during_changes >= 3 * CLIENTS  # the swaps really happened under load


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_failed_rebuild_keeps_the_old_index_serving(fresh_corpus: Settings) -> None:
    """Emptying the articles folder makes the rebuild fail (no articles); nothing else breaks."""
    with (
        live_server(create_app(fresh_corpus), ready_timeout=120) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        version = client.get("/ready").json()["index_version"]
        for path in fresh_corpus.seeds_dir.iterdir():
            path.unlink()
        assert client.post("/v1/index/rebuild").status_code == 202
        deadline = time.monotonic() + 30
        while (status := client.get("/v1/index/status").json())["completed"] < 1:
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert status["last"]["ok"] is False
        assert "no articles" in status["last"]["error"]
        assert status["serving_version"] == version
        assert "rag_index_last_rebuild_success 0.0" in client.get("/metrics").text
        answer = client.post("/v1/ask", json={"question": SEED_QUESTIONS[0]}).json()
        assert answer["citations"] and not answer["abstained"]

"""Copies of a story wired through builds, retrieval, answers and the HTTP API
(`rag.ingest.copies`):
real index builds over the seeds plus republished copies of them, the real model, a real
server. A story is returned once, with `also_in` naming its copies at exact offsets; builds
sign only what changed; an index built before copies were detected still loads."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from difflib import SequenceMatcher
from pathlib import Path

import httpx
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.index import store
from rag.index.indexing import build_index
from rag.ingest import near_duplicates as nd
from rag.ingest.copies import CopySigner
from rag.ingest.copy_record import groups_from, manifest_record
from rag.models import Answer, Document, Passage
from rag.retrieve.retrieval import Snapshot, dense_ranking
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server
from tests.conftest import ROOT, SEEDS, make_settings
from tests.test_near_duplicates import (
    BBC_CSV,
    BBC_DUPLICATES,
    DATED_COPIES,
    DATED_QA,
    KUNA,
    NAM,
    TASNIM,
)

TREND = "republished/trend-kuna.txt"  # KUNA's story under a Trend header (MENAFN)
HERALD = "republished/herald-tasnim.txt"  # Tasnim's, another headline and dateline, trimmed
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "eval" / "qa.jsonl").open()]


def _seed(name: str) -> str:
    return (SEEDS / name).read_text(encoding="utf-8")


def _body(text: str) -> str:
    return text[nd.body_start(text) :]


def _trim_last_paragraph(text: str) -> str:
    return "\n\n".join(text.rstrip().split("\n\n")[:-1]) + "\n"


def _add_copies(seeds: Path) -> None:
    (seeds / "republished").mkdir()
    (seeds / TREND).write_text(
        "(MENAFN- Trend) BAKU, Feb 10 (Trend) - " + _body(_seed(KUNA)), encoding="utf-8"
    )
    (seeds / HERALD).write_text(
        "Iran presses Baku over Gaza\n\nLONDON (Herald) - "
        + _trim_last_paragraph(_body(_seed(TASNIM))),
        encoding="utf-8",
    )


def _words(text: str) -> list[str]:
    return [w.norm for w in nd.words(text)]


@pytest.fixture(scope="module")
def copies_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    base = tmp_path_factory.mktemp("copies")
    shutil.copytree(SEEDS, base / "seeds")
    _add_copies(base / "seeds")
    settings = make_settings(base / "seeds", base / "index")
    report = build_index(settings, embedder=embedder, progress=False)
    assert (report.documents, report.documents_signed, report.copy_groups) == (5, 5, 2)
    return settings


@pytest.fixture(scope="module")
def copies_assistant(copies_settings: Settings, embedder: Embedder) -> Assistant:
    return Assistant.open(settings=copies_settings, embedder=embedder)


# ---------------------------------------------------------------------------- the build


def test_build_records_groups_and_signatures(copies_assistant: Assistant) -> None:
    snap = copies_assistant.snapshot
    assert snap.copies.groups == [nd.CopyGroup(KUNA, (TREND,)), nd.CopyGroup(TASNIM, (HERALD,))]
    assert snap.copies_of(TREND) == (KUNA,) and snap.copies_of(KUNA) == (TREND,)
    assert snap.canonical_of(HERALD) == TASNIM and snap.copies_of(NAM) == ()
    assert snap.manifest.copies["signature_format"] == nd.SIGNATURE_FORMAT
    stored = _signatures(copies_assistant.settings)
    assert stored == {d.id: nd.sign(d.text).to_bytes() for d in snap.data.documents}


def _signatures(settings: Settings) -> dict[str, bytes]:
    _, path = store.version_path(settings.index_dir)
    con = sqlite3.connect(f"file:{path / 'tables.sqlite'}?mode=ro", uri=True)
    try:
        return {r[0]: bytes(r[1]) for r in con.execute("SELECT doc_id, signature FROM signatures")}
    finally:
        con.close()


def test_incremental_builds_sign_only_what_changed(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    first = build_index(s, embedder=embedder, progress=False)
    assert (first.documents_signed, first.copy_groups) == (3, 0)
    before = _signatures(s)
    _add_copies(s.seeds_dir)
    added = build_index(s, embedder=embedder, progress=False)
    assert added.added == [HERALD, TREND] and added.documents_signed == 2
    assert added.copy_groups == 2 and _signatures(s).items() >= before.items()
    noop = build_index(s, embedder=embedder, progress=False)
    assert noop.reason == "up to date" and noop.copy_groups == 2
    (s.seeds_dir / TREND).rename(s.seeds_dir / "trend-renamed.txt")  # copied, not signed
    renamed = build_index(s, embedder=embedder, progress=False)
    assert renamed.documents_signed == 0 and renamed.chunks_embedded == 0
    groups = Snapshot.load(s.index_dir).copies.groups
    assert groups == [nd.CopyGroup(KUNA, ("trend-renamed.txt",)), nd.CopyGroup(TASNIM, (HERALD,))]
    (s.seeds_dir / "trend-renamed.txt").unlink()
    (s.seeds_dir / HERALD).unlink()
    removed = build_index(s, embedder=embedder, progress=False)
    assert removed.documents_signed == 0 and removed.copy_groups == 0
    assert Snapshot.load(s.index_dir).copies.groups == [] and _signatures(s) == before


@pytest.mark.parametrize("how", ["no record", "another signature format"])
def test_an_index_without_copy_records_loads_and_is_brought_up_to_date(
    fresh_corpus: Settings, embedder: Embedder, how: str
) -> None:
    s = fresh_corpus
    _add_copies(s.seeds_dir)
    build_index(s, embedder=embedder, progress=False)
    _, path = store.version_path(s.index_dir)
    manifest = json.loads((path / "manifest.json").read_text())
    if how == "no record":  # as written before copies were detected
        del manifest["copies"]
        con = sqlite3.connect(path / "tables.sqlite")
        con.execute("DROP TABLE signatures")
        con.commit()
        con.close()
    else:
        manifest["copies"]["signature_format"] = "minhash-older"
    (path / "manifest.json").write_text(json.dumps(manifest))
    snap = Snapshot.load(s.index_dir)  # loads; its groups are whatever it recorded
    assert snap.copies.groups == (groups_from(manifest["copies"]) if how != "no record" else [])
    passages = Assistant(s, snap, embedder).search("Who chairs the Arab Parliament?").passages
    assert passages and (how != "no record" or not any(p.also_in for p in passages))
    report = build_index(s, embedder=embedder, progress=False)
    assert report.reason == "copy detection out of date" and not report.full_rebuild
    assert report.chunks_embedded == 0 and report.documents_signed == 5
    assert report.copy_groups == 2 and Snapshot.load(s.index_dir).copies.groups
    assert build_index(s, embedder=embedder, progress=False).reason == "up to date"


def test_identical_documents_are_grouped_once() -> None:
    """Byte-identical replicas join their twin's group without being compared pairwise."""
    kuna, nam = _seed(KUNA), _seed(NAM)
    docs = [_doc(KUNA, kuna), _doc(TASNIM, _seed(TASNIM)), _doc(NAM, nam)]
    docs.append(_doc("z-trend.txt", "(MENAFN- Trend) BAKU, Feb 10 (Trend) - " + _body(kuna)))
    docs += [_doc(f"kuna-{n}.txt", kuna) for n in range(3)]
    docs += [_doc(f"nam-{n}.txt", nam, f"2024-01-0{n + 1}") for n in range(2)]
    signer = CopySigner()
    for d in sorted(docs, key=lambda d: d.id):
        signer.add(d)
    assert signer.signed == 4
    groups = signer.group({d.id: d.text for d in docs})
    assert groups == [
        nd.CopyGroup(KUNA, ("kuna-0.txt", "kuna-1.txt", "kuna-2.txt", "z-trend.txt")),
        nd.CopyGroup("nam-0.txt", ("nam-1.txt", NAM)),  # dated first, then the undated one
    ]
    assert manifest_record(groups)["groups"][1] == ["nam-0.txt", "nam-1.txt", NAM]


@pytest.fixture(scope="module")
def bbc_texts() -> list[str]:
    if not BBC_CSV.is_file():
        pytest.skip(f"{BBC_CSV} not found (the shared BBC benchmark set is not on this machine)")
    with BBC_CSV.open(encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def test_bbc_groups_as_near_duplicates_does(bbc_texts: list[str]) -> None:
    """Over the BBC set's 928 articles (23 pairs byte-identical), a build's grouping is
    `group_copies`' on every document: its 51 copy pairs, the same canonicals."""
    docs = [_doc(f"bbc-{i:04d}", text) for i, text in enumerate(bbc_texts)]
    signer = CopySigner()
    for d in docs:
        signer.add(d)
    texts = {d.id: d.text for d in docs}
    groups = signer.group(texts)
    assert groups == nd.group_copies(signer.signatures, texts=texts)
    assert sorted(tuple(sorted(int(d[4:]) for d in g.members)) for g in groups) == BBC_DUPLICATES
    assert signer.signed == len({d.text for d in docs}) < len(docs)


def _doc(doc_id: str, text: str, date: str | None = None) -> Document:
    return Document(
        doc_id, doc_id, None, date, None, text, hashlib.sha256(text.encode()).hexdigest()
    )


# ---------------------------------------------------------------------------- questions


def _assert_each_story_once(snap: Snapshot, passages: list[Passage]) -> None:
    shown: dict[str, str] = {}
    for p in passages:
        assert shown.setdefault(snap.canonical_of(p.doc_id), p.doc_id) == p.doc_id, p.doc_id
        assert [a.doc_id for a in p.also_in] == [
            d for d in snap.copies_of(p.doc_id) if any(a.doc_id == d for a in p.also_in)
        ]
        for a in p.also_in:
            _assert_maps(snap, a.doc_id, a.start, a.end, p.text)


def _assert_maps(snap: Snapshot, copy_id: str, start: int, end: int, text: str) -> None:
    """The copy's span holds the words of `text` (its own header and trimmed end aside, and
    what the republisher left out, e.g. a dateline's year): at least 90 % of its words are
    `text`'s, in order; where the copy has the very same characters, it is their offsets."""
    copy = snap.docs[copy_id].text
    assert 0 <= start < end <= len(copy)
    mapped = _words(copy[start:end])
    same = SequenceMatcher(None, mapped, _words(text), autojunk=False).get_matching_blocks()
    assert sum(b.size for b in same) >= 0.9 * len(mapped) > 0, (copy[start:end], text)
    if copy.count(text) == 1:
        assert (start, end) == (copy.index(text), copy.index(text) + len(text))


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_returns_each_story_once(copies_assistant: Assistant, mode: str) -> None:
    snap = copies_assistant.snapshot
    folded = 0
    for question in QUESTIONS:
        result = copies_assistant.search(question, mode=mode, top_k=5)
        assert len(result.passages) == 5
        _assert_each_story_once(snap, result.passages)
        folded += sum(len(p.also_in) for p in result.passages)
    assert folded >= len(QUESTIONS)


def test_a_copy_that_ranks_first_is_the_one_returned(copies_assistant: Assistant) -> None:
    only_copies = {"doc_ids": [TREND, HERALD]}
    result = copies_assistant.search("Who chairs the Arab Parliament?", filters=only_copies)
    top = result.passages[0]
    assert top.doc_id == TREND and [a.doc_id for a in top.also_in] == [KUNA]
    kuna = copies_assistant.snapshot.docs[KUNA].text
    assert kuna[top.also_in[0].start : top.also_in[0].end] == top.text  # the same characters


def test_answers_cite_a_story_once_with_its_copies(copies_assistant: Assistant) -> None:
    snap = copies_assistant.snapshot
    with_copies = 0
    for question in QUESTIONS:
        answer = copies_assistant.ask(question)
        _assert_each_story_once(snap, answer.passages)
        _assert_distinct_quotes(answer)
        for c in answer.citations:
            assert snap.docs[c.doc_id].text[c.start : c.end] == c.quote
            for a in c.also_in:
                assert a.doc_id in snap.copies_of(c.doc_id)
                _assert_maps(snap, a.doc_id, a.start, a.end, c.quote)
            with_copies += bool(c.also_in)
    assert with_copies >= 10
    answer = copies_assistant.ask("Who chairs the Arab Parliament?")
    cited = answer.citations[0]
    assert cited.doc_id == KUNA and [a.doc_id for a in cited.also_in] == [TREND]
    trend = snap.docs[TREND].text
    assert trend[cited.also_in[0].start : cited.also_in[0].end] == cited.quote


def _assert_distinct_quotes(answer: Answer) -> None:
    quotes = [re.sub(r"\s+", " ", c.quote).strip() for c in answer.citations]
    assert len(quotes) == len(set(quotes)), quotes


def test_without_folding_the_copies_would_rank(copies_assistant: Assistant) -> None:
    """The folding is real: the raw ranking holds chunks of both copies of the story."""
    snap = copies_assistant.snapshot
    qvec = copies_assistant.embed(["Who chairs the Arab Parliament?"])[0]
    ranked_docs = {snap.chunks[row].doc_id for row, _ in dense_ranking(snap, qvec, 10, None)}
    assert {KUNA, TREND} <= ranked_docs


# ---------------------------------------------------------------------------- the dated corpus


def test_dated_corpus_copy_groups_are_folded(dated: Assistant) -> None:
    snap = dated.snapshot
    assert snap.copies.groups == DATED_COPIES
    asked = [json.loads(line) for line in DATED_QA.read_text(encoding="utf-8").splitlines()]
    listed: set[str] = set()  # stories returned with their copy in also_in
    for q in asked:
        answer = dated.ask(q["question"], top_k=8)
        _assert_each_story_once(snap, answer.passages)
        _assert_distinct_quotes(answer)
        listed |= {snap.canonical_of(p.doc_id) for p in answer.passages if p.also_in}
        for c in answer.citations:
            for a in c.also_in:
                _assert_maps(snap, a.doc_id, a.start, a.end, c.quote)
    assert listed == {g.canonical for g in DATED_COPIES}
    cost = _copies_cost(dated, [q["question"] for q in asked])
    assert cost < 1.0, cost  # ms a question, alignments cached


def _copies_cost(assistant: Assistant, questions: list[str]) -> float:
    """Milliseconds a question spends on `also_in` (passages and citations) once the
    alignments are cached: the same answers' copies recomputed, best of three."""
    answers = [assistant.ask(q, top_k=8) for q in questions]
    snap = assistant.snapshot
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for answer in answers:
            passages = [
                p.model_copy(update={"also_in": snap.copies.also_in(p.doc_id, p.start, p.end)})
                for p in answer.passages
            ]
            for c in answer.citations:
                c.model_copy(update={"also_in": []}).with_copies(passages)
        best = min(best, (time.perf_counter() - t0) / len(answers))
    return best * 1000


# ---------------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def client(copies_settings: Settings, copies_assistant: Assistant) -> Iterator[httpx.Client]:
    with (
        live_server(create_app(copies_settings, copies_assistant)) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        yield c


@pytest.mark.slow
def test_documents_route_lists_copies(client: httpx.Client) -> None:
    trend = client.get(f"/v1/documents/{TREND}").json()
    assert trend["canonical"] == KUNA
    assert [(c["doc_id"], c["source"]) for c in trend["copies"]] == [
        (KUNA, "Kuwait News Agency (KUNA)")
    ]
    kuna = client.get(f"/v1/documents/{KUNA}").json()
    assert kuna["canonical"] == KUNA and [c["doc_id"] for c in kuna["copies"]] == [TREND]
    herald = client.get(f"/v1/documents/{HERALD}").json()
    assert herald["canonical"] == TASNIM and herald["copies"][0]["doc_id"] == TASNIM
    nam = client.get(f"/v1/documents/{NAM}").json()
    assert nam["canonical"] is None and nam["copies"] == []


@pytest.mark.slow
def test_http_answers_carry_also_in(client: httpx.Client) -> None:
    answer = client.post("/v1/ask", json={"question": "Who chairs the Arab Parliament?"}).json()
    cited = answer["citations"][0]
    copy = cited["also_in"][0]
    assert (cited["doc_id"], copy["doc_id"]) == (KUNA, TREND)
    text = client.get(f"/v1/documents/{TREND}").json()["text"]
    assert text[copy["start"] : copy["end"]] == cited["quote"]
    assert set(copy) == {"doc_id", "start", "end", "source", "date"}
    passages = client.post(
        "/v1/search", json={"question": "Arab Parliament massacres in Gaza"}
    ).json()
    stories = [p["doc_id"] for p in passages["passages"]]
    assert not ({KUNA, TREND} <= set(stories) or {TASNIM, HERALD} <= set(stories))
    assert any(p["also_in"] for p in passages["passages"])

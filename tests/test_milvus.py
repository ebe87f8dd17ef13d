"""The Milvus dense store (Milvus Lite here): same results as FAISS, filters as expressions,
versions sharing a collection (rows born/died per version: incremental builds write only the
changed articles, older versions still answer as before, killed builds are swept, pruning
deletes rows), a `<prefix>_live` alias, and one clear line when Milvus cannot be reached.
Real Milvus Lite, real model, real files."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rag.embedding import Embedder
from rag.engines import build_dense
from rag.engines.base import Ranking, exact_search
from rag.engines.milvus_client import connect, disconnect
from rag.engines.milvus_index import FILE, LIVE_SEQ, filter_expression
from rag.engines.milvus_versions import (
    ALIVE,
    chunk_key,
    count,
    garbage,
    key_map,
    rows_of,
    visible,
)
from rag.errors import IndexStoreError
from rag.index import store
from rag.index.indexing import build_index
from rag.models import Chunk, Filters
from rag.retrieve.retrieval import Snapshot, row_filter
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server
from tests.conftest import ROOT, make_settings

pytestmark = pytest.mark.slow


def test_filter_expression_translates_each_filter() -> None:
    f = Filters(
        doc_ids=['a "b".txt', "c.txt"],
        sources=["KUNA"],
        date_from=dt.date(2024, 1, 5),
        date_to=dt.date(2024, 2, 1),
    )
    assert filter_expression(f) == (
        'doc_id in ["a \\"b\\".txt", "c.txt"] and (source_lc like "%kuna%") and '
        'date >= "0" and date >= "2024-01-05" and date <= "2024-02-01"'
    )
    assert filter_expression(Filters()) == ""


def test_version_bookkeeping_expressions_and_keys() -> None:
    assert visible(7) == "born <= 7 and died > 7"
    assert garbage([3, 5, 9]) == (
        "died <= 3 or born > 9 or (born > 3 and died <= 5) or (born > 5 and died <= 9)"
    )
    keymap = key_map(["b#0", "a#0", "a#1"])
    assert keymap.shape == (2, 3) and list(keymap[0]) == sorted(keymap[0])
    assert rows_of(keymap, [chunk_key("a#1"), chunk_key("b#0")]) == [2, 0]
    assert 0 <= chunk_key("a#0") < 2**63
    with pytest.raises(IndexStoreError, match="chunk rows 0 and 2 have the same 63-bit"):
        key_map(["a#0", "b#0", "a#0"])  # the same key twice, as a hash collision would give
    with pytest.raises(IndexStoreError, match="does not have"):
        rows_of(keymap, [chunk_key("c#0")])


@pytest.fixture(scope="module")
def milvus_snapshot(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Snapshot:
    base = tmp_path_factory.mktemp("milvus-seeds")
    shutil.copytree(ROOT / "seeds", base / "seeds")
    settings = Settings(seeds_dir=base / "seeds", index_dir=base / "index", store="milvus")
    build_index(settings, embedder=embedder, progress=False)
    return Snapshot.load(settings.index_dir)


def _record(settings: Settings, folder: Path | None = None) -> dict[str, Any]:
    path = folder or store.version_path(settings.index_dir)[1]
    return dict(json.loads((path / FILE).read_text()))


def _collection(settings: Settings) -> tuple[str, str]:
    record = _record(settings)
    return record["uri"], record["collection"]


@pytest.mark.parametrize(
    "filters",
    [
        None,
        Filters(doc_ids=["002_ada552b2d9cfc3c4.txt"]),
        Filters(sources=["tasnim", "KUNA"]),
        Filters(sources=["tasnim"], doc_ids=["000_2e40f42646a43cae.txt"]),
        Filters(date_to=dt.date(2030, 1, 1)),
    ],
)
def test_milvus_ranks_like_exact_faiss(
    filters: Filters | None, embedder: Embedder, milvus_snapshot: Snapshot
) -> None:
    snap = milvus_snapshot
    assert type(snap.dense).__name__ == "MilvusIndex"
    rows = row_filter(snap, filters)
    mask = rows.mask if rows is not None else np.ones(len(snap.chunks), bool)
    for q in ["Arab Parliament Non-Aligned Movement", "foreign minister telephone", "Gaza"]:
        qvec = embedder.encode_queries([q])[0]
        got = snap.dense.search(qvec, 10, rows)
        want = exact_search(snap.data.chunk_vectors, qvec, 10, mask)
        assert [r for r, _ in got] == [r for r, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_versions_alias_and_dropped_collections(fresh_corpus: Settings, embedder: Embedder) -> None:
    """FAISS → Milvus reuses the stored vectors (a new collection); an incremental build
    appends to the live collection; `--rebuild` writes a new one; the alias and `rag.live_seq`
    follow the live version, and a collection goes when no version on disk uses it."""
    build_index(fresh_corpus, embedder=embedder, progress=False)
    settings = fresh_corpus.with_overrides(store="milvus", keep_versions=1)
    moved = build_index(settings, embedder=embedder, progress=False)
    assert moved.chunks_embedded == 0 and moved.reason == "incremental"
    uri, first = _collection(settings)
    client = connect(uri)
    assert client.describe_alias("rag_live")["collection_name"] == first
    assert build_index(settings, embedder=embedder, progress=False).reason == "up to date"

    (settings.seeds_dir / "new.txt").write_text("Kestrel launch\n\nThe satellite Kestrel flew.\n")
    report = build_index(settings, embedder=embedder, progress=False)
    assert report.added == ["new.txt"] and report.chunks_embedded == 1
    _uri, second = _collection(settings)
    assert second == first  # the same collection, one row more
    assert client.describe_alias("rag_live")["collection_name"] == first
    assert client.get_collection_stats(first)["row_count"] == report.chunks
    live_seq = _record(settings)["seq"]
    assert client.describe_collection(first)["properties"][LIVE_SEQ] == str(live_seq)

    rebuilt = build_index(settings, rebuild=True, embedder=embedder, progress=False)
    assert rebuilt.full_rebuild
    _uri, third = _collection(settings)
    assert third != first and _record(settings)["seq"] > live_seq
    assert client.describe_alias("rag_live")["collection_name"] == third
    assert not client.has_collection(first)  # dropped with its versions (keep_versions=1)
    back = build_index(fresh_corpus.with_overrides(keep_versions=1), embedder=embedder)
    assert back.chunks_embedded == 0 and not client.has_collection(third)  # back to FAISS
    assert "rag_live" not in client.list_aliases().get("aliases", [])


def test_unreachable_milvus_is_one_clear_line(fresh_corpus: Settings, tmp_path: Path) -> None:
    env = {
        "RAG_STORE": "milvus",
        "RAG_MILVUS_URI": "http://127.0.0.1:9",
        "RAG_MILVUS_TIMEOUT": "3",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
    }
    args = ["--seeds", str(fresh_corpus.seeds_dir), "--index", str(fresh_corpus.index_dir)]
    run = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.startswith("error: cannot reach Milvus at http://127.0.0.1:9")
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
    assert store.current_version(fresh_corpus.index_dir) is None


def test_server_reports_unreachable_milvus_as_503(fresh_corpus: Settings) -> None:
    settings = fresh_corpus.with_overrides(
        store="milvus", milvus_uri="http://127.0.0.1:9", milvus_timeout=3
    )
    with (
        live_server(create_app(settings), wait_ready=False) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for _ in range(600):
            r = client.get("/ready")
            if r.json().get("status") == "failed":
                break
            time.sleep(0.1)
        assert r.status_code == 503
        assert "cannot reach Milvus at http://127.0.0.1:9" in r.json()["error"]
        ask = client.post("/v1/ask", json={"question": "Who chairs the Arab Parliament?"})
        assert ask.status_code == 503


# ---------------------------------------------------------------------------- versions in one
# collection: incremental writes, snapshot isolation, killed builds, garbage collection

QUESTIONS = [
    json.loads(line)["question"]
    for line in (ROOT / "eval" / "qa.jsonl").read_text().splitlines()
    if line.strip()
]
NEW_ARTICLE = (
    "Zorbia Launches Kestrel-9\n\n"
    "VELL (ZNA) -- The Zorbian Space Agency launched the satellite Kestrel-9 on 3 March 2031 "
    "from the Vell spaceport. The agency said the satellite will map glaciers.\n"
)
CHANGED, REMOVED = "001_d02ccc4d9c9c05cf.txt", "000_2e40f42646a43cae.txt"
Top = list[list[tuple[str, int, int]]]


def _add_change_delete(seeds: Path) -> None:
    (seeds / "new.txt").write_text(NEW_ARTICLE)
    changed = seeds / CHANGED
    changed.write_text(changed.read_text() + "\n\nThe two ministers will meet in Baku in May.\n")
    (seeds / REMOVED).unlink()


def _top(folder: Path, qvecs: np.ndarray, k: int = 10) -> tuple[Top, np.ndarray]:
    """Top-k chunks (id, start, end) and scores per question of the version in `folder`,
    loaded by folder name (live or not)."""
    data = store.read_data(folder)
    dense, _lexical = store.read_engines(folder, data)
    return _ranked(data.chunks, [dense.search(q, k) for q in qvecs])


def _ranked(chunks: list[Chunk], rankings: list[Ranking]) -> tuple[Top, np.ndarray]:
    top = [[(chunks[r].id, chunks[r].start, chunks[r].end) for r, _ in rk] for rk in rankings]
    return top, np.array([[s for _, s in rk] for rk in rankings])


def _faiss_flat(folder: Path, qvecs: np.ndarray, k: int = 10) -> tuple[Top, np.ndarray]:
    data = store.read_data(folder)
    flat = build_dense(np.asarray(data.chunk_vectors), "flat")
    return _ranked(data.chunks, [flat.search(q, k) for q in qvecs])


def _count(record: dict[str, Any], expr: str) -> int:
    client = connect(record["uri"])
    client.load_collection(record["collection"])
    return count(client, record["collection"], expr)


def _chunks_of(folder: Path, doc_ids: set[str]) -> int:
    return sum(c.doc_id in doc_ids for c in store.read_data(folder).chunks)


@dataclass(frozen=True)
class FirstVersion:
    """A first Milvus build of the seeds, and its answers to the eval questions."""

    settings: Settings
    name: str
    folder: Path
    record: dict[str, Any]
    qvecs: np.ndarray
    top: Top
    scores: np.ndarray


def _first_version(fresh_corpus: Settings, embedder: Embedder) -> FirstVersion:
    s = fresh_corpus.with_overrides(store="milvus", keep_versions=3)
    build_index(s, embedder=embedder, progress=False)
    name, folder = store.version_path(s.index_dir)
    qvecs = embedder.encode_queries(QUESTIONS)
    top, scores = _top(folder, qvecs)
    return FirstVersion(s, name, folder, _record(s), qvecs, top, scores)


def test_incremental_build_writes_only_changed_articles(
    fresh_corpus: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    """Add, change and delete an article: only their chunks are written (born/died = the new
    seq) into the previous version's collection; the new version ranks like a full Milvus
    build and FAISS flat; the previous version still answers exactly as before."""
    first = _first_version(fresh_corpus, embedder)
    s, v1, rec1, qvecs = first.settings, first.folder, first.record, first.qvecs
    before, before_scores = first.top, first.scores

    _add_change_delete(s.seeds_dir)
    report = build_index(s, embedder=embedder, progress=False)
    assert (report.added, report.changed, report.removed) == (["new.txt"], [CHANGED], [REMOVED])
    _name, v2 = store.version_path(s.index_dir)
    rec2 = _record(s)
    assert rec2["collection"] == rec1["collection"]
    assert rec2["base"] == rec1["seq"] and rec2["seq"] > rec1["seq"]
    inserted = _count(rec2, f"born == {rec2['seq']}")
    assert inserted == _chunks_of(v2, {"new.txt", CHANGED}) > 0
    assert _count(rec2, f"died == {rec2['seq']}") == _chunks_of(v1, {CHANGED, REMOVED}) > 0
    assert _count(rec2, "") == len(store.read_data(v1).chunks) + inserted  # v1 ∪ v2

    got, got_scores = _top(v2, qvecs)
    full = make_settings(s.seeds_dir, tmp_path / "full-index", store="milvus")
    assert build_index(full, embedder=embedder, progress=False).full_rebuild
    _name, v_full = store.version_path(full.index_dir)
    assert _record(full)["base"] is None
    want, want_scores = _top(v_full, qvecs)
    flat, flat_scores = _faiss_flat(v2, qvecs)
    assert got == want == flat
    assert np.allclose(got_scores, want_scores, atol=1e-5)
    assert np.allclose(got_scores, flat_scores, atol=1e-5)

    again, again_scores = _top(v1, qvecs)  # the previous version, still on disk
    assert again == before and np.array_equal(again_scores, before_scores)
    assert any(c[0].startswith(REMOVED) for top in again for c in top)


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from rag.index import store
    from rag.index.indexing import build_index
    from rag.settings import Settings

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith("CURRENT"):
            die()
        return real_replace(src, dst, *a, **k)

    if sys.argv[3] == "after-milvus-writes":  # before the version is renamed and switched
        store.fsync_tree = die
    else:  # renamed into place, CURRENT not yet replaced
        os.replace = replace
    build_index(Settings(seeds_dir=sys.argv[1], index_dir=sys.argv[2], store="milvus"),
                progress=False)
    """
)


@pytest.mark.parametrize("point", ["after-milvus-writes", "before-current-replace"])
def test_killed_build_leaves_the_live_version_and_is_swept(
    fresh_corpus: Settings, embedder: Embedder, point: str
) -> None:
    first = _first_version(fresh_corpus, embedder)
    s, live_name, live, rec1 = first.settings, first.name, first.folder, first.record
    qvecs, before, before_scores = first.qvecs, first.top, first.scores

    _add_change_delete(s.seeds_dir)
    disconnect(rec1["uri"])  # Milvus Lite: one process per file
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(s.seeds_dir), str(s.index_dir), point],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    versions = s.index_dir / store.VERSIONS
    (left,) = [p for p in versions.iterdir() if p.is_dir() and p.name != live_name]
    assert left.name.startswith(".tmp-") == (point == "after-milvus-writes")
    killed = _record(s, left)
    assert killed["collection"] == rec1["collection"] and killed["base"] == rec1["seq"]
    assert _count(killed, f"born == {killed['seq']}") > 0  # it did write to Milvus
    assert _count(killed, f"died == {killed['seq']}") > 0

    assert store.current_version(s.index_dir) == live_name
    snap = Snapshot.load(s.index_dir)
    assert snap.version == live_name
    assert _ranked(snap.chunks, [snap.dense.search(q, 10) for q in qvecs])[0] == before
    again, again_scores = _top(live, qvecs)
    assert again == before and np.array_equal(again_scores, before_scores)

    report = build_index(s, embedder=embedder, progress=False)
    assert report.added == ["new.txt"]
    _name, v2 = store.version_path(s.index_dir)
    rec2 = _record(s)
    assert rec2["seq"] > killed["seq"]
    assert _top(v2, qvecs)[0] == _faiss_flat(v2, qvecs)[0]
    if point == "before-current-replace":
        # a finished version newer than the live one uses the collection: appending would
        # fork its history, so the build writes a new collection; both old versions still
        # answer from theirs until they are pruned
        assert rec2["base"] is None and rec2["collection"] != rec1["collection"]
        assert _top(live, qvecs)[0] == before
        build_index(s.with_overrides(keep_versions=1), embedder=embedder, progress=False)
        assert not connect(rec1["uri"]).has_collection(rec1["collection"])
        return
    assert rec2["base"] == rec1["seq"] and not left.exists()
    for field in ("born", "died"):
        assert _count(rec2, f"{field} == {killed['seq']}") == 0
    inserted = _count(rec2, f"born == {rec2['seq']}")
    assert inserted == _chunks_of(v2, {"new.txt", CHANGED})
    assert _count(rec2, "") == len(store.read_data(live).chunks) + inserted  # v1 ∪ v2, no more


def test_pruned_versions_take_their_rows_along(fresh_corpus: Settings, embedder: Embedder) -> None:
    s = fresh_corpus.with_overrides(store="milvus", keep_versions=2)
    changed = s.seeds_dir / CHANGED
    recs = []
    for i in range(3):
        if i:
            changed.write_text(changed.read_text() + f"\n\nUpdate number {i} came on Friday.\n")
        build_index(s, embedder=embedder, progress=False)
        recs.append(_record(s))
    assert len({r["collection"] for r in recs}) == 1
    on_disk = [p for p in (s.index_dir / store.VERSIONS).iterdir() if p.is_dir()]
    assert len(on_disk) == 2  # the first version was pruned …
    seq2, seq3 = recs[1]["seq"], recs[2]["seq"]
    assert _count(recs[2], f"died <= {seq2}") == 0  # … and the rows only it saw with it
    n2 = recs[1]["rows"]
    assert _count(recs[2], "") == n2 + _count(recs[2], f"born == {seq3}")

    build_index(s.with_overrides(keep_versions=1), embedder=embedder, progress=False)
    assert _count(recs[2], "") == recs[2]["rows"]
    assert _count(recs[2], f"died < {ALIVE}") == 0

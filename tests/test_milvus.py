"""The Milvus dense store (Milvus Lite here): same results as FAISS, filters as expressions,
one collection per version behind a `<prefix>_live` alias, stale collections dropped, and one
clear line when Milvus cannot be reached. Real Milvus Lite, real model, real files."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rag import store
from rag.embedding import Embedder
from rag.engines.base import exact_search
from rag.engines.milvus_index import FILE, LIVE_SEQ, connect, filter_expression
from rag.indexing import build_index
from rag.models import Filters
from rag.retrieval import Snapshot, row_filter
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server
from tests.conftest import ROOT

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
        'date != "" and date >= "2024-01-05" and date <= "2024-02-01"'
    )
    assert filter_expression(Filters()) == ""


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

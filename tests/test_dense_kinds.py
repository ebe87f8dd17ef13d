"""The compressed IVF-SQ8 dense index: chosen by size, memory-mapped, exact where it matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.embedding import Embedder
from rag.engines.base import RowFilter, exact_search
from rag.engines.faiss_index import EXACT_FILTER_ROWS, FaissIndex
from rag.index.indexing import build_index, dense_kind
from rag.models import Filters
from rag.retrieve.retrieval import Snapshot, retrieve
from rag.settings import Settings


def test_auto_kind_by_size() -> None:
    s = Settings(hnsw_threshold=100, ivf_threshold=1000)
    assert [dense_kind(s, n) for n in (100, 101, 1000, 1001)] == ["flat", "hnsw", "hnsw", "ivf-sq8"]
    assert dense_kind(s.with_overrides(index_type="ivf-sq8"), 5) == "ivf-sq8"


def test_ivf_index_ranks_like_flat_and_is_memory_mapped(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    build_index(fresh_corpus, embedder=embedder, progress=False)
    flat = Snapshot.load(fresh_corpus.index_dir)
    s = fresh_corpus.with_overrides(index_type="ivf-sq8")
    report = build_index(s, embedder=embedder, progress=False)
    assert report.chunks_embedded == 0  # a new index kind re-indexes the stored vectors
    ivf = Snapshot.load(s.index_dir)
    assert ivf.manifest.dense_index == "ivf-sq8" and ivf.dense.kind == "ivf-sq8"
    index = ivf.dense.index  # type: ignore[attr-defined]
    assert type(index).__name__ == "IndexIVFScalarQuantizer"
    assert "OnDisk" in type(__import__("faiss").downcast_InvertedLists(index.invlists)).__name__
    assert isinstance(ivf.data.chunk_vectors, np.memmap)
    for q in ("Iranian foreign minister", "Who chairs the Arab Parliament?"):
        qvec = embedder.encode_queries([q])[0]
        # a small index: every list is probed and candidates re-scored exactly, so = flat
        want = flat.dense.search(qvec, 5)
        got = ivf.dense.search(qvec, 5)
        assert [r for r, _ in got] == [r for r, _ in want]
        assert np.allclose([x for _, x in got], [x for _, x in want], atol=1e-5)
        assert retrieve(ivf, q, qvec, mode="hybrid", top_k=3)


def test_wide_filter_uses_the_ivf_selector(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = EXACT_FILTER_ROWS + 20_000
    vectors = rng.standard_normal((n, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    FaissIndex.build(vectors, "ivf-sq8").save(tmp_path)
    np.save(tmp_path / "v.npy", vectors)
    index = FaissIndex.load(tmp_path, np.load(tmp_path / "v.npy", mmap_mode="r"), "ivf-sq8")
    mask = np.zeros(n, dtype=bool)
    mask[::7] = True
    mask[: EXACT_FILTER_ROWS + 1] = True  # wide enough for the IVF path
    rows = RowFilter(mask, Filters(sources=["x"]))
    hits = 0
    for q in vectors[rng.choice(n, 20, replace=False)]:
        got = index.search(q, 10, rows)
        assert len(got) == 10 and all(mask[r] for r, _ in got)
        truth = {r for r, _ in exact_search(vectors, q, 10, mask)}
        hits += len(truth & {r for r, _ in got})
    assert hits / 200 >= 0.5  # random 32-d vectors are the hard case for any IVF

"""FAISS, the default dense backend: exact flat search, HNSW, or compressed IVF for huge indexes.

The only module that imports faiss (besides thread pinning in `rag.embedding`).

Kinds:
  flat     exact inner product; the index holds its own float32 copy of the vectors.
  hnsw     HNSW graph over float32 vectors (fast, approximate, ~1.6 KB per vector).
  ivf-sq8  inverted file (≈√n k-means lists, trained on a sample) with 8-bit scalar-quantised
           codes: 384 B per vector, a quarter of float32; the best 4k candidates of a top-k
           search are re-scored exactly from the memory-mapped float32 chunk vectors (a few
           hundred rows read per query). Its lists are memory-mapped when
           loaded (`IO_FLAG_MMAP`), so a hot swap to a new version maps a file instead of
           allocating a second copy; the cost is page faults on the first searches of cold
           lists, and the file must not be truncated while mapped (versions are immutable).

A filtered search never loses recall to an approximate structure: it is exact over the
allowed rows' vectors (which the snapshot holds, memory-mapped), except on `ivf-sq8` when more
than `EXACT_FILTER_ROWS` rows are allowed, where the IVF search itself skips the other rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.engines.base import Ranking, RowFilter, exact_search, top_rows

FILE = "dense.faiss"
HNSW_M = 32
IVF_REFINE = 4  # IVF candidates per wanted result, re-scored exactly from the float vectors
EXACT_FILTER_ROWS = 50_000
TRAIN_PER_LIST = 40  # k-means training points per list (FAISS warns below 39)


def ivf_lists(n: int) -> int:
    """Number of IVF lists: about √n (a 1M-chunk index gets 1,000 lists of ~1,000 vectors)."""
    return max(1, min(65_536, round(math.sqrt(n))))


def ivf_nprobe(nlist: int) -> int:
    """Lists visited per query: a sixteenth of them, at least 32 (measured in
    bench/million_chunks.py: recall@10 versus exact search ≥ 0.95 with re-scoring)."""
    return min(nlist, max(32, nlist // 16))


def _build_ivf(vectors: np.ndarray) -> Any:
    import faiss

    n, dim = vectors.shape
    nlist = ivf_lists(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sample = min(n, TRAIN_PER_LIST * nlist)
    rows = np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
    index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
    for lo in range(0, n, 65_536):  # bounded float32 copies when `vectors` is memory-mapped
        index.add(np.ascontiguousarray(vectors[lo : lo + 65_536], dtype=np.float32))
    index.nprobe = ivf_nprobe(nlist)
    return index


class FaissIndex:
    """A FAISS inner-product index over normalised vectors (flat, HNSW or IVF-SQ8)."""

    def __init__(self, index: Any, kind: str, vectors: np.ndarray) -> None:
        self.index = index
        self.kind = kind
        self.vectors = vectors  # (n, dim) float32, row-aligned with the index (may be mmapped)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str) -> Self:
        import faiss

        if not isinstance(vectors, np.memmap):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        if kind == "ivf-sq8" and len(vectors):
            return cls(_build_ivf(vectors), kind, vectors)
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 128
        elif kind in ("flat", "ivf-sq8"):  # an empty ivf-sq8 index has nothing to train on
            index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}")
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, kind, vectors)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, qvec: np.ndarray, k: int, rows: RowFilter | None = None) -> Ranking:
        if not len(self):
            return []
        query = qvec.reshape(1, -1).astype(np.float32)
        if rows is not None:
            if self.kind != "ivf-sq8" or int(rows.mask.sum()) <= EXACT_FILTER_ROWS:
                return exact_search(self.vectors, qvec, k, rows.mask)
            import faiss

            bitmap = np.packbits(rows.mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(bitmap)
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.index.nprobe)
            scores, found = self.index.search(query, k * IVF_REFINE, params=params)
        elif self.kind == "ivf-sq8":
            scores, found = self.index.search(query, k * IVF_REFINE)
        else:
            scores, found = self.index.search(query, k)
        if self.kind == "ivf-sq8":
            return self._rescore(found[0][found[0] >= 0], qvec, k)
        return [(int(r), float(s)) for r, s in zip(found[0], scores[0], strict=True) if r >= 0]

    def _rescore(self, candidates: np.ndarray, qvec: np.ndarray, k: int) -> Ranking:
        """Exact scores of the IVF candidates from the (memory-mapped) float32 vectors: the
        8-bit codes find the neighbourhood, the exact vectors order it."""
        rows = np.sort(candidates)  # ascending rows: sequential reads of the mapped file
        scores = np.asarray(self.vectors[rows], dtype=np.float32) @ qvec.astype(np.float32)
        return [(int(rows[i]), float(scores[i])) for i in top_rows(scores, k)]

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(folder / FILE))

    def publish(self) -> None:
        """Nothing to do: a FAISS index is live when its version's folder is."""

    @classmethod
    def load(cls, folder: Path, vectors: np.ndarray, kind: str = "flat") -> Self:
        import faiss

        flags = faiss.IO_FLAG_MMAP if kind == "ivf-sq8" else 0
        index = faiss.read_index(str(folder / FILE), flags)
        if kind == "ivf-sq8" and hasattr(index, "nprobe"):
            index.nprobe = ivf_nprobe(index.nlist)
        return cls(index, kind, vectors)

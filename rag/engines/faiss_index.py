"""FAISS, the default dense backend: exact flat search, or HNSW for large indexes.

The only module that imports faiss (besides thread pinning in `rag.embedding`). A filtered
search is exact over the allowed rows' vectors, which the snapshot already holds, so filters
never lose recall to the approximate graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.engines.base import Ranking, RowFilter, exact_search

FILE = "dense.faiss"
HNSW_M = 32


class FaissIndex:
    """A FAISS inner-product index over normalised vectors (flat or HNSW)."""

    def __init__(self, index: Any, kind: str, vectors: np.ndarray) -> None:
        self.index = index
        self.kind = kind
        self.vectors = vectors  # (n, dim) float32, row-aligned with the index

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str) -> Self:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 128
        elif kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}")
        if len(vectors):
            index.add(vectors)
        return cls(index, kind, vectors)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, qvec: np.ndarray, k: int, rows: RowFilter | None = None) -> Ranking:
        if not len(self):
            return []
        if rows is not None:
            return exact_search(self.vectors, qvec, k, rows.mask)
        scores, found = self.index.search(qvec.reshape(1, -1).astype(np.float32), k)
        return [(int(r), float(s)) for r, s in zip(found[0], scores[0], strict=True) if r >= 0]

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(folder / FILE))

    def publish(self) -> None:
        """Nothing to do: a FAISS index is live when its version's folder is."""

    @classmethod
    def load(cls, folder: Path, vectors: np.ndarray, kind: str = "flat") -> Self:
        import faiss

        return cls(faiss.read_index(str(folder / FILE)), kind, vectors)

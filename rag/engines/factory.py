"""Map the names in settings and manifests to backend classes (one line per backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.engines.base import DenseIndex, LexicalIndex

DENSE_KINDS = ("flat", "hnsw", "ivf-sq8")


def build_dense(vectors: np.ndarray, kind: str) -> DenseIndex:
    """A dense index of `kind` over normalised float32 vectors (row i = chunk row i)."""
    from rag.engines.faiss_index import FaissIndex

    if kind not in DENSE_KINDS:
        raise ValueError(f"unknown dense index kind {kind!r}; expected one of {DENSE_KINDS}")
    return FaissIndex.build(vectors, kind)


def load_dense(folder: Path, kind: str, vectors: np.ndarray) -> DenseIndex:
    from rag.engines.faiss_index import FaissIndex

    return FaissIndex.load(folder, vectors, kind)


def build_lexical(token_lists: Sequence[list[str]]) -> LexicalIndex:
    from rag.engines.bm25_index import Bm25Index

    return Bm25Index.build(token_lists)


def load_lexical(folder: Path) -> LexicalIndex:
    from rag.engines.bm25_index import Bm25Index

    return Bm25Index.load(folder)

"""Map the names in settings and manifests to backend classes (one line per backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.engines.base import DenseIndex, LexicalIndex

if TYPE_CHECKING:
    from rag.engines.milvus_index import MilvusTarget
    from rag.models import Chunk, Document

DENSE_KINDS = ("flat", "hnsw")
STORES = ("faiss", "milvus")


def build_dense(
    vectors: np.ndarray,
    kind: str,
    *,
    milvus: MilvusTarget | None = None,
    chunks: Sequence[Chunk] = (),
    docs: dict[str, Document] | None = None,
) -> DenseIndex:
    """A dense index of `kind` over normalised float32 vectors (row i = chunk row i): FAISS,
    or a Milvus collection when `milvus` is given (which stores the chunks' metadata too)."""
    if kind not in DENSE_KINDS:
        raise ValueError(f"unknown dense index kind {kind!r}; expected one of {DENSE_KINDS}")
    if milvus is not None:
        from rag.engines.milvus_index import MilvusIndex

        return MilvusIndex.build(vectors, kind, chunks, docs or {}, milvus)
    from rag.engines.faiss_index import FaissIndex

    return FaissIndex.build(vectors, kind)


def load_dense(folder: Path, kind: str, vectors: np.ndarray, store: str = "faiss") -> DenseIndex:
    if store == "milvus":
        from rag.engines.milvus_index import MilvusIndex

        return MilvusIndex.load(folder, vectors, kind)
    from rag.engines.faiss_index import FaissIndex

    return FaissIndex.load(folder, vectors, kind)


def drop_version(folder: Path) -> None:
    """Release what a version holds outside its folder (a Milvus collection); never raises."""
    from rag.engines.milvus_index import FILE, drop_version

    if (folder / FILE).is_file():
        drop_version(folder)


def build_lexical(token_lists: Sequence[list[str]]) -> LexicalIndex:
    from rag.engines.bm25_index import Bm25Index

    return Bm25Index.build(token_lists)


def load_lexical(folder: Path) -> LexicalIndex:
    from rag.engines.bm25_index import Bm25Index

    return Bm25Index.load(folder)

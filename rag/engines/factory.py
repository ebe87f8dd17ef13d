"""Map the names in settings and manifests to backend classes (one line per backend)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.choices import DENSE_KINDS
from rag.engines.base import DenseIndex, LexicalIndex

if TYPE_CHECKING:
    from rag.engines.milvus_index import MilvusTarget
    from rag.engines.milvus_versions import VersionRows
    from rag.models import Chunk, Document



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


def build_dense_blocks(blocks: Iterable[np.ndarray], n: int, dim: int, kind: str) -> DenseIndex:
    """A FAISS index fed block by block (a streaming build reads its vector file back).

    Flat indexes are appended to one block at a time (the same index as one `add` of all rows);
    other kinds get all rows at once, as their construction depends on the whole set.
    """
    if kind not in DENSE_KINDS:
        raise ValueError(f"unknown dense index kind {kind!r}; expected one of {DENSE_KINDS}")
    if kind != "flat":
        parts = list(blocks)
        vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return build_dense(vectors, kind)
    dense = build_dense(np.zeros((0, dim), np.float32), kind)
    for block in blocks:
        dense.index.add(np.ascontiguousarray(block, dtype=np.float32))  # type: ignore[attr-defined]
    assert len(dense) == n
    return dense


def build_milvus(rows: VersionRows, kind: str, milvus: MilvusTarget) -> DenseIndex:
    """A version in Milvus, written on `save`: a new collection, or only what changed since
    the previous version appended to its collection (see `rag.engines.milvus_versions`);
    `MilvusIndex.build_rows` checks the kind."""
    from rag.engines.milvus_index import MilvusIndex

    return MilvusIndex.build_rows(rows, kind, milvus)


def load_dense(folder: Path, kind: str, vectors: np.ndarray, store: str = "faiss") -> DenseIndex:
    if store == "milvus":
        from rag.engines.milvus_index import MilvusIndex

        return MilvusIndex.load(folder, vectors, kind)
    from rag.engines.faiss_index import FaissIndex

    return FaissIndex.load(folder, vectors, kind)


def release_versions(folders: Sequence[Path]) -> None:
    """Release what versions leaving the disk hold outside their folders (Milvus rows or
    collections no remaining version uses); never raises. Call before removing them."""
    from rag.engines.milvus_versions import FILE

    if any((f / FILE).is_file() for f in folders):
        from rag.engines.milvus_index import release

        release(folders)


def build_lexical(token_lists: Sequence[list[str]]) -> LexicalIndex:
    from rag.engines.bm25_index import Bm25Index

    return Bm25Index.build(token_lists)


def build_lexical_ids(term_ids: list[np.ndarray], vocab: dict[str, int]) -> LexicalIndex:
    """BM25 from per-chunk term ids (int32 arrays) and their vocabulary (term → id)."""
    from rag.engines.bm25_index import Bm25Index

    return Bm25Index.build_ids(term_ids, vocab)


def load_lexical(folder: Path) -> LexicalIndex:
    from rag.engines.bm25_index import Bm25Index

    return Bm25Index.load(folder)

"""The interfaces every search backend implements, and the ranking helpers they share.

Rows are chunk rows of one index version (0..n-1, the order of the chunk table). A backend
returns `(row, score)` pairs best first; ties are broken by row so rankings are deterministic
across runs and backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import numpy as np

from rag.models import Filters

Ranking = list[tuple[int, float]]


@dataclass(frozen=True, slots=True)
class RowFilter:
    """Which rows a search may return: the boolean mask over rows, and the user's filters it
    came from (for backends that evaluate filters themselves, e.g. as a database expression)."""

    mask: np.ndarray  # bool, one per chunk row
    filters: Filters


class DenseIndex(Protocol):
    """Nearest chunks to a normalised query vector by inner product (= cosine)."""

    kind: str  # what the manifest records, e.g. "flat", "hnsw"

    def __len__(self) -> int: ...

    def search(self, qvec: np.ndarray, k: int, rows: RowFilter | None = None) -> Ranking: ...

    def save(self, folder: Path) -> None: ...

    def publish(self) -> None:
        """Called once the version is live on disk (e.g. to move a database alias)."""
        ...

    @classmethod
    def load(cls, folder: Path, vectors: np.ndarray) -> Self: ...


class LexicalIndex(Protocol):
    """BM25 over the chunks' stemmed terms (see `rag.retrieve.lexical.tokenize`)."""

    def __len__(self) -> int: ...

    def search(self, terms: list[str], k: int, rows: RowFilter | None = None) -> Ranking: ...

    def document_frequencies(self) -> dict[str, int]: ...

    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> Self: ...


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties broken by index (deterministic)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]


def exact_search(vectors: np.ndarray, qvec: np.ndarray, k: int, mask: np.ndarray) -> Ranking:
    """Exact inner-product search over the rows a mask allows."""
    allowed = np.flatnonzero(mask)
    scores = vectors[allowed] @ qvec
    return [(int(allowed[i]), float(scores[i])) for i in top_rows(scores, k)]

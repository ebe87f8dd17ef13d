"""bm25s, the lexical backend: BM25 over stemmed terms, stored in a version's `bm25/` folder.

The only module that imports bm25s or reads its internals (the sparse score matrix's column
pointers give each term's document frequency).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.engines.base import Ranking, RowFilter, top_rows

FOLDER = "bm25"
PLACEHOLDER = "\x00"  # bm25s needs a non-empty vocabulary and rows; a chunk of stopwords gets it


class Bm25Index:
    def __init__(self, bm25: Any) -> None:
        self.bm25 = bm25
        self.vocab: dict[str, int] = bm25.vocab_dict

    @classmethod
    def build(cls, token_lists: Sequence[list[str]]) -> Self:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        bm25 = bm25s.BM25()
        bm25.index([terms or [PLACEHOLDER] for terms in token_lists], show_progress=False)
        return cls(bm25)

    @classmethod
    def build_ids(cls, term_ids: list[np.ndarray], vocab: dict[str, int]) -> Self:
        """The same index as `build` from term ids (4 bytes a term instead of a Python str
        per term): a chunk without terms gets the placeholder term, as in `build`."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        vocab = dict(vocab)
        if any(not len(a) for a in term_ids):
            empty = np.array([vocab.setdefault(PLACEHOLDER, len(vocab))], np.int32)
            term_ids = [a if len(a) else empty for a in term_ids]
        ids = _AsLists(term_ids)
        bm25 = bm25s.BM25()
        bm25.index((ids, vocab), show_progress=False)
        return cls(bm25)

    def __len__(self) -> int:
        return int(self.bm25.scores.get("num_docs", 0))

    def search(self, terms: list[str], k: int, rows: RowFilter | None = None) -> Ranking:
        known = [t for t in terms if t in self.vocab]
        if not known or not len(self):
            return []
        scores = np.asarray(self.bm25.get_scores(known), dtype=np.float32)
        if rows is not None:
            scores = np.where(rows.mask, scores, 0.0)
        return [(int(i), float(scores[i])) for i in top_rows(scores, k) if scores[i] > 0]

    def document_frequencies(self) -> dict[str, int]:
        df = np.diff(np.asarray(self.bm25.scores["indptr"]))
        return {t: int(df[i]) for t, i in self.vocab.items() if i < len(df) and t != PLACEHOLDER}

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder / FOLDER))

    @classmethod
    def load(cls, folder: Path) -> Self:
        import bm25s

        return cls(bm25s.BM25.load(str(folder / FOLDER)))


class _AsLists(list):  # type: ignore[type-arg]
    """int32 arrays that bm25s iterates as Python lists, one row at a time (a list of lists
    of Python ints for the whole corpus would take ~9x the memory)."""

    def __iter__(self) -> Any:
        for row in super().__iter__():
            yield row.tolist()

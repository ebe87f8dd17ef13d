"""Search engines behind two small interfaces: `DenseIndex` (vectors) and `LexicalIndex` (BM25).

Each third-party engine has exactly one home here (FAISS in `faiss_index`, bm25s in
`bm25_index`); nothing else in the project imports them. A new backend is one class that
implements the protocol in `base` plus one line in `factory`.
"""

from rag.engines.base import DenseIndex, LexicalIndex, RowFilter, top_rows
from rag.engines.factory import (
    build_dense,
    build_lexical,
    load_dense,
    load_lexical,
    release_versions,
)

__all__ = [
    "DenseIndex",
    "LexicalIndex",
    "RowFilter",
    "build_dense",
    "build_lexical",
    "load_dense",
    "load_lexical",
    "release_versions",
    "top_rows",
]

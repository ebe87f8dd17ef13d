"""What a streaming build hands to Milvus: the version's rows, read back from its files.

A Milvus version write (`rag.engines.milvus_versions`) reads rows lazily during `save`: the
vectors with `pread` from the version's `chunk_vectors.npy`, their metadata from its SQLite
tables, `READ_ROWS` at a time, so memory stays bounded like the FAISS path. Articles copied
unchanged from the previous version (`VersionWriter.stored`) are not sent again when Milvus
can extend the previous version's collection; the chunks of the previous version's other
articles are the ones it retires.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from rag.engines.milvus_versions import Block, VersionRows, chunk_meta
from rag.index.npy_stream import READ_ROWS, NpyReader


class Written(Protocol):
    """The version being written, as read here (`rag.index.writer.VersionWriter`, which calls this
    module: a protocol rather than an import keeps the two out of an import circle)."""

    dim: int
    stored: set[str]  # documents copied unchanged from the previous version
    chunk_ranges: dict[str, tuple[int, int]]  # rows of each written document


class Previous(Protocol):
    """The previous version, as read here (`rag.index.writer.PreviousVersion`)."""

    path: Path
    chunk_ranges: dict[str, tuple[int, int]]

    def chunk_rows_of(self, doc_id: str) -> list[tuple[Any, ...]]: ...


def milvus_rows(
    w: Written, reader: NpyReader, con: sqlite3.Connection, prev: Previous | None
) -> VersionRows:
    """The version `w` wrote (its vector file `reader`, its tables `con`) as Milvus reads it:
    every row, the row ranges of the articles not copied from `prev`, and the chunk ids of
    `prev` that are not kept."""

    def blocks(ranges: Iterable[tuple[int, int]]) -> Iterator[Block]:
        for lo, hi in ranges:
            for a in range(lo, hi, READ_ROWS):
                b = min(a + READ_ROWS, hi)
                yield reader.read(a, b), _milvus_meta(con, a, b)

    def ids() -> Iterator[str]:
        return (r[0] for r in con.execute("SELECT id FROM chunks ORDER BY row"))

    fresh = _merged(r for d, r in w.chunk_ranges.items() if d not in w.stored)
    kept = w.stored

    def retired() -> Iterator[str]:
        assert prev is not None
        gone = sorted(set(prev.chunk_ranges) - kept)
        return (c[0] for d in gone for c in prev.chunk_rows_of(d))

    path = prev.path if prev is not None else None
    return VersionRows(reader.rows, w.dim, ids, blocks, path, fresh, retired)


def _merged(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Row ranges in order, adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        elif hi > lo:
            out.append((lo, hi))
    return tuple(out)


def _milvus_meta(con: sqlite3.Connection, lo: int, hi: int) -> list[dict[str, Any]]:
    """The Milvus metadata rows of chunk rows `lo..hi`, read back from the version's tables."""
    cur = con.execute(
        'SELECT c.id, c.doc_id, d.title, d.source, d.date, c.start, c."end" FROM chunks c '
        "JOIN documents d ON d.id = c.doc_id WHERE c.row >= ? AND c.row < ? ORDER BY c.row",
        (lo, hi),
    )
    return [chunk_meta(*r) for r in cur]

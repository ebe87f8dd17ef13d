"""The streaming version writer: documents go to disk as they arrive, in document-id order.

    write_stream(index_dir, dim, entries) ← entries: Fresh(Document, EmbeddedDoc) | Stored(doc id)

Invariants:
- Bounded memory. A fresh document's rows are written to SQLite and its vectors appended to
  `chunk_vectors.npy` / `sentence_vectors.npy` (float16) as soon as it arrives; nothing per
  token or per vector is kept past that call. What stays in memory for the whole build is
  O(documents) bookkeeping (ids, sha256, file stats, a ≈ 1.1 KiB copy-detection signature
  per distinct text) and the BM25 term ids of every chunk (int32, ~4 bytes a term), because
  bm25s builds its matrix in one call. The FAISS index (or the Milvus rows, their metadata
  read back from the tables: only the new articles' when Milvus extends the previous
  version's collection, see `rag.index.milvus_rows`) is built afterwards from the vector file, read
  back in blocks with `pread` (`rag.index.npy_stream`; not mmap, so the file's pages never count
  towards this process's RSS).
- Same contents as a build that held everything: rows in document-id order, a stored
  document's rows, vectors and sentence vectors copied byte for byte from the previous
  version (read with `pread`, never loading the previous version whole), `.npy` files
  byte-identical to `np.save` of the same arrays.
- Copies (`rag.ingest.copies`): every document's signature goes to the `signatures` table as it is
  written (copied for a kept, renamed or duplicated document, signed for a new or changed
  one); once all are written, `group_copies` finds the version's copy groups for the
  manifest, reading back only the candidates' texts.
- Crash and disk safety: everything is written in `versions/.tmp-<name>/`, fsynced, then
  renamed into place and made live by replacing CURRENT (see `rag.index.store`). Any exception
  removes the temporary folder; a disk that fills becomes one `DiskFullError` naming the
  place, what was written and what is free; a SIGKILL leaves the folder for the next build
  to sweep (`store.remove_stale`, run under the lock before writing).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import DiskFullError, IndexStoreError
from rag.index import store
from rag.index.manifest import read_manifest
from rag.index.npy_stream import NpyAppender, NpyReader
from rag.ingest import copies
from rag.models import Chunk, Document
from rag.retrieve.lexical import tokenize

if TYPE_CHECKING:
    from rag.engines.base import DenseIndex
    from rag.engines.milvus_index import MilvusTarget
    from rag.index.embed_stream import EmbeddedDoc
    from rag.ingest.copy_record import CopyGroup

# ---------------------------------------------------------------------------- previous version


class PreviousVersion:
    """The live version, read one document at a time (its tables stay on disk)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = read_manifest(path)
        try:
            self.con = sqlite3.connect(f"file:{path / 'tables.sqlite'}?mode=ro", uri=True)
            self.chunk_ranges = self._ranges("chunks")
            self.sentence_ranges = self._ranges("sentences")
            self.vectors = NpyReader(path / "chunk_vectors.npy")
            self.sentence_vectors = NpyReader(path / "sentence_vectors.npy")
            n_chunks = self.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            n_sent = self.con.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]
            self._document_query = store.select_documents(self.con, "WHERE id = ?")
            self._signatures = copies.reusable(self.con, self.manifest.copies)
        except (OSError, ValueError, sqlite3.Error) as exc:
            raise IndexStoreError(
                f"index at {path} is unreadable ({exc.__class__.__name__})"
            ) from exc
        if n_chunks != self.vectors.rows or n_sent != self.sentence_vectors.rows:
            raise IndexStoreError(f"index at {path} is corrupt (vector and table counts differ)")

    def _ranges(self, table: str) -> dict[str, tuple[int, int]]:
        q = f"SELECT doc_id, MIN(row), MAX(row) + 1 FROM {table} GROUP BY doc_id"
        return {r[0]: (int(r[1]), int(r[2])) for r in self.con.execute(q)}

    def document(self, doc_id: str) -> Document:
        return Document(*self.con.execute(self._document_query, (doc_id,)).fetchone())

    def chunk_rows_of(self, doc_id: str) -> list[tuple[Any, ...]]:
        return _chunk_rows_of(self.con, doc_id)

    def sentence_rows_of(self, doc_id: str) -> list[tuple[int, int, int]]:
        return _sentence_rows_of(self.con, doc_id)

    def signature_of(self, doc_id: str) -> bytes | None:
        """The stored copy-detection signature (None: not stored in this format)."""
        return copies.stored_signature(self.con, doc_id) if self._signatures else None

    def close(self) -> None:
        self.con.close()
        self.vectors.close()
        self.sentence_vectors.close()


def _chunk_rows_of(con: sqlite3.Connection, doc_id: str) -> list[tuple[Any, ...]]:
    return con.execute(
        'SELECT id, doc_id, ordinal, start, "end", n_tokens, n_tiktoken FROM chunks '
        "WHERE doc_id = ? ORDER BY row",
        (doc_id,),
    ).fetchall()


def _sentence_rows_of(con: sqlite3.Connection, doc_id: str) -> list[tuple[int, int, int]]:
    return con.execute(
        'SELECT start, "end", chunk_row FROM sentences WHERE doc_id = ? ORDER BY row',
        (doc_id,),
    ).fetchall()


# ---------------------------------------------------------------------------- the writer

SignatureSource = Callable[[], bytes | None] | None  # a kept document's stored signature


@dataclass(frozen=True, slots=True)
class Fresh:
    """A document embedded by this build."""

    document: Document
    embedded: EmbeddedDoc


@dataclass(frozen=True, slots=True)
class Stored:
    """A document whose rows and vectors are copied from the previous version."""

    doc_id: str


@dataclass(frozen=True, slots=True)
class Copy:
    """A new or changed document whose bytes equal those of `source` (a rename or duplicate):
    its chunks, vectors and sentence rows are copied from the source's, under its own id.
    `source` is a document of the previous version (`in_previous`) or one already written."""

    document: Document
    source: str
    in_previous: bool


class VersionWriter:
    """Appends documents in id order to a temporary version folder (see the module docstring)."""

    def __init__(self, tmp: Path, dim: int) -> None:
        self.tmp, self.dim = tmp, dim
        self.con = sqlite3.connect(tmp / "tables.sqlite")
        self.con.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + store.TABLES_SCHEMA
        )
        self.vectors = NpyAppender(tmp / "chunk_vectors.npy", np.float32, dim)
        self.sentence_vectors = NpyAppender(tmp / "sentence_vectors.npy", np.float16, dim)
        self.documents: dict[str, str] = {}  # id → sha256, in id order
        self.stored: set[str] = set()  # documents copied unchanged from the previous version
        self.chunk_ranges: dict[str, tuple[int, int]] = {}  # rows of each written document
        self.sentence_ranges: dict[str, tuple[int, int]] = {}
        self.n_chunks = self.n_sentences = 0
        self.vocab: dict[str, int] = {}
        self.term_ids: list[np.ndarray] = []  # per chunk, for BM25
        self.copies = copies.CopySigner()  # every document's signature (rag.ingest.copies)
        self.copy_groups: list[CopyGroup] = []  # filled by `group_copies` once all are in

    def _add_terms(self, text: str) -> None:
        terms = tokenize(text)
        vocab = self.vocab
        ids = [vocab.setdefault(t, len(vocab)) for t in terms]
        self.term_ids.append(np.array(ids, np.int32))

    def _add_document(self, d: Document, stored: SignatureSource = None) -> None:
        self.con.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?)", store.document_row(d))
        self.documents[d.id] = d.sha256
        signature = self.copies.add(d, stored)  # signed only when not stored
        self.con.execute("INSERT INTO signatures VALUES (?,?)", (d.id, signature))

    def _add_chunks(self, chunks: Iterable[Chunk]) -> None:
        rows = []
        for i, c in enumerate(chunks, self.n_chunks):
            rows.append((i, c.id, c.doc_id, c.ordinal, c.start, c.end, c.n_tokens, c.n_tiktoken))
            self._add_terms(c.text)
        self.con.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)", rows)

    def _add_sentences(self, doc_id: str, rows: list[tuple[int, int, int]]) -> None:
        base = self.n_sentences
        self.con.executemany(
            "INSERT INTO sentences VALUES (?,?,?,?,?)",
            [(base + i, doc_id, s, e, c) for i, (s, e, c) in enumerate(rows)],
        )
        self.n_sentences += len(rows)

    def _end_document(self, doc_id: str, n_chunks: int, sent_lo: int) -> None:
        self.chunk_ranges[doc_id] = (self.n_chunks, self.n_chunks + n_chunks)
        self.sentence_ranges[doc_id] = (sent_lo, self.n_sentences)
        self.n_chunks += n_chunks

    def add_fresh(self, d: Document, e: EmbeddedDoc) -> None:
        self._add_document(d)
        base, sent_lo = self.n_chunks, self.n_sentences
        self._add_chunks(e.chunks)
        self.vectors.append(e.vectors)
        sent = [(s, x, base + i) for i, spans in enumerate(e.sentence_spans) for s, x in spans]
        self._add_sentences(d.id, sent)
        for v in e.sentence_vectors:
            self.sentence_vectors.append(v.astype(np.float16))
        self._end_document(d.id, len(e.chunks), sent_lo)

    # the same reading interface as PreviousVersion, over the rows this build wrote
    def chunk_rows_of(self, doc_id: str) -> list[tuple[Any, ...]]:
        return _chunk_rows_of(self.con, doc_id)

    def sentence_rows_of(self, doc_id: str) -> list[tuple[int, int, int]]:
        return _sentence_rows_of(self.con, doc_id)

    def signature_of(self, doc_id: str) -> bytes | None:
        sig = self.copies.signatures.get(doc_id)
        return None if sig is None else sig.to_bytes()

    def add_stored(
        self, src: PreviousVersion | VersionWriter, doc_id: str, as_doc: Document | None = None
    ) -> None:
        """Copy a document's rows and vectors from `src`; as `as_doc` (new id) if given."""
        d = as_doc or src.document(doc_id)  # type: ignore[union-attr]
        if as_doc is None and isinstance(src, PreviousVersion):
            self.stored.add(doc_id)
        self._add_document(d, lambda: src.signature_of(doc_id))
        base, sent_lo = self.n_chunks, self.n_sentences
        lo, hi = src.chunk_ranges.get(doc_id, (0, 0))
        slo, shi = src.sentence_ranges.get(doc_id, (0, 0))
        vectors, sentence_vectors = src.vectors.read(lo, hi), src.sentence_vectors.read(slo, shi)
        self._add_chunks(
            Chunk(f"{d.id}#{r[2]}", d.id, r[2], r[3], r[4], d.text[r[3] : r[4]], r[5], r[6])
            for r in src.chunk_rows_of(doc_id)
        )
        self.vectors.append(vectors)
        sent = [(s, x, c - lo + base) for s, x, c in src.sentence_rows_of(doc_id)]
        self._add_sentences(d.id, sent)
        self.sentence_vectors.append(sentence_vectors)
        self._end_document(d.id, hi - lo, sent_lo)

    def group_copies(self) -> None:
        """The copy groups of every document written (their texts read back lazily)."""
        self.copy_groups = self.copies.group(copies.StoredTexts(self.con))

    def close_tables(self) -> None:
        """Commit the rows and finish the .npy headers (the stream is over)."""
        self.con.commit()
        self.con.close()
        self.vectors.close()
        self.sentence_vectors.close()

    def build_engines(
        self, kind: str, milvus: MilvusTarget | None = None, prev: PreviousVersion | None = None
    ) -> DenseIndex:
        """FAISS (or Milvus, with `milvus`) from the vector file read back in blocks, BM25
        from the kept term ids; the dense index (published once live). Milvus gets only the
        articles not copied from `prev` when it can extend `prev`'s collection."""
        from rag.engines.factory import build_dense_blocks, build_lexical_ids, build_milvus
        from rag.index.milvus_rows import milvus_rows

        reader = NpyReader(self.tmp / "chunk_vectors.npy")
        con = sqlite3.connect(f"file:{self.tmp / 'tables.sqlite'}?mode=ro", uri=True)
        try:
            if milvus is not None:
                dense = build_milvus(milvus_rows(self, reader, con, prev), kind, milvus)
            else:
                dense = build_dense_blocks(reader.blocks(), reader.rows, self.dim, kind)
            dense.save(self.tmp)
        finally:
            con.close()
            reader.close()
        ids, vocab = self.term_ids, self.vocab
        self.term_ids, self.vocab = [], {}
        build_lexical_ids(ids, vocab).save(self.tmp)
        return dense


def write_stream(
    index_dir: Path,
    dim: int,
    entries: Iterable[Fresh | Stored | Copy],
    prev: PreviousVersion | None,
    make_manifest: Callable[[VersionWriter], dict[str, Any]],
    kind_for: Callable[[int], str],
    milvus: MilvusTarget | None = None,
) -> str:
    """Write a new version from `entries` (document-id order) and make it live; its name.
    With `milvus`, the dense index is a Milvus collection whose alias moves once live."""
    with new_version(index_dir) as (name, tmp):
        w = VersionWriter(tmp, dim)
        for entry in entries:
            if isinstance(entry, Fresh):
                w.add_fresh(entry.document, entry.embedded)
            elif isinstance(entry, Copy):
                src = prev if entry.in_previous else w
                assert src is not None
                w.add_stored(src, entry.source, entry.document)
            else:
                assert prev is not None
                w.add_stored(prev, entry.doc_id)
        w.group_copies()
        w.close_tables()
        dense = w.build_engines(kind_for(w.n_chunks), milvus, prev)
        manifest = make_manifest(w)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        store.commit_version(index_dir, name, tmp)
    dense.publish()  # e.g. move the Milvus alias, now that the version is live
    return name


# ---------------------------------------------------------------------------- failures


@contextlib.contextmanager
def new_version(index_dir: Path) -> Iterator[tuple[str, Path]]:
    """A fresh `.tmp-<name>` folder, removed if the body raises; a full disk becomes one
    clear `DiskFullError`."""
    versions = index_dir / store.VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    name = store.new_version_name()
    tmp = versions / f".tmp-{name}"
    try:
        tmp.mkdir()
        yield name, tmp
    except BaseException as exc:
        written = _tree_size(tmp)
        from rag.engines.factory import release_versions

        release_versions([tmp])  # the Milvus rows or collection it wrote, if any
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise DiskFullError(disk_full_message(index_dir, written)) from exc
        raise


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from the OS, SQLite's SQLITE_FULL, or FAISS/bm25s wrapping either."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, sqlite3.Error) and (
            getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(e)
        ):
            return True
        if "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
    return False


def disk_full_message(index_dir: Path, written: int) -> str:
    try:
        free = shutil.disk_usage(index_dir).free
    except OSError:
        free = 0
    prev = 0
    with contextlib.suppress(IndexStoreError):
        prev = _tree_size(store.version_path(index_dir)[1])
    need = f"; the live version takes {_mib(prev)}, a new one needs about as much" if prev else ""
    return (
        f"disk full while writing the index in {index_dir / store.VERSIONS}: this build had "
        f"written {_mib(written)} when it failed, {_mib(free)} is free{need}. The previous "
        "index is still live and the partial version was removed; free space (or pass "
        "--index on a larger disk) and run `rag index` again"
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / f).stat().st_size
    return total


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"

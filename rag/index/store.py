"""The index on disk: immutable versions switched by an atomically replaced pointer file.

    index/
      CURRENT                 name of the live version (replaced by rename, after fsync)
      .lock                   held by the one build allowed at a time
      versions/<name>/        manifest.json, tables.sqlite, chunk_vectors.npy,
                              sentence_vectors.npy, dense.faiss (or milvus.json naming
                              the version's Milvus collection and sequence number, and
                              milvus_keys.npy), bm25/
      versions/.milvus-seq    the last Milvus sequence number taken (never reused)

A build writes a complete new version in a temporary folder, fsyncs it, renames it into
place, then replaces CURRENT. Killing it at any moment leaves the previous version live.
Readers load a version's tables into memory and memory-map its vector files (never written
after the rename; a removed version stays readable while mapped), so a later build (or the
clean-up of old versions) never changes what an open snapshot sees.

numpy and the models are imported by the functions that read or write tables and vectors
only: the no-op `rag index` (`rag.index.noop`) takes the lock and reads the manifest without them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import IndexStoreError

if TYPE_CHECKING:
    import numpy as np

    from rag.engines import DenseIndex, LexicalIndex
    from rag.models import Chunk, Document

FORMAT_VERSION = 1
CURRENT = "CURRENT"
VERSIONS = "versions"
LOCK = ".lock"


@dataclass(frozen=True, slots=True)
class SentenceTable:
    """Sentences of every chunk (first occurrence only), sorted by document then offset."""

    doc_ids: list[str]
    starts: np.ndarray  # int64
    ends: np.ndarray  # int64
    chunk_rows: np.ndarray  # int64, row of the chunk the vector was pooled in
    vectors: np.ndarray  # (n, dim) float16, normalised


@dataclass(slots=True)
class IndexData:
    """Everything a version holds, in memory; what a build writes and a reader loads."""

    manifest: dict[str, Any]
    documents: list[Document]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray  # (n_chunks, dim) float32, normalised
    sentences: SentenceTable


def row_ranges(ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Row range `[lo, hi)` of each id in a table whose rows are grouped by id."""
    out: dict[str, tuple[int, int]] = {}
    for i, key in enumerate(ids):
        lo, _ = out.get(key, (i, i))
        out[key] = (lo, i + 1)
    return out


# ---------------------------------------------------------------------------- durable writes


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under `path` (bottom-up), then `path` itself."""
    for root, _dirs, files in os.walk(path, topdown=False):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# ---------------------------------------------------------------------------- locking


@contextlib.contextmanager
def build_lock(index_dir: Path, timeout: float) -> Iterator[None]:
    """Exclusive lock for a build; waits up to `timeout` seconds, then refuses clearly."""
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise IndexStoreError(
                        f"another build (pid {holder}) is updating {index_dir}; "
                        f"waited {timeout:g}s — try again when it finishes"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


# ---------------------------------------------------------------------------- versions


def current_version(index_dir: Path) -> str | None:
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def new_version_name() -> str:
    now = dt.datetime.now(dt.UTC)
    return f"v{now:%Y%m%dT%H%M%S}-{now.microsecond:06d}-{os.getpid()}"


def write_version(
    index_dir: Path, data: IndexData, dense: DenseIndex, lexical: LexicalIndex
) -> str:
    """Write a complete in-memory version beside the live one and make it live (benchmarks
    that synthesise an index use this; builds stream through `rag.index.writer` instead)."""
    import numpy as np

    versions = index_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    name = new_version_name()
    tmp = versions / f".tmp-{name}"
    tmp.mkdir()
    try:
        _write_tables(tmp / "tables.sqlite", data.documents, data.chunks, data.sentences)
        np.save(tmp / "chunk_vectors.npy", data.chunk_vectors)
        np.save(tmp / "sentence_vectors.npy", data.sentences.vectors)
        dense.save(tmp)
        lexical.save(tmp)
        (tmp / "manifest.json").write_text(json.dumps(data.manifest, indent=2, sort_keys=True))
        commit_version(index_dir, name, tmp)
    except BaseException:
        from rag.engines import release_versions

        release_versions([tmp])  # what it wrote to Milvus, if anything
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    dense.publish()  # e.g. move the Milvus alias, now that the version is live
    return name


def commit_version(index_dir: Path, name: str, tmp: Path) -> None:
    """fsync a complete temporary version, rename it into place, then make it live."""
    versions = index_dir / VERSIONS
    fsync_tree(tmp)
    os.rename(tmp, versions / name)
    fsync_dir(versions)
    write_atomic(index_dir / CURRENT, f"{name}\n".encode())


def remove_stale(index_dir: Path, keep: int) -> None:
    """Delete interrupted builds and all but the newest `keep` versions (call under the lock)."""
    versions = index_dir / VERSIONS
    if not versions.is_dir():
        return
    live = current_version(index_dir)
    names = sorted(p.name for p in versions.iterdir() if p.is_dir())
    finished = [n for n in names if not n.startswith(".tmp-")]
    keep_names = set(finished[-keep:]) | {live}
    gone = [versions / n for n in names if n not in keep_names]
    if gone:
        from rag.engines import release_versions

        release_versions(gone)  # Milvus rows/collections only they use, before their records
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)


TABLES_SCHEMA = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, date TEXT,
    dateline TEXT, text TEXT NOT NULL, sha256 TEXT NOT NULL, date_source TEXT);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL, n_tiktoken INTEGER NOT NULL);
CREATE TABLE sentences (
    row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, chunk_row INTEGER NOT NULL);
CREATE TABLE signatures (doc_id TEXT PRIMARY KEY, signature BLOB NOT NULL);
"""


def document_row(d: Document) -> tuple[str | None, ...]:
    """A document as a row of the documents table (its columns' order)."""
    return (d.id, d.title, d.source, d.date, d.dateline, d.text, d.sha256, d.date_source)


def select_documents(con: sqlite3.Connection, where: str = "ORDER BY id") -> str:
    """The query for documents rows in `Document`'s field order. A version written before
    `date_source` existed has no such column: it reads as NULL (the next build re-derives it,
    see `rag.index.manifest.META_VERSION`)."""
    columns = {r[1] for r in con.execute("PRAGMA table_info(documents)")}
    date_source = "date_source" if "date_source" in columns else "NULL"
    return (
        f"SELECT id, title, source, date, dateline, text, sha256, {date_source} "
        f"FROM documents {where}"
    )


def _write_tables(
    path: Path, documents: list[Document], chunks: list[Chunk], sentences: SentenceTable
) -> None:
    con = sqlite3.connect(path)
    try:
        con.executescript(TABLES_SCHEMA)
        con.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?)", [document_row(d) for d in documents]
        )
        con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [
                (i, c.id, c.doc_id, c.ordinal, c.start, c.end, c.n_tokens, c.n_tiktoken)
                for i, c in enumerate(chunks)
            ],
        )
        con.executemany(
            "INSERT INTO sentences VALUES (?,?,?,?,?)",
            zip(
                range(len(sentences.doc_ids)),
                sentences.doc_ids,
                sentences.starts.tolist(),
                sentences.ends.tolist(),
                sentences.chunk_rows.tolist(),
                strict=True,
            ),
        )
        con.commit()
    finally:
        con.close()


# ---------------------------------------------------------------------------- reading


def version_path(index_dir: Path) -> tuple[str, Path]:
    """The live version's name and folder, or an error that names the fix."""
    if not index_dir.is_dir():
        raise IndexStoreError(f"no index at {index_dir}: run `rag index` to build it")
    name = current_version(index_dir)
    if name is None:
        raise IndexStoreError(f"no index at {index_dir}: run `rag index` to build it")
    path = index_dir / VERSIONS / name
    if not path.is_dir():
        raise IndexStoreError(
            f"index at {index_dir} is corrupt (version {name} is missing): "
            "run `rag index --rebuild`"
        )
    return name, path


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise IndexStoreError(
            f"index at {path} is corrupt (manifest unreadable: {exc.__class__.__name__}): "
            "run `rag index --rebuild`"
        ) from exc
    found = manifest.get("format_version")
    if found != FORMAT_VERSION:
        raise IndexStoreError(
            f"index at {path} has format version {found}, this program reads "
            f"{FORMAT_VERSION}: run `rag index --rebuild`"
        )
    return manifest


def read_data(path: Path) -> IndexData:
    """Load a version's tables and vectors into memory (no FAISS/BM25 structures)."""
    import numpy as np

    from rag.models import Chunk, Document

    manifest = read_manifest(path)
    try:
        con = sqlite3.connect(f"file:{path / 'tables.sqlite'}?mode=ro", uri=True)
        try:
            docs = [Document(*r) for r in con.execute(select_documents(con))]
            texts = {d.id: d.text for d in docs}
            chunks = [
                Chunk(
                    id=r[0],
                    doc_id=r[1],
                    ordinal=r[2],
                    start=r[3],
                    end=r[4],
                    text=texts[r[1]][r[3] : r[4]],
                    n_tokens=r[5],
                    n_tiktoken=r[6],
                )
                for r in con.execute(
                    'SELECT id, doc_id, ordinal, start, "end", n_tokens, n_tiktoken '
                    "FROM chunks ORDER BY row"
                )
            ]
            rows = con.execute(
                'SELECT doc_id, start, "end", chunk_row FROM sentences ORDER BY row'
            ).fetchall()
        finally:
            con.close()
        chunk_vectors = np.load(path / "chunk_vectors.npy", mmap_mode="r")
        sentence_vectors = np.load(path / "sentence_vectors.npy", mmap_mode="r")
    except (OSError, ValueError, KeyError, sqlite3.Error) as exc:
        raise IndexStoreError(
            f"index at {path} is corrupt ({exc.__class__.__name__}: {exc}): "
            "run `rag index --rebuild`"
        ) from exc
    sentences = SentenceTable(
        doc_ids=[r[0] for r in rows],
        starts=np.array([r[1] for r in rows], dtype=np.int64),
        ends=np.array([r[2] for r in rows], dtype=np.int64),
        chunk_rows=np.array([r[3] for r in rows], dtype=np.int64),
        vectors=sentence_vectors,
    )
    if len(chunk_vectors) != len(chunks) or len(sentence_vectors) != len(rows):
        raise IndexStoreError(
            f"index at {path} is corrupt (vector and table counts differ): "
            "run `rag index --rebuild`"
        )
    return IndexData(manifest, docs, chunks, chunk_vectors, sentences)


def read_engines(path: Path, data: IndexData) -> tuple[DenseIndex, LexicalIndex]:
    """The dense and lexical indexes of a version (the kind the manifest records)."""
    from rag.engines import load_dense, load_lexical

    kind = str(data.manifest.get("dense_index", "flat"))
    store = str(data.manifest.get("store", {}).get("kind", "faiss"))
    try:
        return load_dense(path, kind, data.chunk_vectors, store), load_lexical(path)
    except IndexStoreError:
        raise
    except Exception as exc:  # faiss raises RuntimeError, bm25s assorted errors
        raise IndexStoreError(
            f"index at {path} is corrupt ({exc.__class__.__name__}): run `rag index --rebuild`"
        ) from exc

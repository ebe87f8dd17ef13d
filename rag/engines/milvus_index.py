"""Milvus, the second dense backend: one collection per index version, an alias on the live one.

The only module that imports pymilvus. The same client code talks to Milvus Lite (a local
`*.db` path; pure Python, in-process, one process per file) and to a Milvus server
(`http://host:19530`).

Invariants:
- A version's collection is named in its `milvus.json`, written *before* the collection is
  created, so a build killed at any point leaves a file naming what to drop (remove_stale).
- A snapshot searches its own collection by name, never the alias, so requests in flight
  on an older version are not affected by a rebuild; `<prefix>_live` is moved only after
  the version is live on disk (`publish`), for outside readers.
- Rows are the chunk rows of the version (primary key); offsets and texts stay in the
  version's SQLite tables, so citations are exact whatever the store.
- Filters are evaluated by Milvus as an expression (doc ids, source, date range) and then
  re-checked against the snapshot's row mask, so the result equals FAISS's exact filter.
- Lexical search stays in bm25s: Milvus Lite's BM25 function tokenises with its own
  analyzer (`\\w+`, lowercase, no stemming or stopwords), keeps IDF per segment and exposes
  no document frequencies (which the answerer needs). See docs/scale.md.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.engines.base import Ranking, RowFilter
from rag.errors import IndexStoreError
from rag.models import Chunk, Document, Filters

logger = logging.getLogger(__name__)

FILE = "milvus.json"
INSERT_BATCH = 2000
HNSW_M = 32
HNSW_EF = 128
KINDS = ("flat", "hnsw", "ivf-sq8")  # ivf-sq8 (a big auto index) becomes HNSW here
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class MilvusTarget:
    """Where versions are written: the URI (absolute path for Milvus Lite) and name prefix."""

    uri: str
    prefix: str = "rag"
    timeout: float = 10.0

    @property
    def alias(self) -> str:
        return f"{self.prefix}_live"


def resolve_uri(uri: str | None, index_dir: Path) -> str:
    """A server URI as given; a local path made absolute (default `<index_dir>/milvus.db`)."""
    if uri and "://" in uri:
        return uri
    path = Path(uri) if uri else index_dir / "milvus.db"
    if path.suffix != ".db":
        raise IndexStoreError(
            f"RAG_MILVUS_URI {uri!r} is neither a server URI (http://host:19530) "
            "nor a Milvus Lite file ending in .db"
        )
    return str(path.resolve())


def connect(uri: str, timeout: float = 10.0) -> Any:
    """One client per URI and process (Milvus Lite serves a file from a thread in-process)."""
    with _clients_lock:
        if uri in _clients:
            return _clients[uri]
        from pymilvus import MilvusClient

        if "://" not in uri:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            _check_lite_lock(Path(uri))
            for name in ("milvus_lite.server_manager", "grpc._server"):
                logging.getLogger(name).setLevel(logging.CRITICAL)  # we report errors ourselves
        try:
            client = MilvusClient(uri=uri, timeout=timeout)
        except Exception as exc:  # pymilvus raises MilvusException and assorted others
            raise IndexStoreError(f"cannot reach Milvus at {uri}: {_reason(exc)}") from exc
        _clients[uri] = client
        return client


def _check_lite_lock(path: Path) -> None:
    """Milvus Lite serves a file from one process only; say so instead of a vague failure."""
    import fcntl

    lock = path / "LOCK"
    if not lock.is_file():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        raise IndexStoreError(
            f"Milvus Lite file {path} is open in another process (Milvus Lite allows one "
            "process per file): rebuild from the serving process (`rag serve --watch`, "
            "POST /v1/index/rebuild) or use a Milvus server (RAG_MILVUS_URI=http://host:19530)"
        ) from None
    finally:
        os.close(fd)


def _reason(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())[:300]


def filter_expression(filters: Filters) -> str:
    """The user's filters as a Milvus boolean expression (empty string: no filter)."""
    parts = []
    if filters.doc_ids:
        parts.append(f"doc_id in {_list(filters.doc_ids)}")
    if filters.sources:
        likes = [f"source_lc like {_str('%' + s.lower() + '%')}" for s in filters.sources]
        parts.append("(" + " or ".join(likes) + ")")
    if filters.date_from or filters.date_to:
        parts.append('date != ""')
    if filters.date_from:
        parts.append(f"date >= {_str(filters.date_from.isoformat())}")
    if filters.date_to:
        parts.append(f"date <= {_str(filters.date_to.isoformat())}")
    return " and ".join(parts)


def _str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_str(v) for v in values) + "]"


def chunk_meta(
    doc_id: str, title: str, source: str | None, date: str | None, start: int, end: int
) -> dict[str, Any]:
    """The metadata row Milvus stores beside a chunk's vector (what filters look at)."""
    return {
        "doc_id": doc_id,
        "title": _clip(title, 1000),
        "source_lc": _clip((source or "").lower(), 1000),
        "date": date or "",
        "start": start,
        "end": end,
    }


def _clip(text: str | None, max_bytes: int) -> str:
    data = (text or "").encode()[:max_bytes]
    return data.decode(errors="ignore")


class MilvusIndex:
    """A version's vectors in a Milvus collection (FLAT or HNSW, inner product)."""

    def __init__(self, target: MilvusTarget, collection: str, kind: str, n: int) -> None:
        self.target = target
        self.collection = collection
        self.kind = kind
        self.n = n
        self._pending: tuple[Iterable[tuple[np.ndarray, list[dict[str, Any]]]], int | None] | None
        self._pending = None

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        kind: str,
        chunks: Sequence[Chunk],
        docs: dict[str, Document],
        target: MilvusTarget,
    ) -> Self:
        """An index over in-memory vectors, to be written by `save`."""
        meta = [
            chunk_meta(c.doc_id, d.title, d.source, d.date, c.start, c.end)
            for c in chunks
            for d in (docs[c.doc_id],)
        ]
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return cls.build_blocks([(vectors, meta)], len(chunks), kind, target, vectors.shape[1])

    @classmethod
    def build_blocks(
        cls,
        blocks: Iterable[tuple[np.ndarray, list[dict[str, Any]]]],
        n: int,
        kind: str,
        target: MilvusTarget,
        dim: int | None = None,
    ) -> Self:
        """An index to be written by `save` from `(vectors, metadata rows)` blocks in row order
        (read lazily then; nothing reaches Milvus before `save`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown Milvus index kind {kind!r}")
        connect(target.uri, target.timeout)  # fail early and clearly when unreachable
        name = f"{target.prefix}_v{time.time_ns()}_{os.getpid()}"
        index = cls(target, name, kind, n)
        index._pending = (blocks, dim)
        return index

    def __len__(self) -> int:
        return self.n

    def _client(self) -> Any:
        return connect(self.target.uri, self.target.timeout)

    def search(self, qvec: np.ndarray, k: int, rows: RowFilter | None = None) -> Ranking:
        if not self.n or k <= 0:
            return []
        expr = filter_expression(rows.filters) if rows is not None else ""
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.kind in ("hnsw", "ivf-sq8"):
            params["params"] = {"ef": max(HNSW_EF, k)}
        try:
            hits = self._client().search(
                self.collection,
                data=[np.asarray(qvec, dtype=np.float32).tolist()],
                anns_field="vector",
                limit=min(k, self.n),
                filter=expr,
                search_params=params,
            )[0]
        except Exception as exc:
            raise IndexStoreError(
                f"Milvus search failed ({self.target.uri}): {_reason(exc)}"
            ) from exc
        found = [(int(h["row"]), float(h["distance"])) for h in hits]
        if rows is not None:
            found = [(r, s) for r, s in found if rows.mask[r]]
        return sorted(found, key=lambda rs: (-rs[1], rs[0]))

    def save(self, folder: Path) -> None:
        """Write the collection (named in `folder/milvus.json` first), index and load it."""
        assert self._pending is not None, "save() of a loaded index"
        blocks, dim = self._pending
        record = {"uri": self.target.uri, "collection": self.collection, "kind": self.kind}
        record |= {"prefix": self.target.prefix, "rows": self.n}
        (folder / FILE).write_text(json.dumps(record, indent=2))
        client = self._client()
        try:
            created, row = False, 0
            for vectors, meta in blocks:
                if not created:
                    self._create(client, int(vectors.shape[1]))
                    created = True
                row = self._insert(client, row, vectors, meta)
            if not created:
                self._create(client, int(dim or 1))
            if row != self.n:
                raise IndexStoreError(f"Milvus build got {row} rows, expected {self.n}")
            client.flush(self.collection)
            client.load_collection(self.collection)
        except IndexStoreError:
            raise
        except Exception as exc:
            raise IndexStoreError(
                f"writing to Milvus at {self.target.uri} failed: {_reason(exc)}"
            ) from exc
        self._pending = None

    def _insert(
        self, client: Any, row: int, vectors: np.ndarray, meta: list[dict[str, Any]]
    ) -> int:
        """Insert one block (rows `row`…) in batches of `INSERT_BATCH`; the next row."""
        vectors = np.asarray(vectors, dtype=np.float32)
        for lo in range(0, len(vectors), INSERT_BATCH):
            hi = lo + INSERT_BATCH
            batch = [
                {"row": row + lo + i, "vector": v.tolist(), **m}
                for i, (v, m) in enumerate(zip(vectors[lo:hi], meta[lo:hi], strict=True))
            ]
            client.insert(self.collection, batch)
        return row + len(vectors)

    def _create(self, client: Any, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
        schema.add_field("title", DataType.VARCHAR, max_length=1024)
        schema.add_field("source_lc", DataType.VARCHAR, max_length=1024)
        schema.add_field("date", DataType.VARCHAR, max_length=16)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        params = client.prepare_index_params()
        if self.kind in ("hnsw", "ivf-sq8"):  # Milvus gets HNSW for FAISS's IVF-SQ8 too
            params.add_index(
                field_name="vector",
                index_type="HNSW",
                metric_type="IP",
                params={"M": HNSW_M, "efConstruction": 80},
            )
        else:
            params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        client.create_collection(self.collection, schema=schema, index_params=params)

    def publish(self) -> None:
        """Point `<prefix>_live` at this version's collection (after the version is live)."""
        client = self._client()
        alias = self.target.alias
        try:
            if alias in client.list_aliases().get("aliases", []):
                client.alter_alias(self.collection, alias)
            else:
                client.create_alias(self.collection, alias)
        except Exception as exc:  # the alias is for outside readers; snapshots use names
            logger.warning("could not move Milvus alias %s: %s", alias, _reason(exc))

    @classmethod
    def load(cls, folder: Path, vectors: np.ndarray, kind: str = "flat") -> Self:
        record = read_record(folder)
        target = MilvusTarget(record["uri"], record.get("prefix", "rag"))
        client = connect(target.uri, target.timeout)
        name = record["collection"]
        try:
            if not client.has_collection(name):
                raise IndexStoreError(
                    f"Milvus collection {name} of index {folder.name} is missing at "
                    f"{target.uri}: run `rag index --rebuild`"
                )
            client.load_collection(name)
        except IndexStoreError:
            raise
        except Exception as exc:
            raise IndexStoreError(f"cannot open Milvus collection {name}: {_reason(exc)}") from exc
        if int(record.get("rows", -1)) != len(vectors):
            raise IndexStoreError(f"index at {folder} is corrupt (Milvus row count differs)")
        return cls(target, name, record.get("kind", kind), len(vectors))


def read_record(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / FILE).read_text()))
    except (OSError, ValueError) as exc:
        raise IndexStoreError(
            f"index at {folder} is corrupt ({FILE} unreadable): run `rag index --rebuild`"
        ) from exc


def drop_version(folder: Path) -> None:
    """Drop the collection a (removed or abandoned) version folder names; never raises."""
    if not (folder / FILE).is_file():
        return
    try:
        record = read_record(folder)
        client = connect(record["uri"], float(record.get("timeout", 10.0)))
        name = record["collection"]
        if client.has_collection(name):
            for alias in client.list_aliases(collection_name=name).get("aliases", []):
                client.drop_alias(alias)  # only when the live version left Milvus
            client.release_collection(name)
            client.drop_collection(name)
    except Exception as exc:
        logger.warning("could not drop the Milvus collection of %s: %s", folder.name, exc)

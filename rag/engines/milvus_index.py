"""Milvus, the second dense backend: index versions as row lifetimes in shared collections.

With `milvus_client` (connections), the only module that imports pymilvus. The same client
code talks to Milvus Lite (a local `*.db` path; pure Python, in-process, one process per
file) and to a Milvus server (`http://host:19530`).

Invariants:
- A version searches `born <= seq and died > seq` of its collection (the bookkeeping is in
  `milvus_versions`): a full build (first build, `--rebuild`, settings, kind or store change)
  writes a new collection; an incremental one inserts only the chunks of added and changed
  articles into the previous version's collection and marks the dropped ones `died = seq`,
  so versions on disk keep seeing exactly their own chunks.
- A version's `milvus.json` (collection, seq) is written *before* Milvus is touched, so a
  build killed at any point leaves a file naming what to clean (`release`, run by the next
  build under the lock): rows no version on disk sees are deleted, a collection no version
  uses is dropped. A version checks it sees exactly its own row count before it is switched.
- A snapshot searches its own collection by name and seq, never the alias, so requests in
  flight on an older version are not affected by a rebuild; `<prefix>_live` is moved only
  after the version is live on disk (`publish`), which also sets the collection property
  `rag.live_seq`: outside readers must filter on `born <= s and died > s` with it.
- Hits come back as chunk keys, mapped to the version's rows; offsets and texts stay in the
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
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.choices import DENSE_KINDS
from rag.engines.base import Ranking, RowFilter
from rag.engines.milvus_client import connect, reason
from rag.engines.milvus_versions import (
    FILE,
    KEYS_FILE,
    Block,
    Plan,
    VersionRows,
    chunk_meta,
    collect,
    count,
    key_map,
    new_rows,
    plan,
    read_record,
    release_versions,
    retire,
    rows_of,
    seqs_using,
    visible,
)
from rag.errors import IndexStoreError
from rag.models import Chunk, Document, Filters

logger = logging.getLogger(__name__)

LIVE_SEQ = "rag.live_seq"  # collection property: the seq of the live version (outside readers)
HNSW_M = 32
HNSW_EF = 128
KINDS = DENSE_KINDS  # ivf-sq8 (a big auto index) becomes HNSW here


@dataclass(frozen=True, slots=True)
class MilvusTarget:
    """Where versions are written: the URI (absolute path for Milvus Lite) and name prefix."""

    uri: str
    prefix: str = "rag"
    timeout: float = 10.0

    @property
    def alias(self) -> str:
        return f"{self.prefix}_live"


def filter_expression(filters: Filters) -> str:
    """The user's filters as a Milvus boolean expression (empty string: no filter)."""
    parts = []
    if filters.doc_ids:
        parts.append(f"doc_id in {_list(filters.doc_ids)}")
    if filters.sources:
        likes = [f"source_lc like {_str('%' + s.lower() + '%')}" for s in filters.sources]
        parts.append("(" + " or ".join(likes) + ")")
    if filters.date_from or filters.date_to:
        parts.append('date >= "0"')  # a full date: not "" (undated) nor "--MM-DD" (no year)
    if filters.date_from:
        parts.append(f"date >= {_str(filters.date_from.isoformat())}")
    if filters.date_to:
        parts.append(f"date <= {_str(filters.date_to.isoformat())}")
    return " and ".join(parts)


def _str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_str(v) for v in values) + "]"


class MilvusIndex:
    """A version's view of a Milvus collection (FLAT or HNSW, inner product): the rows it
    sees (`seq`) and the map from their chunk keys to its rows."""

    def __init__(
        self,
        target: MilvusTarget,
        collection: str,
        kind: str,
        n: int,
        seq: int | None = None,
        keymap: np.ndarray | None = None,
    ) -> None:
        self.target, self.collection, self.kind, self.n = target, collection, kind, n
        self.seq = seq  # None: an old-format version, its own collection keyed by row
        self.keymap = keymap
        self.written = {"inserted": 0, "retired": 0}  # rows this build wrote (after save)
        self._pending: VersionRows | None = None

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        kind: str,
        chunks: Sequence[Chunk],
        docs: dict[str, Document],
        target: MilvusTarget,
    ) -> Self:
        """An index over in-memory vectors, written in full (a new collection) by `save`."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        meta = [
            chunk_meta(c.id, c.doc_id, d.title, d.source, d.date, c.start, c.end)
            for c in chunks
            for d in (docs[c.doc_id],)
        ]

        def blocks(ranges: Sequence[tuple[int, int]]) -> Iterator[Block]:
            return ((vectors[lo:hi], meta[lo:hi]) for lo, hi in ranges)

        ids = [c.id for c in chunks]
        rows = VersionRows(len(chunks), int(vectors.shape[1]), lambda: ids, blocks)
        return cls.build_rows(rows, kind, target)

    @classmethod
    def build_rows(cls, rows: VersionRows, kind: str, target: MilvusTarget) -> Self:
        """An index to be written by `save` from a version's rows (read lazily then; nothing
        reaches Milvus before `save`, which decides between a new and the previous collection)."""
        if kind not in KINDS:
            raise ValueError(f"unknown Milvus index kind {kind!r}")
        connect(target.uri, target.timeout)  # fail early and clearly when unreachable
        index = cls(target, f"{target.prefix}_v{time.time_ns()}_{os.getpid()}", kind, rows.n)
        index._pending = rows
        return index

    def __len__(self) -> int:
        return self.n

    def _client(self) -> Any:
        return connect(self.target.uri, self.target.timeout)

    def search(self, qvec: np.ndarray, k: int, rows: RowFilter | None = None) -> Ranking:
        if not self.n or k <= 0:
            return []
        expr = filter_expression(rows.filters) if rows is not None else ""
        if self.seq is not None:
            expr = visible(self.seq) + (f" and ({expr})" if expr else "")
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
                output_fields=["key"] if self.seq is not None else None,
                search_params=params,
            )[0]
        except Exception as exc:
            raise IndexStoreError(
                f"Milvus search failed ({self.target.uri}): {reason(exc)}"
            ) from exc
        if self.seq is None:
            found = [(int(h["row"]), float(h["distance"])) for h in hits]
        else:
            assert self.keymap is not None
            at = rows_of(self.keymap, [int(h["entity"]["key"]) for h in hits])
            found = [(r, float(h["distance"])) for r, h in zip(at, hits, strict=True)]
        if rows is not None:
            found = [(r, s) for r, s in found if rows.mask[r]]
        return sorted(found, key=lambda rs: (-rs[1], rs[0]))

    def save(self, folder: Path) -> None:
        """Write the version's rows: into a new collection, or appended to the previous
        version's (see `milvus_versions`); `folder/milvus.json` names them first."""
        assert self._pending is not None, "save() of a loaded index"
        rows, versions, t = self._pending, folder.parent, self.target
        self.keymap = key_map(rows.ids())
        client = self._client()
        p = plan(versions, rows.previous, t.uri, t.prefix, self.kind, rows.dim, self.collection)
        try:
            if p.base is not None and not client.has_collection(p.collection):
                p = Plan(self.collection, p.seq, None)
        except Exception as exc:
            raise IndexStoreError(f"Milvus at {t.uri} failed: {reason(exc)}") from exc
        self.collection, self.seq = p.collection, p.seq
        record = {"uri": t.uri, "collection": p.collection, "kind": self.kind, "prefix": t.prefix}
        record |= {"rows": self.n, "dim": rows.dim, "seq": p.seq, "base": p.base}
        (folder / FILE).write_text(json.dumps(record, indent=2))  # before touching Milvus
        np.save(folder / KEYS_FILE, self.keymap)
        try:
            if p.base is None:
                self._create(client, rows.dim)
                self._insert(client, rows.blocks([(0, self.n)]))
            else:  # sweep a killed build's rows, drop what changed, add the new
                collect(client, p.collection, seqs_using(versions, record))
                self.written["retired"] = retire(
                    client, p.collection, rows.retired(), p.base, p.seq
                )
                self._insert(client, rows.blocks(rows.fresh))
            client.flush(self.collection)
            client.load_collection(self.collection)
            seen = count(client, self.collection, visible(p.seq))
        except IndexStoreError:
            raise
        except Exception as exc:
            raise IndexStoreError(f"writing to Milvus at {t.uri} failed: {reason(exc)}") from exc
        if seen != self.n:
            raise IndexStoreError(f"Milvus version {p.seq} sees {seen} rows, expected {self.n}")
        self._pending = None
        how = "a new collection" if p.base is None else f"extending version {p.base}"
        logger.info("Milvus version %d (%s): %s rows", p.seq, how, self.written)

    def _insert(self, client: Any, blocks: Iterable[Block]) -> None:
        for batch in new_rows(blocks, self.seq or 0):
            client.insert(self.collection, batch)
            self.written["inserted"] += len(batch)

    def _create(self, client: Any, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=8192)
        schema.add_field("key", DataType.INT64)
        schema.add_field("born", DataType.INT64)
        schema.add_field("died", DataType.INT64)
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
        client.create_collection(
            self.collection, schema=schema, index_params=params, consistency_level="Strong"
        )

    def publish(self) -> None:
        """Point `<prefix>_live` at this version's collection and record the seq outside
        readers filter on (`rag.live_seq`), once the version is live."""
        client = self._client()
        alias = self.target.alias
        try:
            if alias in client.list_aliases().get("aliases", []):
                client.alter_alias(self.collection, alias)
            else:
                client.create_alias(self.collection, alias)
            if self.seq is not None:
                props = {LIVE_SEQ: str(self.seq)}
                client.alter_collection_properties(self.collection, properties=props)
        except Exception as exc:  # the alias is for outside readers; snapshots use names
            logger.warning("could not move Milvus alias %s: %s", alias, reason(exc))

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
            keymap = np.load(folder / KEYS_FILE) if "seq" in record else None
        except IndexStoreError:
            raise
        except Exception as exc:
            raise IndexStoreError(f"cannot open Milvus collection {name}: {reason(exc)}") from exc
        n = len(vectors)
        if int(record.get("rows", -1)) != n or (keymap is not None and keymap.shape != (2, n)):
            raise IndexStoreError(f"index at {folder} is corrupt (Milvus row count differs)")
        seq = int(record["seq"]) if "seq" in record else None
        return cls(target, name, record.get("kind", kind), n, seq, keymap)


def release(gone: Sequence[Path]) -> None:
    """Give back what versions leaving the disk hold in Milvus (`milvus_versions.release`)."""
    release_versions(gone, connect)

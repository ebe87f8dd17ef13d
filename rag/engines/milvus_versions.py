"""Index versions sharing one Milvus collection: every row lives from `born` to `died` (MVCC).

An index version has a sequence number `seq` (in its `milvus.json`). A row (one chunk of one
article as one build wrote it) is visible to version `v` when `born <= v and died > v`; `died`
is `ALIVE` while no later version has dropped it. An incremental build with seq `v` extends the
version `base` it was diffed against, in `base`'s collection: it inserts the chunks of added
and changed articles (`born = v`) and sets `died = v` on the rows of changed and removed
articles that `base` sees. Nothing that an older version sees changes, so every version on disk
searches exactly its own chunks while the collection is shared.

Invariants:
- `seq` grows: a new version takes one more than the largest seq any `milvus.json` under
  `versions/` names (unfinished `.tmp-*` builds included) or any build took before
  (`versions/.milvus-seq`); the record is written before the build touches Milvus, so a
  build killed at any point leaves a file naming what to clean.
- An incremental write appends only to a collection whose newest version on disk is the one
  it extends (`base`), so the versions of a collection form one line of history. Otherwise
  (no usable previous version, another store, kind or dimension, an older version made live
  again) the build writes a new collection in full.
- Garbage: a row no finished version on disk can see (`collect`), i.e. debris of a killed or
  failed build (`born` above the newest seq, or a `died` mark above it, which is reset to
  `ALIVE`) and rows every remaining version has outlived (`died <= ` the oldest seq). Only
  rows invisible to every version still on disk are ever deleted.
- Rows are found by chunk, not by row number: `key` is a 63-bit hash of the chunk id, the
  primary key is `"<chunk id>@<born>"`. A version maps keys to its own rows with a sorted
  array (`milvus_keys.npy`, 16 bytes a chunk); two chunk ids of one version with the same key
  fail the build with a clear error.

This module does not import pymilvus: callers pass a connected client (see `milvus_index`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexStoreError

logger = logging.getLogger(__name__)

FILE = "milvus.json"
KEYS_FILE = "milvus_keys.npy"
SEQ_FILE = ".milvus-seq"
ALIVE = 2**63 - 1  # `died` of a row no version has dropped
QUERY_ROWS = 2000  # rows per query/upsert round trip


# ---------------------------------------------------------------------------- keys


def chunk_key(chunk_id: str) -> int:
    """A stable 63-bit key of a chunk id (the same in every version and process)."""
    digest = hashlib.blake2b(chunk_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def key_map(ids: Iterable[str]) -> np.ndarray:
    """`(2, n)` int64: the keys of chunk rows 0..n-1 sorted, and the row of each; a clear
    error when two chunk ids share a key (the version could not tell them apart)."""
    keys = np.fromiter((chunk_key(i) for i in ids), dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    out = np.stack([keys[order], order.astype(np.int64)])
    same = np.flatnonzero(out[0][1:] == out[0][:-1])
    if len(same):
        rows = out[1][same[0]], out[1][same[0] + 1]
        raise IndexStoreError(
            f"chunk rows {rows[0]} and {rows[1]} have the same 63-bit Milvus key "
            f"{out[0][same[0]]}: rename one of their articles and run `rag index` again"
        )
    return out


def rows_of(keymap: np.ndarray, keys: Sequence[int]) -> list[int]:
    """The version's rows of `keys` (each must be one of its chunks)."""
    want = np.asarray(keys, dtype=np.int64)
    at = np.minimum(np.searchsorted(keymap[0], want), max(keymap.shape[1] - 1, 0))
    if len(want) and (keymap.shape[1] == 0 or not np.array_equal(keymap[0][at], want)):
        raise IndexStoreError("Milvus returned a chunk this index version does not have")
    return [int(r) for r in keymap[1][at]]


# ---------------------------------------------------------------------------- expressions


def visible(seq: int) -> str:
    """The rows version `seq` sees."""
    return f"born <= {seq} and died > {seq}"


def garbage(seqs: Sequence[int]) -> str:
    """Rows no version in `seqs` sees: died before the oldest, born after the newest, or
    born and died between two consecutive ones."""
    s = sorted(set(seqs))
    parts = [f"died <= {s[0]}", f"born > {s[-1]}"]
    parts += [f"(born > {a} and died <= {b})" for a, b in itertools.pairwise(s)]
    return " or ".join(parts)


# ---------------------------------------------------------------------------- records


def read_record(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / FILE).read_text()))
    except (OSError, ValueError) as exc:
        raise IndexStoreError(
            f"index at {folder} is corrupt ({FILE} unreadable): run `rag index --rebuild`"
        ) from exc


def records(versions: Path) -> dict[Path, dict[str, Any]]:
    """The readable `milvus.json` of every folder under `versions/` (`.tmp-*` included)."""
    out: dict[Path, dict[str, Any]] = {}
    if not versions.is_dir():
        return out
    for folder in sorted(versions.iterdir()):
        if (folder / FILE).is_file():
            with contextlib.suppress(IndexStoreError):
                out[folder] = read_record(folder)
    return out


def is_finished(folder: Path) -> bool:
    return not folder.name.startswith(".tmp-")


def same_collection(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a.get("uri"), a.get("collection")) == (b.get("uri"), b.get("collection"))


def seqs_using(versions: Path, record: dict[str, Any], leaving: Iterable[Path] = ()) -> list[int]:
    """Seqs of the finished versions on disk (but `leaving`) that search `record`'s collection;
    -1 stands for an old-format version (no seq), which reads the collection whole."""
    gone = {p.resolve() for p in leaving}
    return sorted(
        int(r.get("seq", -1))
        for folder, r in records(versions).items()
        if is_finished(folder) and folder.resolve() not in gone and same_collection(r, record)
    )


def take_seq(versions: Path) -> int:
    """The next seq: above every `milvus.json` under `versions/` and above the last one taken
    (`versions/.milvus-seq`, replaced atomically), so a seq is never reused, not even that of
    a killed build whose folder was swept."""
    taken = 0
    with contextlib.suppress(OSError, ValueError):
        taken = int((versions / SEQ_FILE).read_text())
    seq = max([taken, *(int(r.get("seq", 0)) for r in records(versions).values())]) + 1
    tmp = versions / f"{SEQ_FILE}.tmp-{os.getpid()}"
    tmp.write_text(f"{seq}\n")
    os.replace(tmp, versions / SEQ_FILE)
    return seq


Block = tuple[np.ndarray, list[dict[str, Any]]]  # vectors and their metadata rows


@dataclass(frozen=True, slots=True)
class VersionRows:
    """What a version write reads from the version being built (lazily, during `save`)."""

    n: int
    dim: int
    ids: Callable[[], Iterable[str]]  # chunk ids in row order
    blocks: Callable[[Sequence[tuple[int, int]]], Iterable[Block]]  # rows of these ranges
    previous: Path | None = None  # the version unchanged articles were copied from
    fresh: tuple[tuple[int, int], ...] = ()  # row ranges of the articles not copied
    retired: Callable[[], Iterable[str]] = tuple  # chunk ids of `previous` not kept


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a version is written: a new collection (`base` None) or `base`'s, extended."""

    collection: str
    seq: int
    base: int | None


def plan(
    versions: Path,
    previous: Path | None,
    uri: str,
    prefix: str,
    kind: str,
    dim: int,
    new_name: str,
) -> Plan:
    """Extend the previous version's collection when it can be (see the module docstring)."""
    seq = take_seq(versions)
    if previous is None or not (previous / FILE).is_file():
        return Plan(new_name, seq, None)
    prev = read_record(previous)
    same = (prev.get("uri"), prev.get("prefix"), prev.get("kind"), prev.get("dim"))
    if "seq" not in prev or same != (uri, prefix, kind, dim):
        return Plan(new_name, seq, None)
    if seqs_using(versions, prev)[-1:] != [int(prev["seq"])]:
        return Plan(new_name, seq, None)  # a newer version uses it: history would fork
    return Plan(str(prev["collection"]), seq, int(prev["seq"]))


# ---------------------------------------------------------------------------- writes


def chunk_meta(
    chunk_id: str,
    doc_id: str,
    title: str,
    source: str | None,
    date: str | None,
    start: int,
    end: int,
) -> dict[str, Any]:
    """The metadata row Milvus stores beside a chunk's vector (what filters look at); the
    chunk id becomes the row's key and primary key."""
    return {
        "chunk": chunk_id,
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


def new_rows(blocks: Iterable[Block], born: int) -> Iterator[list[dict[str, Any]]]:
    """Milvus rows born in version `born` from `(vectors, metadata)` blocks, `QUERY_ROWS` at a
    time (each metadata row names its chunk id under "chunk")."""
    for vectors, meta in blocks:
        vectors = np.asarray(vectors, dtype=np.float32)
        for lo in range(0, len(vectors), QUERY_ROWS):
            hi = lo + QUERY_ROWS
            batch = []
            for v, m in zip(vectors[lo:hi], meta[lo:hi], strict=True):
                row = {k: x for k, x in m.items() if k != "chunk"}
                row |= {"pk": f"{m['chunk']}@{born}", "key": chunk_key(m["chunk"])}
                batch.append(row | {"born": born, "died": ALIVE, "vector": v.tolist()})
            yield batch


def retire(client: Any, collection: str, ids: Iterable[str], base: int, seq: int) -> int:
    """Set `died = seq` on the rows of chunks `ids` that version `base` sees (each must have
    one); the number of rows marked. Milvus upserts whole rows, so they are read back first."""
    marked = 0
    for keys in _batches((chunk_key(i) for i in ids), QUERY_ROWS):
        rows = client.query(
            collection,
            filter=f"key in {keys} and {visible(base)}",
            output_fields=["*"],
            limit=len(keys) + 1,
        )
        if len(rows) != len(keys):
            raise IndexStoreError(
                f"Milvus collection {collection} has {len(rows)} of {len(keys)} rows of "
                f"version {base} it should have: run `rag index --rebuild`"
            )
        client.upsert(collection, [dict(r, died=seq) for r in rows])
        marked += len(rows)
    return marked


def _batches(items: Iterable[int], size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def collect(client: Any, collection: str, seqs: Sequence[int]) -> None:
    """Delete the rows no version in `seqs` sees and reset `died` marks above the newest
    (a killed build's) to `ALIVE`; rows any of them sees stay as they are."""
    if not seqs or min(seqs) < 0:
        return  # old-format versions read the whole collection: leave it alone
    client.load_collection(collection)
    client.delete(collection, filter=garbage(seqs))
    newest = max(seqs)
    while rows := client.query(
        collection,
        filter=f"died > {newest} and died < {ALIVE}",
        output_fields=["*"],
        limit=QUERY_ROWS,
    ):
        client.upsert(collection, [dict(r, died=ALIVE) for r in rows])
    client.flush(collection)


def count(client: Any, collection: str, expr: str) -> int:
    res = client.query(collection, filter=expr, output_fields=["count(*)"])
    return int(res[0]["count(*)"])


def release_versions(gone: Sequence[Path], connect: Callable[[str], Any]) -> None:
    """Give back what versions leaving the disk hold in Milvus; never raises. A collection no
    remaining version uses is dropped; from one still used, the rows no remaining version
    sees are deleted (and a killed build's marks undone, see `collect`)."""
    todo: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    for folder in gone:
        if (folder / FILE).is_file():
            with contextlib.suppress(IndexStoreError):
                record = read_record(folder)
                todo[record["uri"], record["collection"]] = (folder, record)
    for (uri, name), (folder, record) in todo.items():
        try:
            client = connect(uri)
            if not client.has_collection(name):
                continue
            seqs = seqs_using(folder.parent, record, leaving=gone)
            if seqs:
                collect(client, name, seqs)
                continue
            for alias in client.list_aliases(collection_name=name).get("aliases", []):
                client.drop_alias(alias)  # only when the live version left Milvus
            client.release_collection(name)
            client.drop_collection(name)
        except Exception as exc:
            logger.warning("could not release Milvus collection %s of %s: %s", name, folder, exc)

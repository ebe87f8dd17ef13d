"""What an index version records about itself, and which settings force a rebuild.

`settings_fingerprint` lists the settings that shape chunks and vectors, and the version of the
metadata stored with each document: any difference from the live manifest re-embeds
everything. The `copies` record (`rag.ingest.copy_record`: signature format, thresholds, copy
groups) is
not part of it: a version without a current one is brought up to date by the next build
without re-embedding anything. `store_record` says where the dense index lives (FAISS files
or a Milvus collection): a difference rebuilds the engines from the stored vectors.
`dense_kind` picks the dense index by size. `make_manifest` is the manifest a build writes.

`Manifest` is how everything reads one: a frozen, typed view of the JSON record
(`Manifest.from_dict`, `read_manifest`). The record itself stays a plain dict, written and read
as it always was (`rag.index.store`), so older versions still load: an entry they lack reads as its
default here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.index import store
from rag.ingest import copy_record
from rag.retrieve.lexical import LEXICAL_VERSION

if TYPE_CHECKING:
    from rag.settings import Settings

CHUNKER_VERSION = 2  # 2: sentence splitting of text without capitals
EMBED_VERSION = 4  # 2: onnx-int8 one text per call; 3: its feed-forward outputs stay float32;
# 4: those outputs blockwise 8-bit instead
META_VERSION = 2  # the metadata stored with each document (rag.ingest.article_meta); 2: dates
# without
# a year (--MM-DD), HTML and text dates, and date_source. A kept document's row is copied from
# the previous version, so a change here must rebuild to re-derive it for every article.


@dataclass(frozen=True, slots=True)
class Manifest:
    """A version's manifest.json, typed for reading; `record` is the JSON object itself (what
    a build writes back when it only refreshes the file stats)."""

    record: Mapping[str, Any] = field(repr=False, compare=False)
    format_version: int | None
    fingerprint: Mapping[str, Any]  # `settings_fingerprint` of the build: a change rebuilds all
    model: str | None  # the embedding model (the fingerprint's)
    embed_backend: str  # the engine that embedded it; `torch` before the setting existed
    dim: int | None
    max_seq_length: int | None
    dense_index: str | None  # `dense_kind` of the build
    store: Mapping[str, Any]  # `store_record`; FAISS before Milvus could be chosen
    documents: Mapping[str, str]  # doc id -> sha256 of its bytes
    files: Mapping[str, list[int]]  # doc id -> (size, mtime_ns, inode), skipped files included
    warnings: Mapping[str, list[str]]  # doc id -> why it was skipped or altered
    copies: Mapping[str, Any]  # `rag.ingest.copy_record.manifest_record`; empty before copies
    n_documents: int
    n_chunks: int
    n_sentences: int
    built_at: str | None

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Manifest:
        fingerprint = record.get("settings") or {}
        model = record.get("model") or {}
        counts = record.get("counts") or {}
        return cls(
            record=record,
            format_version=record.get("format_version"),
            fingerprint=fingerprint,
            model=fingerprint.get("model"),
            embed_backend=str(fingerprint.get("embed_backend", "torch")),
            dim=model.get("dim"),
            max_seq_length=model.get("max_seq_length"),
            dense_index=record.get("dense_index"),
            store=record.get("store") or {"kind": "faiss"},
            documents=record.get("documents") or {},
            files=record.get("files") or {},
            warnings=record.get("warnings") or {},
            copies=record.get("copies") or {},
            n_documents=int(counts.get("documents", 0)),
            n_chunks=int(counts.get("chunks", 0)),
            n_sentences=int(counts.get("sentences", 0)),
            built_at=record.get("built_at"),
        )

    @property
    def store_kind(self) -> str:
        return str(self.store.get("kind", "faiss"))


def read_manifest(path: Path) -> Manifest:
    """The manifest of the version folder `path` (IndexStoreError when unreadable or of
    another format: `rag.index.store.read_manifest`)."""
    return Manifest.from_dict(store.read_manifest(path))


class BuildSettings(Protocol):
    """The settings a build's decisions read: `rag.settings.Settings` has them all; the no-op
    `rag index` (`rag.index.noop`) reads them without importing pydantic."""

    index_dir: Path
    model: str
    embed_backend: str
    chunk_tokens: int
    chunk_overlap: int
    index_type: str
    hnsw_threshold: int
    ivf_threshold: int
    store: str
    milvus_uri: str | None
    milvus_collection: str


def settings_fingerprint(settings: BuildSettings) -> dict[str, Any]:
    """The settings that change chunks or vectors; any difference forces a full rebuild."""
    return {
        "model": settings.model,
        "embed_backend": settings.embed_backend,
        "embed_version": EMBED_VERSION,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
        "lexical_version": LEXICAL_VERSION,
        "meta_version": META_VERSION,
    }


def store_record(settings: BuildSettings) -> dict[str, Any]:
    """Where the dense index lives, as the manifest records it; a change forces a rebuild of
    the engines (stored vectors are reused, nothing is re-embedded)."""
    if settings.store == "faiss":
        return {"kind": "faiss"}
    from rag.engines.milvus_client import resolve_uri

    uri = resolve_uri(settings.milvus_uri, settings.index_dir)
    return {"kind": "milvus", "uri": uri, "prefix": settings.milvus_collection}


def milvus_target(settings: Settings) -> Any:
    if settings.store != "milvus":
        return None
    from rag.engines.milvus_client import connect
    from rag.engines.milvus_index import MilvusTarget

    record = store_record(settings)
    connect(record["uri"], settings.milvus_timeout)  # unreachable: fail before embedding
    return MilvusTarget(record["uri"], record["prefix"], settings.milvus_timeout)


def dense_kind(settings: BuildSettings, n_chunks: int) -> str:
    if settings.index_type != "auto":
        return settings.index_type
    big = "ivf-sq8" if n_chunks > settings.ivf_threshold else "hnsw"
    return big if n_chunks > settings.hnsw_threshold else "flat"


class WrittenVersion(Protocol):
    """What the manifest records of the version being written (`rag.index.writer.VersionWriter`)."""

    dim: int
    n_chunks: int
    n_sentences: int
    documents: dict[str, str]  # id -> sha256, in id order
    copy_groups: list[copy_record.CopyGroup]


def make_manifest(
    settings: Settings,
    w: WrittenVersion,
    max_seq_length: int,
    files: dict[str, list[int]],
    warnings: dict[str, list[str]],
) -> dict[str, Any]:
    """What a version records about itself; `settings`, `documents` and `files` decide later
    builds (`files`: size, mtime_ns and inode of every listed file, skipped ones included)."""
    return {
        "format_version": store.FORMAT_VERSION,
        "settings": settings_fingerprint(settings),
        "model": {"name": settings.model, "dim": int(w.dim), "max_seq_length": int(max_seq_length)},
        "chunker": {
            "max_tokens": settings.chunk_tokens,
            "overlap_sentences": settings.chunk_overlap,
            "version": CHUNKER_VERSION,
        },
        "dense_index": dense_kind(settings, w.n_chunks),
        "store": store_record(settings),
        "documents": dict(w.documents),
        "files": files,
        "warnings": {k: v for k, v in sorted(warnings.items()) if v},
        "copies": copy_record.manifest_record(w.copy_groups),
        "counts": {
            "documents": len(w.documents),
            "chunks": w.n_chunks,
            "sentences": w.n_sentences,
        },
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }

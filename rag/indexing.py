"""Build or update the index: only new or changed articles are chunked and embedded.

The manifest of the live version records the settings that shape chunks and vectors and the
sha256 of every article. Unchanged articles keep their stored chunks and vectors; a change of
those settings (or `rebuild=True`) re-embeds everything. The model is loaded only when there is
something to embed, so a no-op `rag index` returns without importing torch.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rag import store
from rag.engines import build_dense, build_lexical
from rag.errors import IndexError_
from rag.lexical import LEXICAL_VERSION, tokenize
from rag.loading import load_documents
from rag.models import BuildReport, Chunk, Document
from rag.settings import Settings
from rag.store import IndexData, SentenceTable

if TYPE_CHECKING:
    from rag.embedding import Embedder

logger = logging.getLogger(__name__)

CHUNKER_VERSION = 2  # 2: sentence splitting of text without capitals


def settings_fingerprint(settings: Settings) -> dict[str, Any]:
    """The settings that change chunks or vectors; any difference forces a full rebuild."""
    return {
        "model": settings.model,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
        "lexical_version": LEXICAL_VERSION,
    }


def store_record(settings: Settings) -> dict[str, Any]:
    """Where the dense index lives, as the manifest records it; a change forces a rebuild of
    the engines (stored vectors are reused, nothing is re-embedded)."""
    if settings.store == "faiss":
        return {"kind": "faiss"}
    from rag.engines.milvus_index import resolve_uri

    uri = resolve_uri(settings.milvus_uri, settings.index_dir)
    return {"kind": "milvus", "uri": uri, "prefix": settings.milvus_collection}


def _milvus_target(settings: Settings) -> Any:
    if settings.store != "milvus":
        return None
    from rag.engines.milvus_index import MilvusTarget, connect

    record = store_record(settings)
    connect(record["uri"], settings.milvus_timeout)  # unreachable: fail before embedding
    return MilvusTarget(record["uri"], record["prefix"], settings.milvus_timeout)


def dense_kind(settings: Settings, n_chunks: int) -> str:
    if settings.index_type != "auto":
        return settings.index_type
    return "hnsw" if n_chunks > settings.hnsw_threshold else "flat"


def _load_previous(settings: Settings) -> tuple[IndexData | None, str]:
    try:
        _name, path = store.version_path(settings.index_dir)
        return store.read_data(path), ""
    except IndexError_ as exc:
        if store.current_version(settings.index_dir) is None:
            return None, "no previous index"
        logger.warning("previous index unusable, rebuilding everything: %s", exc)
        return None, "previous index unusable"


def _live_manifest(settings: Settings) -> dict[str, Any] | None:
    try:
        _name, path = store.version_path(settings.index_dir)
        return store.read_manifest(path)
    except IndexError_:
        return None


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """What a build must do: the documents to (re-)embed and what to keep from the last one."""

    docs: list[Document]  # every current document, in id order
    previous: IndexData | None  # None: embed everything
    reason: str
    added: list[str]
    changed: list[str]
    removed: list[str]

    @property
    def full(self) -> bool:
        return self.previous is None

    @property
    def todo(self) -> list[Document]:
        stale = set(self.added) | set(self.changed)
        return [d for d in self.docs if self.full or d.id in stale]


@dataclass(frozen=True, slots=True)
class EmbeddedDoc:
    """A freshly chunked and embedded document (sentence spans absolute)."""

    chunks: list[Chunk]
    vectors: np.ndarray  # (n_chunks, dim) float32
    sentence_spans: list[list[tuple[int, int]]]  # per chunk
    sentence_vectors: list[np.ndarray]  # per chunk: (n_spans, dim)


def build_index(
    settings: Settings,
    *,
    rebuild: bool = False,
    embedder: Embedder | None = None,
    progress: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BuildReport:
    """Bring the index in `settings.index_dir` up to date with `settings.seeds_dir`.

    diff (plan) → embed the new and changed documents → splice them with the unchanged ones'
    stored chunks and vectors → write a new version and switch to it.
    """
    t0 = time.perf_counter()
    docs, load_warnings = load_documents(settings.seeds_dir)
    warnings = [str(w) for w in load_warnings]
    with store.build_lock(settings.index_dir, settings.lock_timeout):
        if not rebuild and (report := _up_to_date(settings, docs)) is not None:
            report.warnings = warnings
            report.seconds = time.perf_counter() - t0
            return report
        plan = plan_build(settings, docs, rebuild)
        milvus = _milvus_target(settings)
        todo = plan.todo
        if settings.ray_address and todo:  # chunk + embed on Ray, gathered in id order
            from rag.distributed import ray_embed_stream

            stream = ray_embed_stream(settings, todo)
            fresh = {d.id: e for d, e in stream}
            dim, max_len = stream.dim, stream.max_length
        else:
            if embedder is None and todo:
                from rag.embedding import Embedder

                embedder = Embedder.load(settings)
            fresh = embed_documents(settings, todo, embedder, progress, on_progress)
            if embedder is not None:
                dim, max_len = embedder.dim, embedder.max_length
            else:
                assert plan.previous is not None
                dim = plan.previous.chunk_vectors.shape[1]
                max_len = plan.previous.manifest["model"]["max_seq_length"]
        data = splice(plan.docs, plan.previous, fresh, dim)
        data.manifest = make_manifest(settings, data, max_len)
        dense = build_dense(
            data.chunk_vectors,
            data.manifest["dense_index"],
            milvus=milvus,
            chunks=data.chunks,
            docs={d.id: d for d in data.documents},
        )
        lexical = build_lexical([tokenize(c.text) for c in data.chunks])
        version = store.write_version(settings.index_dir, data, dense, lexical)
        store.remove_stale(settings.index_dir, settings.keep_versions)
    report = BuildReport(
        version=version,
        full_rebuild=plan.full,
        reason=plan.reason,
        added=[d.id for d in docs] if plan.full else plan.added,
        changed=plan.changed,
        removed=plan.removed,
        unchanged=len(docs) - len(todo),
        documents=len(docs),
        chunks=len(data.chunks),
        chunks_embedded=sum(len(e.chunks) for e in fresh.values()),
        warnings=warnings,
        seconds=time.perf_counter() - t0,
    )
    logger.info("index %s: %s", report.version, report.reason)
    return report


def _up_to_date(settings: Settings, docs: Sequence[Document]) -> BuildReport | None:
    """A report when the live version already matches, decided from its manifest alone (no
    tables or vectors are read, torch is not imported); None when a build is needed."""
    manifest = _live_manifest(settings)
    if manifest is None:
        return None
    n_chunks = int(manifest.get("counts", {}).get("chunks", 0))
    if (
        manifest.get("settings") != settings_fingerprint(settings)
        or manifest.get("documents") != {d.id: d.sha256 for d in docs}
        or manifest.get("dense_index") != dense_kind(settings, n_chunks)
        or manifest.get("store", {"kind": "faiss"}) != store_record(settings)
    ):
        return None
    return BuildReport(
        version=store.current_version(settings.index_dir),
        full_rebuild=False,
        reason="up to date",
        unchanged=len(docs),
        documents=len(docs),
        chunks=n_chunks,
    )


def plan_build(settings: Settings, docs: list[Document], rebuild: bool) -> BuildPlan:
    """Compare the articles with the live version: what was added, changed and removed."""
    previous, reason = (None, "rebuild requested") if rebuild else _load_previous(settings)
    if previous is not None and previous.manifest.get("settings") != settings_fingerprint(settings):
        previous, reason = None, "model or chunker settings changed"
    before = {d.id: d.sha256 for d in previous.documents} if previous else {}
    return BuildPlan(
        docs=docs,
        previous=previous,
        reason=reason if previous is None else "incremental",
        added=[] if previous is None else [d.id for d in docs if d.id not in before],
        changed=[d.id for d in docs if d.id in before and before[d.id] != d.sha256],
        removed=sorted(set(before) - {d.id for d in docs}),
    )


def embed_documents(
    settings: Settings,
    docs: Sequence[Document],
    embedder: Embedder | None,
    progress: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, EmbeddedDoc]:
    """Chunk the documents and embed all their chunks in one batched pass."""
    from rag.chunking import ChunkerConfig, chunk_with_sentences

    if not docs:
        return {}
    assert embedder is not None
    config = ChunkerConfig(max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap)
    chunked = {d.id: chunk_with_sentences(d, embedder.counter, config) for d in docs}
    flat = [
        (c, spans)
        for chunks, spans_list in chunked.values()
        for c, spans in zip(chunks, spans_list, strict=True)
    ]
    encoded = embedder.encode_chunks(
        [c.text for c, _ in flat],
        [[(s - c.start, e - c.start) for s, e in spans] for c, spans in flat],
        settings.batch_size,
        progress,
        on_progress,
    )
    out: dict[str, EmbeddedDoc] = {}
    pos = 0
    for doc_id, (chunks, spans_list) in chunked.items():
        n = len(chunks)
        out[doc_id] = EmbeddedDoc(
            chunks,
            encoded.vectors[pos : pos + n],
            spans_list,
            encoded.sentence_vectors[pos : pos + n],
        )
        pos += n
    return out


class _Tables:
    """Chunk rows, vectors and sentence rows being assembled for a new version."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.vectors: list[np.ndarray] = []
        self.s_doc: list[str] = []
        self.s_start: list[np.ndarray] = []
        self.s_end: list[np.ndarray] = []
        self.s_chunk: list[np.ndarray] = []
        self.s_vecs: list[np.ndarray] = []

    def add_fresh(self, doc_id: str, e: EmbeddedDoc) -> None:
        base = len(self.chunks)
        self.chunks.extend(e.chunks)
        self.vectors.append(e.vectors)
        for i, spans in enumerate(e.sentence_spans):
            self.s_doc.extend([doc_id] * len(spans))
            self.s_start.append(np.array([s for s, _ in spans], np.int64))
            self.s_end.append(np.array([x for _, x in spans], np.int64))
            self.s_chunk.append(np.full(len(spans), base + i, np.int64))
            self.s_vecs.append(e.sentence_vectors[i].astype(np.float16))

    def add_stored(
        self, prev: IndexData, rows: tuple[int, int], sent_rows: tuple[int, int]
    ) -> None:
        base = len(self.chunks)
        lo, hi = rows
        slo, shi = sent_rows
        sent = prev.sentences
        self.chunks.extend(prev.chunks[lo:hi])
        self.vectors.append(prev.chunk_vectors[lo:hi])
        self.s_doc.extend(sent.doc_ids[slo:shi])
        self.s_start.append(sent.starts[slo:shi])
        self.s_end.append(sent.ends[slo:shi])
        self.s_chunk.append(sent.chunk_rows[slo:shi] - lo + base)
        self.s_vecs.append(sent.vectors[slo:shi])

    def data(self, docs: list[Document], dim: int) -> IndexData:
        def cat(parts: list[np.ndarray], dtype: Any, width: int | None = None) -> np.ndarray:
            if parts:
                return np.concatenate(parts).astype(dtype, copy=False)
            return np.zeros((0, width) if width else (0,), dtype)

        sentences = SentenceTable(
            doc_ids=self.s_doc,
            starts=cat(self.s_start, np.int64),
            ends=cat(self.s_end, np.int64),
            chunk_rows=cat(self.s_chunk, np.int64),
            vectors=cat(self.s_vecs, np.float16, dim),
        )
        return IndexData({}, docs, self.chunks, cat(self.vectors, np.float32, dim), sentences)


def splice(
    docs: list[Document],
    previous: IndexData | None,
    fresh: dict[str, EmbeddedDoc],
    dim: int,
) -> IndexData:
    """The new version's tables in document-id order: fresh documents from `fresh`, the rest
    copied from `previous` (their stored chunks, vectors and sentence vectors)."""
    old_rows = store.row_ranges([c.doc_id for c in previous.chunks]) if previous else {}
    old_sent = store.row_ranges(previous.sentences.doc_ids) if previous else {}
    tables = _Tables()
    for d in docs:
        if d.id in fresh:
            tables.add_fresh(d.id, fresh[d.id])
        else:
            assert previous is not None
            tables.add_stored(previous, old_rows.get(d.id, (0, 0)), old_sent.get(d.id, (0, 0)))
    return tables.data(docs, dim)


def make_manifest(settings: Settings, data: IndexData, max_seq_length: int) -> dict[str, Any]:
    """What a version records about itself; `settings` and `documents` decide later builds."""
    return {
        "format_version": store.FORMAT_VERSION,
        "settings": settings_fingerprint(settings),
        "model": {
            "name": settings.model,
            "dim": int(data.chunk_vectors.shape[1]),
            "max_seq_length": int(max_seq_length),
        },
        "chunker": {
            "max_tokens": settings.chunk_tokens,
            "overlap_sentences": settings.chunk_overlap,
            "version": CHUNKER_VERSION,
        },
        "dense_index": dense_kind(settings, len(data.chunks)),
        "store": store_record(settings),
        "documents": {d.id: d.sha256 for d in data.documents},
        "counts": {
            "documents": len(data.documents),
            "chunks": len(data.chunks),
            "sentences": len(data.sentences.doc_ids),
        },
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }

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
from typing import Any

import numpy as np

from rag import store
from rag.errors import IndexError_
from rag.lexical import LEXICAL_VERSION, tokenize
from rag.loading import load_documents
from rag.models import BuildReport, Chunk, Document
from rag.settings import Settings
from rag.store import IndexData, SentenceTable

logger = logging.getLogger(__name__)

CHUNKER_VERSION = 2  # 2: sentence splitting of text without capitals
HNSW_M = 32


def settings_fingerprint(settings: Settings) -> dict[str, Any]:
    """The settings that change chunks or vectors; any difference forces a full rebuild."""
    return {
        "model": settings.model,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
        "lexical_version": LEXICAL_VERSION,
    }


def dense_kind(settings: Settings, n_chunks: int) -> str:
    if settings.index_type != "auto":
        return settings.index_type
    return "hnsw" if n_chunks > settings.hnsw_threshold else "flat"


def build_dense(vectors: np.ndarray, kind: str) -> Any:
    """Inner product over normalised vectors = cosine similarity."""
    import faiss

    dim = vectors.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def build_bm25(chunks: Sequence[Chunk]) -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    bm25 = bm25s.BM25()
    # bm25s needs a non-empty vocabulary and rows; a chunk of stopwords gets a placeholder term
    bm25.index([tokenize(c.text) or ["\x00"] for c in chunks], show_progress=False)
    return bm25


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


def _doc_rows(ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Row range of each document in a table sorted by document id."""
    ranges: dict[str, tuple[int, int]] = {}
    for i, doc_id in enumerate(ids):
        lo, _ = ranges.get(doc_id, (i, i))
        ranges[doc_id] = (lo, i + 1)
    return ranges


def chunk_sentence_spans(doc: Document, chunks: Sequence[Chunk]) -> list[list[tuple[int, int]]]:
    """For each chunk, its sentences (absolute offsets) not already in an earlier chunk."""
    from rag.sentences import split_sentences

    sentences = split_sentences(doc.text)
    seen: set[tuple[int, int]] = set()
    out: list[list[tuple[int, int]]] = []
    j = 0
    for c in chunks:
        while j < len(sentences) and sentences[j].end <= c.start:
            j += 1
        spans: list[tuple[int, int]] = []
        k = j
        while k < len(sentences) and sentences[k].start < c.end:
            s, e = max(sentences[k].start, c.start), min(sentences[k].end, c.end)
            piece = doc.text[s:e]
            s += len(piece) - len(piece.lstrip())
            e -= len(piece) - len(piece.rstrip())
            if e > s and (s, e) not in seen:
                seen.add((s, e))
                spans.append((s, e))
            k += 1
        out.append(spans)
    return out


def build_index(
    settings: Settings,
    *,
    rebuild: bool = False,
    embedder: Any | None = None,
    progress: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BuildReport:
    """Bring the index in `settings.index_dir` up to date with `settings.seeds_dir`."""
    t0 = time.perf_counter()
    docs, warnings = load_documents(settings.seeds_dir)
    with store.build_lock(settings.index_dir, settings.lock_timeout):
        fingerprint = settings_fingerprint(settings)
        if not rebuild and (manifest := _live_manifest(settings)) is not None:
            n_chunks = int(manifest.get("counts", {}).get("chunks", 0))
            if (
                manifest.get("settings") == fingerprint
                and manifest.get("documents") == {d.id: d.sha256 for d in docs}
                and manifest.get("dense_index") == dense_kind(settings, n_chunks)
            ):
                # decided from the manifest alone: no tables or vectors are read
                return BuildReport(
                    version=store.current_version(settings.index_dir),
                    full_rebuild=False,
                    reason="up to date",
                    unchanged=len(docs),
                    documents=len(docs),
                    chunks=n_chunks,
                    warnings=[str(w) for w in warnings],
                    seconds=time.perf_counter() - t0,
                )
        previous, why_full = (None, "rebuild requested") if rebuild else _load_previous(settings)
        if previous is not None and previous.manifest.get("settings") != fingerprint:
            why_full = "model or chunker settings changed"
            previous = None
        full = previous is None
        prev_docs = {d.id: d for d in previous.documents} if previous else {}
        added = [d.id for d in docs if d.id not in prev_docs]
        changed = [d.id for d in docs if d.id in prev_docs and prev_docs[d.id].sha256 != d.sha256]
        removed = sorted(set(prev_docs) - {d.id for d in docs})
        stale = set(added) | set(changed)
        report = BuildReport(
            version=store.current_version(settings.index_dir),
            full_rebuild=full,
            reason=why_full if full else "incremental",
            added=[] if full else added,
            changed=changed,
            removed=removed,
            unchanged=len(docs) - len(stale),
            documents=len(docs),
            warnings=[str(w) for w in warnings],
        )
        if full:
            report.added = [d.id for d in docs]
            report.unchanged = 0

        if embedder is None and (full or stale):
            from rag.embedding import Embedder

            embedder = Embedder.load(settings)
        data, embedded = _assemble(settings, docs, previous, stale, embedder, progress, on_progress)
        kind = dense_kind(settings, len(data.chunks))
        data.manifest = {
            "format_version": store.FORMAT_VERSION,
            "settings": fingerprint,
            "model": {
                "name": settings.model,
                "dim": int(data.chunk_vectors.shape[1]),
                "max_seq_length": embedder.max_length
                if embedder
                else previous.manifest["model"]["max_seq_length"],  # type: ignore[union-attr]
            },
            "chunker": {
                "max_tokens": settings.chunk_tokens,
                "overlap_sentences": settings.chunk_overlap,
                "version": CHUNKER_VERSION,
            },
            "dense_index": kind,
            "documents": {d.id: d.sha256 for d in data.documents},
            "counts": {
                "documents": len(data.documents),
                "chunks": len(data.chunks),
                "sentences": len(data.sentences.doc_ids),
            },
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        dense = build_dense(data.chunk_vectors, kind)
        bm25 = build_bm25(data.chunks)
        report.version = store.write_version(settings.index_dir, data, dense, bm25)
        store.remove_stale(settings.index_dir, settings.keep_versions)
    report.chunks = len(data.chunks)
    report.chunks_embedded = embedded
    report.seconds = time.perf_counter() - t0
    logger.info("index %s: %s", report.version, report.reason)
    return report


def _assemble(
    settings: Settings,
    docs: Sequence[Document],
    previous: IndexData | None,
    stale: set[str],
    embedder: Any,
    progress: bool | None,
    on_progress: Callable[[int], None] | None,
) -> tuple[IndexData, int]:
    """New chunks and vectors for stale documents, stored ones for the rest, in id order."""
    from rag.chunking import ChunkerConfig, chunk_document

    dim = previous.chunk_vectors.shape[1] if previous is not None else embedder.dim
    config = ChunkerConfig(max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap)
    todo = [d for d in docs if previous is None or d.id in stale]
    new_chunks: dict[str, list[Chunk]] = {}
    new_spans: dict[str, list[list[tuple[int, int]]]] = {}
    for d in todo:
        new_chunks[d.id] = chunk_document(d, embedder.counter, config)
        new_spans[d.id] = chunk_sentence_spans(d, new_chunks[d.id])
    flat_chunks = [c for d in todo for c in new_chunks[d.id]]
    flat_spans = [
        [(s - c.start, e - c.start) for s, e in spans]
        for d in todo
        for c, spans in zip(new_chunks[d.id], new_spans[d.id], strict=True)
    ]
    encoded = (
        embedder.encode_chunks(
            [c.text for c in flat_chunks], flat_spans, settings.batch_size, progress, on_progress
        )
        if flat_chunks
        else None
    )
    fresh: dict[str, tuple[list[Chunk], np.ndarray, list[np.ndarray]]] = {}
    pos = 0
    for d in todo:
        n = len(new_chunks[d.id])
        vecs = encoded.vectors[pos : pos + n] if encoded else np.zeros((0, dim), np.float32)
        svecs = encoded.sentence_vectors[pos : pos + n] if encoded else []
        fresh[d.id] = (new_chunks[d.id], vecs, svecs)
        pos += n

    old_chunk_rows = _doc_rows([c.doc_id for c in previous.chunks]) if previous else {}
    old_sent_rows = _doc_rows(previous.sentences.doc_ids) if previous else {}
    chunks: list[Chunk] = []
    vec_parts: list[np.ndarray] = []
    s_doc: list[str] = []
    s_start: list[np.ndarray] = []
    s_end: list[np.ndarray] = []
    s_chunk: list[np.ndarray] = []
    s_vecs: list[np.ndarray] = []
    for d in docs:
        base = len(chunks)
        if d.id in fresh:
            doc_chunks, vecs, svecs = fresh[d.id]
            chunks.extend(doc_chunks)
            vec_parts.append(vecs)
            for i, spans in enumerate(new_spans[d.id]):
                s_doc.extend([d.id] * len(spans))
                s_start.append(np.array([s for s, _ in spans], np.int64))
                s_end.append(np.array([e for _, e in spans], np.int64))
                s_chunk.append(np.full(len(spans), base + i, np.int64))
                s_vecs.append(svecs[i].astype(np.float16))
        else:
            assert previous is not None
            lo, hi = old_chunk_rows.get(d.id, (0, 0))
            chunks.extend(previous.chunks[lo:hi])
            vec_parts.append(previous.chunk_vectors[lo:hi])
            slo, shi = old_sent_rows.get(d.id, (0, 0))
            sent = previous.sentences
            s_doc.extend(sent.doc_ids[slo:shi])
            s_start.append(sent.starts[slo:shi])
            s_end.append(sent.ends[slo:shi])
            s_chunk.append(sent.chunk_rows[slo:shi] - lo + base)
            s_vecs.append(sent.vectors[slo:shi])

    def cat(parts: list[np.ndarray], dtype: Any, width: int | None = None) -> np.ndarray:
        if parts:
            return np.concatenate(parts).astype(dtype, copy=False)
        return np.zeros((0, width) if width else (0,), dtype)

    sentences = SentenceTable(
        doc_ids=s_doc,
        starts=cat(s_start, np.int64),
        ends=cat(s_end, np.int64),
        chunk_rows=cat(s_chunk, np.int64),
        vectors=cat(s_vecs, np.float16, dim),
    )
    data = IndexData({}, list(docs), chunks, cat(vec_parts, np.float32, dim), sentences)
    return data, len(flat_chunks)

"""Build or update the index, streaming: list → plan → load → chunk → embed → write, in batches.

    list_files (stat) → plan_build ─┬─ Stored(doc id) ───────────────────────────┐
                                    └─ load_file → embed_stream → Fresh(doc, emb) ┴→ write_stream

The seam (`rag.index.embed_stream`): `embed_stream(settings, docs, embedder)` takes documents in
id order and yields `(Document, EmbeddedDoc)` in the same order; `rag.index.writer.write_stream`
consumes them merged with the unchanged documents (`Stored`, copied from the previous version)
and renamed/duplicate ones (`Copy`). Another embedding engine (e.g. one that fans out over
processes) plugs in by yielding the same pairs in the same order; the writer never needs more
than one `EmbeddedDoc` at a time.

Decisions (made in `rag.index.build_plan`):
- The live version's manifest records the settings that shape chunks and vectors, the sha256
  of every article and the (size, mtime_ns, inode) of every listed file. A file whose stat is
  unchanged is assumed unchanged and not read; one whose stat changed is hashed, and kept if
  its sha256 is the stored one. `verify=True` hashes every file. A change of those settings
  (or `rebuild=True`) re-embeds everything.
- Nothing changed → no new version and no torch import (decided from the stat listing and
  the manifest alone). Only stats changed (e.g. `touch`) → the live manifest's stat record is
  refreshed in place (atomic replace), no new version.
- Copies of a story (`rag.ingest.copies`): only the documents this build loads are signed; kept,
  renamed and duplicated ones reuse their stored signatures, and the version's copy groups
  are recomputed from all of them (a version without them gets them, embedding nothing).
- What a stat fast path cannot see: a content change that keeps the size and the mtime_ns
  (mtime restored by `touch -d`/`rsync --times`/`cp -p` onto the same inode, or an edit within
  the filesystem's timestamp granularity). `rag index --verify` catches those.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag.errors import CorpusError
from rag.index import store
from rag.index.build_plan import (
    BuildPlan,
    live_manifest,
    plan_build,
    refresh_if_unchanged,
    up_to_date,
)
from rag.index.embed_stream import EmbeddedDoc, embed_stream
from rag.index.manifest import (
    CHUNKER_VERSION,
    dense_kind,
    make_manifest,
    milvus_target,
    settings_fingerprint,
)
from rag.index.writer import Copy, Fresh, Stored, VersionWriter, write_stream
from rag.ingest.loading import FileStat, file_sha256, list_files, load_file
from rag.models import BuildReport, Document, LoadWarning
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.embedding import Embedder
    from rag.index.noop import Listing

logger = logging.getLogger(__name__)

__all__ = ["CHUNKER_VERSION", "build_index", "dense_kind", "plan_build", "settings_fingerprint"]


@dataclass(slots=True)
class _Outcome:
    """Filled in while the stream runs: what was embedded, kept and skipped."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    warnings: dict[str, list[str]] = field(default_factory=dict)
    copies: tuple[int, int, float] = (0, 0, 0.0)  # documents signed, groups, seconds


def build_index(
    settings: Settings,
    *,
    rebuild: bool = False,
    verify: bool = False,
    embedder: Embedder | None = None,
    progress: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
    listing: Listing | None = None,
) -> BuildReport:
    """Bring the index in `settings.index_dir` up to date with `settings.seeds_dir` (listed
    here, or given as `listing`: `rag.index.noop.index_if_unchanged` listed it already)."""
    t0 = time.perf_counter()
    files, scan_warnings = listing or list_files(settings.seeds_dir)
    if not files:
        raise _no_articles(settings)
    with store.build_lock(settings.index_dir, settings.lock_timeout):
        store.remove_stale(settings.index_dir, settings.keep_versions)  # killed builds' debris
        report = None if rebuild or verify else up_to_date(settings, files)
        if report is None:
            plan = plan_build(settings, files, rebuild, verify)
            try:
                report = refresh_if_unchanged(settings, plan) or _write(
                    settings, plan, embedder, progress, on_progress
                )
            finally:
                if plan.previous is not None:
                    plan.previous.close()
            store.remove_stale(settings.index_dir, settings.keep_versions)
    report.warnings = sorted(
        [str(w) for w in scan_warnings] + [w for w in report.warnings], key=lambda w: w
    )
    report.seconds = time.perf_counter() - t0
    logger.info("index %s: %s", report.version, report.reason)
    return report


def _no_articles(settings: Settings) -> CorpusError:
    return CorpusError(f"no articles found in {settings.seeds_dir}: add .txt, .md or .html files")


def _write(
    settings: Settings,
    plan: BuildPlan,
    embedder: Embedder | None,
    progress: bool | None,
    on_progress: Callable[[int], None] | None,
) -> BuildReport:
    prev = plan.previous
    milvus = milvus_target(settings)  # unreachable Milvus: fail before embedding
    out = _Outcome()
    if prev is not None:  # carry the warnings of files that are kept or skipped again
        recorded = prev.manifest.warnings
        out.warnings = {
            f.doc_id: recorded[f.doc_id]
            for f, a in plan.entries
            if a != "embed" and f.doc_id in recorded
        }
    copies = _find_copies(plan)  # doc id → (source id, in previous version, sha256)
    docs = _loaded(settings, plan, copies, out)
    if settings.ray_address and plan.todo:
        fresh, dim, max_len = _ray_stream(settings, plan, docs)
    else:
        if embedder is None and plan.todo:
            from rag.embedding import Embedder

            embedder = Embedder.load(settings)
        fresh = embed_stream(settings, docs, embedder, progress, on_progress)
        dim, max_len = _model_shape(plan, embedder)

    def manifest_for(w: VersionWriter) -> dict[str, Any]:
        if not w.documents:
            raise _no_articles(settings)
        listed = {f.doc_id: f.key for f, _ in plan.entries}
        out.copies = (w.copies.signed, len(w.copy_groups), w.copies.seconds)
        return make_manifest(settings, w, max_len, listed, out.warnings)

    version = write_stream(
        settings.index_dir,
        dim,
        _entries(settings, plan, fresh, copies, out),
        prev,
        manifest_for,
        lambda n: dense_kind(settings, n),
        milvus,
    )
    return _report(settings, plan, out, version)


def _report(settings: Settings, plan: BuildPlan, out: _Outcome, version: str) -> BuildReport:
    """What a build that wrote `version` did, as `rag index` reports it."""
    prev = plan.previous
    previously = set(prev.manifest.documents) if prev else set()
    live = live_manifest(settings)
    n_docs = live.n_documents if live else 0
    return BuildReport(
        version=version,
        full_rebuild=plan.full,
        reason=plan.reason,
        added=out.added,
        changed=out.changed,
        removed=sorted(set(plan.removed) | (set(out.failed) & previously)),
        unchanged=n_docs - len(out.added) - len(out.changed),
        documents=n_docs,
        chunks=live.n_chunks if live else 0,
        chunks_embedded=out.chunks_embedded,
        documents_signed=out.copies[0],
        copy_groups=out.copies[1],
        copies_seconds=round(out.copies[2], 3),
        warnings=[str(LoadWarning(p, r)) for p, rs in out.warnings.items() for r in rs],
    )


def _model_shape(plan: BuildPlan, embedder: Embedder | None) -> tuple[int, int]:
    """(dim, max_seq_length) of the model: the embedder's, else the live version's."""
    if embedder is not None:
        return embedder.dim, embedder.max_length
    assert plan.previous is not None
    live = plan.previous.manifest
    assert live.dim is not None and live.max_seq_length is not None
    return int(live.dim), int(live.max_seq_length)


def _ray_stream(
    settings: Settings, plan: BuildPlan, docs: Iterator[Document]
) -> tuple[Iterator[tuple[Document, EmbeddedDoc]], int, int]:
    """Chunk and embed on Ray (same pairs, same order as `embed_stream`); the model's dim and
    max length come with the first result, so the driver never loads the model to embed."""
    from rag.index.distributed import ray_embed_stream

    stream = ray_embed_stream(settings, list(docs))
    pairs = iter(stream)
    first = next(pairs, None)
    if first is not None:
        return itertools.chain([first], pairs), stream.dim, stream.max_length
    if plan.previous is not None:  # nothing loaded: every file to embed failed or is a copy
        return iter(()), *_model_shape(plan, None)
    from rag.embedding import Embedder

    return iter(()), *_model_shape(plan, Embedder.load(settings))


def _loaded(
    settings: Settings, plan: BuildPlan, copies: dict[str, tuple[str, bool, str]], out: _Outcome
) -> Iterator[Document]:
    """The documents to embed, loaded lazily in id order (copies and failures left out)."""
    for f in plan.todo:
        if f.doc_id in copies:
            continue
        doc, warnings = load_file(f.path, settings.seeds_dir)
        if warnings:
            out.warnings[f.doc_id] = [w.reason for w in warnings]
        if doc is None:
            out.failed.append(f.doc_id)
        else:
            yield doc


def _entries(
    settings: Settings,
    plan: BuildPlan,
    fresh: Iterator[tuple[Document, EmbeddedDoc]],
    copies: dict[str, tuple[str, bool, str]],
    out: _Outcome,
) -> Iterator[Fresh | Stored | Copy]:
    """The plan's files as writer entries, in id order: fresh ones from the `fresh` stream
    (`embed_stream` or `rag.index.distributed`), which loads and embeds them lazily.

    A file whose bytes equal a document of the previous version or one earlier in this build
    (a rename or a duplicate) is copied from it instead of embedded again.
    """
    prev = plan.previous
    previously = set(prev.manifest.documents) if prev else set()
    embedded: set[str] = set()
    pending: tuple[Document, EmbeddedDoc] | None = next(fresh, None)
    for f, action in plan.entries:
        if action == "keep":
            yield Stored(f.doc_id)
            continue
        if action != "embed":
            continue
        entry: Fresh | Copy | None = None
        if pending is not None and pending[0].id == f.doc_id:
            entry = Fresh(*pending)
            out.chunks_embedded += len(pending[1].chunks)
            embedded.add(f.doc_id)
            pending = next(fresh, None)
        elif f.doc_id in copies:
            entry = _copy_entry(settings, f, copies[f.doc_id], embedded, out)
        if entry is not None:  # None: it failed to load (its warning is recorded)
            (out.changed if f.doc_id in previously else out.added).append(f.doc_id)
            yield entry


def _find_copies(plan: BuildPlan) -> dict[str, tuple[str, bool, str]]:
    """Files to embed whose bytes equal a previous document's or an earlier file's (renames,
    duplicates): hashed up front, so the embedding stream never reads ahead past them."""
    prev = plan.previous
    known: dict[str, tuple[str, bool]] = {}
    if prev is not None:
        known = {sha: (i, True) for i, sha in prev.manifest.documents.items()}
    copies: dict[str, tuple[str, bool, str]] = {}
    for f in plan.todo:
        sha = file_sha256(f.path)
        if sha is None:
            continue
        if sha in known:
            copies[f.doc_id] = (*known[sha], sha)
        else:
            known[sha] = (f.doc_id, False)
    return copies


def _copy_entry(
    settings: Settings,
    f: FileStat,
    source: tuple[str, bool, str],
    embedded: set[str],
    out: _Outcome,
) -> Copy | None:
    src, in_previous, sha = source
    doc, warnings = load_file(f.path, settings.seeds_dir)
    if warnings:
        out.warnings[f.doc_id] = [w.reason for w in warnings]
    if doc is None or doc.sha256 != sha or not (in_previous or src in embedded):
        if doc is not None:  # changed while this build ran: the next build picks it up
            out.warnings[f.doc_id] = ["changed during the build; run `rag index` again"]
        out.failed.append(f.doc_id)
        return None
    return Copy(doc, src, in_previous)

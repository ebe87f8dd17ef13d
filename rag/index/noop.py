"""The no-op `rag index`: nothing changed, decided before anything heavy is imported.

A `rag index` with nothing to do reads a directory listing and a manifest; what it used to
spend its time on was importing (pydantic settings, numpy, the models). This module decides
it with the standard library and the light modules of the build: the listing
(`rag.ingest.loading.list_files`), the store's lock and pointer (`rag.index.store`), the manifest's
fingerprint (`rag.index.manifest`) and copies record (`rag.ingest.copy_record`).

- `up_to_date(settings, files, manifest)`: the stat fast path, shared with every build
  (`rag.index.build_plan.up_to_date`): the live manifest records the same settings, index kind and
  (size, mtime_ns, inode) of every file.
- `index_if_unchanged(...)`: the whole no-op for the CLI, as `rag.index.indexing.build_index` does
  it (listing, build lock, sweep of killed builds, the fast path); otherwise the listing, for
  the full build to reuse, or None where this path does not apply.
- `IndexSettings`: what the decision reads, with the defaults of `rag.settings.Settings` (a
  test holds them equal), from `RAG_SEEDS_DIR`, `RAG_INDEX_DIR` and `RAG_EMBED_BACKEND`. Any
  other `RAG_*` variable sends the command down the full path, where `Settings`, the one typed
  place for settings, reads and validates it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rag.choices import EMBED_BACKENDS
from rag.errors import IndexStoreError
from rag.index import store
from rag.index.manifest import (
    Manifest,
    dense_kind,
    read_manifest,
    settings_fingerprint,
    store_record,
)
from rag.ingest.copy_record import groups_from, is_current
from rag.ingest.loading import list_files

if TYPE_CHECKING:
    from rag.index.manifest import BuildSettings
    from rag.ingest.loading import FileStat
    from rag.models import LoadWarning

logger = logging.getLogger("rag.index.indexing")  # the log line a build writes, from the same place

_READ_HERE = {"RAG_SEEDS_DIR": "seeds_dir", "RAG_INDEX_DIR": "index_dir"}


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """The settings a no-op build reads, with `rag.settings.Settings`' defaults."""

    seeds_dir: Path = Path("seeds")
    index_dir: Path = Path("index")
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embed_backend: str = "onnx-int8"
    chunk_tokens: int = 128
    chunk_overlap: int = 1
    index_type: str = "auto"
    hnsw_threshold: int = 250_000
    ivf_threshold: int = 500_000
    store: str = "faiss"
    milvus_uri: str | None = None
    milvus_collection: str = "rag"
    lock_timeout: float = 30.0
    keep_versions: int = 2

    @classmethod
    def read(cls, environ: Mapping[str, str], **flags: Any) -> IndexSettings | None:
        """From the environment and the command's flags (None: not given); None when the
        environment sets a `RAG_*` variable read only by `Settings`, or a bad value."""
        values: dict[str, Any] = {}
        for key, value in environ.items():
            if not key.upper().startswith("RAG_"):
                continue
            if key == "RAG_EMBED_BACKEND" and value in EMBED_BACKENDS:
                values["embed_backend"] = value
            elif key in _READ_HERE and value:
                values[_READ_HERE[key]] = Path(value)
            else:
                return None
        values.update({k: v for k, v in flags.items() if v is not None})
        settings = cls(**values)
        return settings if settings.embed_backend in EMBED_BACKENDS else None


@dataclass(slots=True)
class UpToDate:
    """What a no-op build reports (the `rag.models.BuildReport` fields the CLI prints)."""

    version: str | None
    documents: int
    chunks: int
    copy_groups: int
    warnings: list[str] = field(default_factory=list)
    reason: str = "up to date"
    seconds: float = 0.0


class Listing(NamedTuple):
    """The files a build is about (`rag.ingest.loading.list_files`), listed once."""

    files: list[FileStat]
    warnings: list[LoadWarning]


def live_manifest(settings: BuildSettings) -> Manifest | None:
    try:
        return read_manifest(store.version_path(settings.index_dir)[1])
    except IndexStoreError:
        return None


def up_to_date(
    settings: BuildSettings, files: list[FileStat], manifest: Manifest
) -> UpToDate | None:
    """The stat fast path: a report when `manifest` records the same settings, index kind and
    (size, mtime_ns, inode) of every file; None when the files must be looked at."""
    if manifest.files != {f.doc_id: f.key for f in files}:
        return None
    return unchanged(settings, manifest)


def unchanged(settings: BuildSettings, manifest: Manifest) -> UpToDate | None:
    """The report of a version that needs no new one with these settings (same fingerprint,
    index kind and store, copies current); None when it does."""
    if (
        manifest.fingerprint != settings_fingerprint(settings)
        or manifest.dense_index != dense_kind(settings, manifest.n_chunks)
        or manifest.store != store_record(settings)
        or not is_current(manifest.copies)
    ):
        return None
    return UpToDate(
        version=store.current_version(settings.index_dir),
        documents=len(manifest.documents),
        chunks=manifest.n_chunks,
        copy_groups=len(groups_from(manifest.copies)),
        warnings=_recorded_warnings(manifest),
    )


def _recorded_warnings(manifest: Manifest) -> list[str]:
    recorded = manifest.warnings
    if not recorded:
        return []
    from rag.models import LoadWarning

    return [str(LoadWarning(path, why)) for path, whys in recorded.items() for why in whys]


def index_if_unchanged(
    environ: Mapping[str, str] | None = None, **flags: Any
) -> UpToDate | Listing | None:
    """`rag index` (no --rebuild, --verify or --ray) when nothing changed: the report, made as
    `build_index` makes it (files listed, then under the build lock: killed builds swept, the
    stat fast path). Otherwise the listing, for `build_index(..., listing=)`, or None (no
    articles, or settings this path does not read): the full path decides."""
    t0 = time.perf_counter()
    settings = IndexSettings.read(os.environ if environ is None else environ, **flags)
    if settings is None:
        return None
    listing = Listing(*list_files(settings.seeds_dir))
    if not listing.files:
        return None
    with store.build_lock(settings.index_dir, settings.lock_timeout):
        store.remove_stale(settings.index_dir, settings.keep_versions)
        manifest = live_manifest(settings)
        report = None if manifest is None else up_to_date(settings, listing.files, manifest)
    if report is None:
        return listing
    report.warnings = sorted([str(w) for w in listing.warnings] + report.warnings)
    report.seconds = time.perf_counter() - t0
    logger.info("index %s: %s", report.version, report.reason)
    return report

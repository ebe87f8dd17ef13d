"""The decision of a build: which files to keep, embed or skip, or that nothing is to be done.

Read by `rag.index.indexing.build_index` before anything is loaded or embedded:

- `up_to_date`: the stat fast path. The live manifest records the settings that shape chunks
  and vectors and the (size, mtime_ns, inode) of every listed file; when all of them match,
  the answer is "up to date" without reading a file or importing torch (`rag.index.noop`, which
  the CLI also runs alone, before importing anything heavy). A version whose copy groups are
  missing or stale (`rag.ingest.copy_record.is_current`) is not up to date: the build writes a new
  version, keeping every document and embedding nothing.
- `plan_build`: per file, keep its stored rows, embed it, or skip it again (it failed before).
  A file is hashed only when its stat changed, or with `verify`; a change of those settings
  (or `rebuild`) embeds everything.
- `refresh_if_unchanged`: only stats changed (e.g. `touch`): the live manifest's stat record is
  refreshed in place (atomic replace) and no version is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

from rag.errors import IndexStoreError
from rag.index import noop, store
from rag.index.manifest import settings_fingerprint
from rag.index.noop import live_manifest
from rag.index.writer import PreviousVersion
from rag.ingest.copy_record import is_current
from rag.ingest.loading import FileStat, file_sha256
from rag.models import BuildReport
from rag.settings import Settings

logger = logging.getLogger(__name__)

Action = Literal["keep", "embed", "skip"]


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """What a build must do with each listed file (id order) and what the live version had."""

    entries: list[tuple[FileStat, Action]]
    previous: PreviousVersion | None  # None: embed everything
    reason: str
    removed: list[str]  # documents of the previous version no longer listed

    @property
    def full(self) -> bool:
        return self.previous is None

    @property
    def todo(self) -> list[FileStat]:
        return [f for f, action in self.entries if action == "embed"]


def up_to_date(settings: Settings, files: list[FileStat]) -> BuildReport | None:
    """The stat fast path (`rag.index.noop.up_to_date`): a report when the live manifest records the
    same settings, index kind and (size, mtime_ns, inode) of every file; None when the files
    must be looked at."""
    manifest = live_manifest(settings)
    found = None if manifest is None else noop.up_to_date(settings, files, manifest)
    return None if found is None else _report(found)


def _report(found: noop.UpToDate) -> BuildReport:
    return BuildReport(
        version=found.version,
        full_rebuild=False,
        reason=found.reason,
        unchanged=found.documents,
        documents=found.documents,
        chunks=found.chunks,
        copy_groups=found.copy_groups,
        warnings=found.warnings,
    )


def _open_previous(settings: Settings) -> tuple[PreviousVersion | None, str]:
    try:
        return PreviousVersion(store.version_path(settings.index_dir)[1]), ""
    except IndexStoreError as exc:
        if store.current_version(settings.index_dir) is None:
            return None, "no previous index"
        logger.warning("previous index unusable, rebuilding everything: %s", exc)
        return None, "previous index unusable"


def plan_build(
    settings: Settings, files: list[FileStat], rebuild: bool, verify: bool = False
) -> BuildPlan:
    """Decide per file: keep its stored rows, embed it, or skip it again (it failed before).

    A file is read (hashed) only when its stat differs from the recorded one, or with `verify`.
    """
    prev, reason = (None, "rebuild requested") if rebuild else _open_previous(settings)
    if prev is not None and prev.manifest.fingerprint != settings_fingerprint(settings):
        prev.close()
        prev, reason = None, "model or chunker settings changed"
    if prev is None:
        return BuildPlan([(f, "embed") for f in files], None, reason, [])
    docs = prev.manifest.documents
    stats = prev.manifest.files
    entries: list[tuple[FileStat, Action]] = []
    for f in files:
        same_stat = not verify and stats.get(f.doc_id) == f.key
        if f.doc_id in docs:
            keep = same_stat or file_sha256(f.path) == docs[f.doc_id]
            entries.append((f, "keep" if keep else "embed"))
        else:
            entries.append((f, "skip" if same_stat else "embed"))
    removed = sorted(set(docs) - {f.doc_id for f in files})
    reason = "incremental" if is_current(prev.manifest.copies) else "copy detection out of date"
    return BuildPlan(entries, prev, reason, removed)


def refresh_if_unchanged(settings: Settings, plan: BuildPlan) -> BuildReport | None:
    """No content changed (only stats, e.g. after `touch`): record the new stats in the live
    manifest, write no version. None when a new version is needed."""
    prev = plan.previous
    if prev is None or plan.todo or plan.removed:
        return None
    found = noop.unchanged(settings, prev.manifest)
    if found is None:
        return None
    current = {f.doc_id: f.key for f, _ in plan.entries}
    if prev.manifest.files != current:
        manifest = {**prev.manifest.record, "files": current}
        store.write_atomic(
            prev.path / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode()
        )
    return _report(found)

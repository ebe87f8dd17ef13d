"""Turn a folder of articles into normalised `Document`s.

Everything downstream (chunk offsets, citations, incremental re-indexing) depends on this
module producing the same text for the same bytes, so it is deterministic: files are read in
sorted order, text is normalised one fixed way, and a bad file becomes a `LoadWarning` rather
than an exception — one broken article must not stop a corpus from being indexed.

This module finds, stats, hashes and reads the files (symlinks vetted, binaries and bad UTF-8
caught); turning a file's text into plain text is `rag.ingest.formats`, and guessing its title,
source, dateline and date is `rag.ingest.article_meta`. A file's stat (mtime included) only decides
whether it must be read again, never any metadata: an article without a stated date has none.
Listing and stat'ing (`list_files`) import neither, nor the models: the no-op `rag index`
(`rag.index.noop`) lists files without them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import CorpusError

if TYPE_CHECKING:
    from rag.models import DateSource, Document, LoadWarning

logger = logging.getLogger(__name__)

TEXT_EXTENSIONS = frozenset({".txt"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
HTML_EXTENSIONS = frozenset({".html", ".htm"})
EXTENSIONS = TEXT_EXTENSIONS | MARKDOWN_EXTENSIONS | HTML_EXTENSIONS

BINARY_SNIFF_BYTES = 8192
BINARY_CONTROL_RATIO = 0.30
_OUTSIDE = "symlink points outside the seeds directory; skipped"

# ---------------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------------


def scan_files(seeds_dir: Path) -> list[Path]:
    """Candidate article paths, sorted by document id so every run sees the same order."""
    return _scan(seeds_dir)[0]


def _scan(seeds_dir: Path) -> tuple[list[Path], list[LoadWarning]]:
    found, warnings = _scan_entries(seeds_dir)
    return [Path(entry.path) for _doc_id_, entry in found], warnings


def _scan_entries(
    seeds_dir: Path,
) -> tuple[list[tuple[str, os.DirEntry[str]]], list[LoadWarning]]:
    """Walk by hand (not `rglob`) so symlinks can be vetted and directory cycles broken.

    Returns (doc id, directory entry) pairs sorted by id. Only symlinks and directories are
    resolved (a plain file inside a vetted directory is inside the seeds directory), and ids
    are built from the walk's relative prefix: listing 9,280 files takes milliseconds.
    """
    root = seeds_dir.resolve()
    found: list[tuple[str, os.DirEntry[str]]] = []
    warnings: list[LoadWarning] = []
    visited: set[Path] = {root}
    pending: list[tuple[Path, str]] = [(seeds_dir, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            warnings.append(_warn(_doc_id(directory, seeds_dir), _os_reason(exc)))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            is_link = entry.is_symlink()
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if not is_dir and os.path.splitext(entry.name)[1].lower() not in EXTENSIONS:
                continue
            doc_id = prefix + entry.name
            if is_link or is_dir:
                target = Path(entry.path).resolve()
                if is_link and not target.is_relative_to(root):
                    warnings.append(_warn(doc_id, _OUTSIDE))
                    continue
                if is_dir:
                    if target not in visited:
                        visited.add(target)
                        pending.append((Path(entry.path), doc_id + "/"))
                    continue
            found.append((doc_id, entry))
    found.sort(key=lambda pair: pair[0])
    return found, warnings


@dataclass(frozen=True, slots=True)
class FileStat:
    """One candidate article as `stat` sees it, without reading it (the no-op fast path)."""

    doc_id: str
    path: str  # a str, not a Path: building 9,280 Paths costs more than the stat calls
    size: int
    mtime_ns: int
    inode: int

    @property
    def key(self) -> list[int]:
        """What the manifest records; a file whose key is unchanged is assumed unchanged."""
        return [self.size, self.mtime_ns, self.inode]


def list_files(seeds_dir: Path) -> tuple[list[FileStat], list[LoadWarning]]:
    """Every candidate article with its size, mtime and inode, in id order; reads no contents.

    A file that cannot be stat'ed becomes a warning (it would fail to load anyway).
    """
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise CorpusError(f"seeds directory not found: {seeds_dir} (create it or pass --seeds DIR)")
    found, warnings = _scan_entries(seeds_dir)
    out: list[FileStat] = []
    for doc_id, entry in found:
        try:
            st = entry.stat()  # follows symlinks, like reading the file would
        except OSError as exc:
            warnings.append(_warn(doc_id, _os_reason(exc)))
            continue
        out.append(FileStat(doc_id, entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
    return out, warnings


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes (what `Document.sha256` records), or None if unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def load_file(path: str | Path, seeds_dir: Path) -> tuple[Document | None, list[LoadWarning]]:
    """Load one file: a document and/or warnings (the same code path as `load_documents`)."""
    return _load(Path(path), Path(seeds_dir))


def _doc_id(path: Path, seeds_dir: Path) -> str:
    """Ids are relative POSIX paths so they are stable across machines and operating systems."""
    try:
        rel = path.relative_to(seeds_dir)
    except ValueError:
        rel = Path(os.path.relpath(path.absolute(), seeds_dir.absolute()))
    return rel.as_posix()


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_documents(seeds_dir: Path) -> tuple[list[Document], list[LoadWarning]]:
    """Load every usable article; a corpus with none is a setup mistake, so that raises."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise CorpusError(f"seeds directory not found: {seeds_dir} (create it or pass --seeds DIR)")
    paths, warnings = _scan(seeds_dir)
    documents: list[Document] = []
    for path in paths:
        document, file_warnings = _load(path, seeds_dir)
        warnings.extend(file_warnings)
        if document is not None:
            documents.append(document)
    if not documents:
        raise CorpusError(f"no articles found in {seeds_dir}: add .txt, .md or .html files")
    warnings.sort(key=lambda w: w.path)
    return documents, warnings


def load_document(path: Path, seeds_dir: Path) -> Document | LoadWarning:
    """Load one file (e.g. when a watcher sees it change); a warning stands in for a skip.

    A document whose bad bytes were replaced is still returned; its warning is only logged.
    Use `load_documents` to collect those warnings too.
    """
    document, warnings = _load(Path(path), Path(seeds_dir))
    return document if document is not None else warnings[0]


def _load(path: Path, seeds_dir: Path) -> tuple[Document | None, list[LoadWarning]]:
    """The single code path for one file, returning a document and/or warnings, never raising."""
    from rag.ingest.article_meta import make_document
    from rag.ingest.formats import html_to_text, normalise_document_text, split_front_matter
    from rag.models import LoadWarning

    doc_id = _doc_id(path, seeds_dir)
    if not path.resolve().is_relative_to(seeds_dir.resolve()):
        return None, [_warn(doc_id, _OUTSIDE)]
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None, [_warn(doc_id, "not a regular file; skipped")]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [_warn(doc_id, _os_reason(exc))]

    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        return None, [_warn(doc_id, "binary file; skipped")]
    body = raw.removeprefix(b"\xef\xbb\xbf")
    warnings: list[LoadWarning] = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")
        warnings.append(LoadWarning(doc_id, "invalid UTF-8 bytes replaced"))
    if _looks_binary(text[:BINARY_SNIFF_BYTES]):
        return None, [_warn(doc_id, "binary file; skipped")]

    suffix = path.suffix.lower()
    meta: dict[str, str] = {}
    meta_kind: DateSource = "front-matter"
    try:
        if suffix in HTML_EXTENSIONS:
            text, meta = html_to_text(text)
            meta_kind = "html-meta"
        elif suffix in MARKDOWN_EXTENSIONS:
            text, meta = split_front_matter(text)
    except Exception as exc:  # a parser bug on one odd file must not stop the whole corpus
        return None, [_warn(doc_id, f"could not parse: {exc}")]
    text = normalise_document_text(text)
    if not text:
        return None, [_warn(doc_id, "empty; skipped")]

    for warning in warnings:
        logger.warning("%s", warning)
    sha = hashlib.sha256(raw).hexdigest()
    document = make_document(doc_id, text, meta, sha, path.stem, meta_kind)
    return document, warnings


def _warn(path: str, reason: str) -> LoadWarning:
    """Warnings are logged where they are made so a caller that drops them still leaves a trace."""
    from rag.models import LoadWarning

    warning = LoadWarning(path, reason)
    logger.warning("%s", warning)
    return warning


def _os_reason(exc: OSError) -> str:
    return f"could not read: {exc.strerror or exc}; skipped"


def _looks_binary(sample: str) -> bool:
    """Catch binaries without NULs (and wrong encodings) before they pollute the index."""
    if not sample:
        return False
    odd = sum(1 for c in sample if (ord(c) < 32 and c not in "\n\r\t\f\v") or c == "\ufffd")
    return odd / len(sample) > BINARY_CONTROL_RATIO

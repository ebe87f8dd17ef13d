"""The embedding stage of a build: documents in, `(Document, EmbeddedDoc)` out, in order.

`embed_stream(settings, docs, embedder)` is the seam between loading and writing: it takes
documents in id order and yields each with its `EmbeddedDoc` in the same order, holding at
most `EMBED_WINDOW` chunks (plus one document's) at a time. The window's chunks are embedded
longest first in batches of `settings.batch_size`, so a build with fewer chunks than that to
embed gets exactly the batches (and bitwise the vectors) of one pass over all of them. Another
engine (e.g. one fanning windows out to worker processes) plugs in by yielding the same pairs
in the same order; `rag.index.writer.write_stream` consumes them one at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.models import Chunk, Document
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.embedding import Embedder

EMBED_WINDOW = 1024  # chunks sorted by length and embedded together


@dataclass(frozen=True, slots=True)
class EmbeddedDoc:
    """A freshly chunked and embedded document (sentence spans absolute): the stream's unit."""

    chunks: list[Chunk]
    vectors: np.ndarray  # (n_chunks, dim) float32
    sentence_spans: list[list[tuple[int, int]]]  # per chunk
    sentence_vectors: list[np.ndarray]  # per chunk: (n_spans, dim)


def embed_stream(
    settings: Settings,
    docs: Iterable[Document],
    embedder: Embedder | None,
    progress: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[Document, EmbeddedDoc]]:
    """Chunk and embed `docs` (id order), yielding each with its `EmbeddedDoc` in that order.

    At most `EMBED_WINDOW` chunks (plus one document's) are held at a time.
    """
    from rag.ingest.chunking import ChunkerConfig, chunk_with_sentences

    docs = iter(docs)
    first = next(docs, None)
    if first is None:
        return
    assert embedder is not None
    docs = itertools.chain([first], docs)
    config = ChunkerConfig(max_tokens=settings.chunk_tokens, overlap=settings.chunk_overlap)
    bar = _progress_bar(progress)
    report = on_progress
    if bar is not None:
        report = lambda n: (bar.update(n), on_progress and on_progress(n))  # noqa: E731
    try:
        window: list[tuple[Document, list[Chunk], list[list[tuple[int, int]]]]] = []
        n = 0
        for d in docs:
            chunks, spans = chunk_with_sentences(d, embedder.counter, config)
            window.append((d, chunks, spans))
            n += len(chunks)
            if n >= EMBED_WINDOW:
                yield from _embed_window(settings, window, embedder, report)
                window, n = [], 0
                _return_freed_memory()
        yield from _embed_window(settings, window, embedder, report)
    finally:
        if bar is not None:
            bar.close()


def _return_freed_memory() -> None:
    """Hand the forward passes' freed buffers back to the OS (glibc keeps them otherwise, and
    batches of ever-different shapes fragment its heap: RSS then grows with the corpus)."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):  # not glibc: nothing to do
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None


def _progress_bar(progress: bool | None) -> Any:
    import sys

    if not (sys.stderr.isatty() if progress is None else progress):
        return None
    from tqdm import tqdm

    return tqdm(desc="embedding", unit="chunk", leave=False)


def _embed_window(
    settings: Settings,
    window: list[tuple[Document, list[Chunk], list[list[tuple[int, int]]]]],
    embedder: Embedder,
    on_batch: Callable[[int], Any] | None,
) -> Iterator[tuple[Document, EmbeddedDoc]]:
    """One batched pass over a window's chunks (longest first), split back per document."""
    flat = [
        (c, spans)
        for _d, chunks, spans_list in window
        for c, spans in zip(chunks, spans_list, strict=True)
    ]
    if not flat:
        for d, _chunks, _spans in window:
            yield d, EmbeddedDoc([], np.zeros((0, embedder.dim), np.float32), [], [])
        return
    encoded = embedder.encode_chunks(
        [c.text for c, _ in flat],
        [[(s - c.start, e - c.start) for s, e in spans] for c, spans in flat],
        settings.batch_size,
        False,
        on_batch,
    )
    pos = 0
    for d, chunks, spans_list in window:
        k = len(chunks)
        vecs = encoded.vectors[pos : pos + k]
        yield d, EmbeddedDoc(chunks, vecs, spans_list, encoded.sentence_vectors[pos : pos + k])
        pos += k

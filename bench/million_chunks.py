"""A million-chunk index on one machine: compressed IVF-SQ8 memory, recall, latency, hot swap.

    .venv/bin/python bench/million_chunks.py --base-index INDEX [--chunks 1000000]

Embedding a million chunks takes days on two cores, so the vectors are real ones repeated: the
chunk vectors, texts and BM25 terms of a real index (e.g. the SQuAD+BBC eval corpus, ~5k chunks,
kept by `rag eval --corpus-dir`) are tiled under distinct document ids with small noise
(σ = 0.01 per dimension, renormalised) until there are `--chunks` rows — as
bench/query_latency.py does for 100k. The vectors are streamed into a memory-mapped .npy
(never all in RAM), the IVF-SQ8 index is built from it (k-means on a sample), saved, and loaded
the way the server loads a version (IVF lists and chunk vectors memory-mapped). Prints: build
time, file and resident sizes, a simulated hot swap (a second load while the first is live),
recall@10 of the IVF search versus exact flat search over the same vectors, BM25 p50, and hybrid
retrieval p50 including the real query embedding (the configured backend). SQLite tables and
sentence vectors are not written at this size (item 1 of the scale issue streams those).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from bench.index_build import machine  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.engines import build_lexical  # noqa: E402
from rag.engines.faiss_index import FaissIndex  # noqa: E402
from rag.index import store  # noqa: E402
from rag.index.store import IndexData, SentenceTable  # noqa: E402
from rag.models import Chunk, Document  # noqa: E402
from rag.retrieve.lexical import tokenize  # noqa: E402
from rag.retrieve.retrieval import Snapshot, retrieve  # noqa: E402
from rag.settings import Settings  # noqa: E402

QUESTIONS = [json.loads(x)["question"] for x in (ROOT / "eval/qa.jsonl").open()] + [
    "who won the match at twickenham",
    "what did the chancellor say about taxes",
    "which club signed the striker",
    "when is the general election expected",
    "What is the capital of Normandy?",
    "Which company reported higher profits?",
]


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def rss_split() -> str:
    """Resident memory split into private (anonymous) and file-backed pages: mapped index and
    vector pages are page cache, shared with other processes and reclaimable under pressure."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon:", "RssFile:")):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
    anon, file = fields.get("RssAnon", 0), fields.get("RssFile", 0)
    return f"private {anon:.0f} MiB + file-backed {file:.0f} MiB"


def write_vectors(base: np.ndarray, copies: int, path: Path) -> np.ndarray:
    """Tiled, noised, normalised vectors streamed into a memory-mapped .npy file."""
    n, dim = base.shape
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n * copies, dim))
    rng = np.random.default_rng(0)
    for r in range(copies):
        block = base + rng.normal(0, 0.01, base.shape).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[r * n : (r + 1) * n] = block
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    """Exact inner-product top-k of each query, one streaming pass over the vectors."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for lo in range(0, len(vectors), 100_000):
        scores = queries @ np.asarray(vectors[lo : lo + 100_000]).T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.arange(lo, lo + scores.shape[1])[None].repeat(len(s), 0)], 1)
        top = np.argsort(-s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return [set(row.tolist()) for row in best_i]


def replicate_tables(base: IndexData, copies: int) -> tuple[list[Document], list[Chunk]]:
    docs: list[Document] = []
    chunks: list[Chunk] = []
    for r in range(copies):
        for d in base.documents:
            docs.append(
                Document(
                    f"r{r:03d}/{d.id}", d.title, d.source, d.date, d.dateline, d.text, d.sha256
                )
            )
        for c in base.chunks:
            doc_id = f"r{r:03d}/{c.doc_id}"
            chunks.append(
                Chunk(
                    f"{doc_id}#{c.ordinal}",
                    doc_id,
                    c.ordinal,
                    c.start,
                    c.end,
                    c.text,
                    c.n_tokens,
                    c.n_tiktoken,
                )
            )
    return docs, chunks


def p50(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base-index", type=Path, required=True)
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, help="Keep the built files here (default: temporary).")
    args = ap.parse_args()
    settings = Settings()
    print(f"machine: {machine()} (shared with other jobs); threads {settings.cpu_threads()}")
    embedder = Embedder.load(settings)
    _, path = store.version_path(args.base_index)
    base = store.read_data(path)
    base_vectors = np.asarray(base.chunk_vectors, dtype=np.float32)
    if base.manifest["settings"].get("embed_backend", "torch") != embedder.backend:
        print(f"note: base index embedded with {base.manifest['settings'].get('embed_backend')}")
    copies = -(-args.chunks // len(base.chunks))
    with tempfile.TemporaryDirectory(prefix="rag-1m-", dir=args.work) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        vectors = write_vectors(base_vectors, copies, folder / "chunk_vectors.npy")
        n = len(vectors)
        print(f"\n{n:,} chunks ({copies} copies of {len(base.chunks):,} real chunks, σ=0.01 noise)")
        print(f"  vectors written (memory-mapped) in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        dense = FaissIndex.build(vectors, "ivf-sq8")
        build_s = time.perf_counter() - t0
        dense.save(folder)
        size = (folder / "dense.faiss").stat().st_size / 2**20
        print(
            f"  IVF-SQ8 ({dense.index.nlist} lists, nprobe {dense.index.nprobe}) built in "
            f"{build_s:.0f} s; dense.faiss {size:.0f} MiB (float32: {n * 384 * 4 / 2**20:.0f} MiB)"
        )
        del dense, vectors
        gc.collect()
        r0 = rss_mb()
        mm = np.load(folder / "chunk_vectors.npy", mmap_mode="r")
        live = FaissIndex.load(folder, mm, "ivf-sq8")
        r1 = rss_mb()
        swap = FaissIndex.load(
            folder, np.load(folder / "chunk_vectors.npy", mmap_mode="r"), "ivf-sq8"
        )
        r2 = rss_mb()
        print(f"  load: RSS +{r1 - r0:.0f} MiB; a second load (hot swap) +{r2 - r1:.0f} MiB")
        t0 = time.perf_counter()
        live.search(np.asarray(base_vectors[0]), 10)
        print(f"  first search after load {(time.perf_counter() - t0) * 1000:.1f} ms (cold pages)")
        del swap

        qvecs = embedder.encode_queries(QUESTIONS)
        truth = exact_top(mm, qvecs, 10)
        found = [{r for r, _ in live.search(q, 10)} for q in qvecs]
        recall = np.mean([len(f & t) / 10 for f, t in zip(found, truth, strict=True)])
        dense_ms = []
        for q in qvecs:
            t0 = time.perf_counter()
            live.search(q, 50)
            dense_ms.append((time.perf_counter() - t0) * 1000)
        print(f"  recall@10 vs exact flat {recall:.3f}; dense search p50 {p50(dense_ms):.1f} ms")
        print(f"  memory after searches: {rss_split()} (the exact pass mapped every vector)")

        t0 = time.perf_counter()
        terms = [tokenize(c.text) for c in base.chunks]
        lexical = build_lexical([t for _ in range(copies) for t in terms][:n])
        print(
            f"  BM25 over {n:,} chunks built in {time.perf_counter() - t0:.0f} s; "
            f"RSS {rss_mb():.0f} MiB"
        )
        docs, chunks = replicate_tables(base, copies)
        data = IndexData(
            {},
            docs,
            chunks[:n],
            mm,
            SentenceTable([], *(np.zeros(0, np.int64),) * 3, np.zeros((0, 384), np.float16)),
        )
        snap = Snapshot(
            version="bench",
            data=data,
            dense=live,
            lexical=lexical,
            docs={d.id: d for d in docs},
            doc_chunks=store.row_ranges([c.doc_id for c in data.chunks]),
            doc_sentences={},
            idf={},
            sentence_terms=lambda row: (),
        )
        timings: dict[str, list[float]] = {"bm25": [], "hybrid": []}
        for _ in range(3):
            for q in QUESTIONS:
                t0 = time.perf_counter()
                retrieve(snap, q, None, mode="bm25", top_k=5)
                t1 = time.perf_counter()
                qvec = embedder.encode_queries([q])[0]
                retrieve(snap, q, qvec, mode="hybrid", top_k=5, weights=(0.5, 1.0))
                t2 = time.perf_counter()
                timings["bm25"].append((t1 - t0) * 1000)
                timings["hybrid"].append((t2 - t1) * 1000)
        print(
            f"  BM25 retrieval p50 {p50(timings['bm25']):.1f} ms; hybrid p50 "
            f"{p50(timings['hybrid']):.1f} ms including the {embedder.backend} query embedding "
            f"(p95 {sorted(timings['hybrid'])[int(0.95 * (len(timings['hybrid']) - 1))]:.1f} ms)"
        )
        print(f"  memory at the end: {rss_split()} (chunk/doc tables and BM25 included)")


if __name__ == "__main__":
    main()

"""Query latency: a whole question over the seeds, and retrieval over 100k+ chunks.

    .venv/bin/python bench/query_latency.py [--bbc-index bench/out/bbc-index] [--rounds 5]

Part 1 asks every question of eval/qa.jsonl `--rounds` times through `Assistant.ask` (query
embedding, hybrid retrieval, extractive answer) and prints p50/p95 per stage.

Part 2 needs many chunks. Embedding 100k chunks takes most of an hour on two cores, so it takes
the real vectors, texts and BM25 terms of an index over the 928 BBC articles (built here if
`--bbc-index` doesn't exist) and writes a version with every article repeated under distinct
ids until there are ≥ 100k chunks (vectors get small noise so there are no exact ties). FAISS,
BM25 and the snapshot are real; each query is embedded for real. Prints p50/p95 by mode.
"""

from __future__ import annotations

import argparse
import csv
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

from bench.index_build import machine  # noqa: E402
from rag.assistant import Assistant  # noqa: E402
from rag.choices import MODES  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.engines import build_dense, build_lexical  # noqa: E402
from rag.index import store  # noqa: E402
from rag.index.indexing import build_index, dense_kind  # noqa: E402
from rag.index.store import IndexData, SentenceTable  # noqa: E402
from rag.models import Chunk, Document  # noqa: E402
from rag.retrieve.lexical import tokenize  # noqa: E402
from rag.retrieve.retrieval import Snapshot, retrieve  # noqa: E402
from rag.settings import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seeds_part(embedder: Embedder, rounds: int, work: Path) -> None:
    settings = Settings(seeds_dir=ROOT / "seeds", index_dir=work / "seeds-index")
    build_index(settings, embedder=embedder, progress=False)
    assistant = Assistant.open(settings=settings, embedder=embedder)
    questions = [json.loads(x)["question"] for x in (ROOT / "eval/qa.jsonl").open()]
    stages: dict[str, list[float]] = {}
    for _ in range(rounds):
        for q in questions:
            for stage, ms in assistant.ask(q).timings.items():
                stages.setdefault(stage, []).append(ms)
    n = len(stages["total"])
    print(f"\nseeds: {n} questions (eval/qa.jsonl × {rounds}), hybrid, extractive answers")
    for stage, values in stages.items():
        print(f"  {stage:9s} p50 {pct(values, 0.5):7.2f} ms   p95 {pct(values, 0.95):7.2f} ms")


def bbc_index(path: Path, embedder: Embedder, csv_path: Path) -> Path:
    if (path / "index" / store.CURRENT).exists():
        return path / "index"
    seeds = path / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(csv.DictReader(csv_path.open(encoding="utf-8"))):
        (seeds / f"bbc-{i:04d}.txt").write_text(row["text"].strip() + "\n", encoding="utf-8")
    build_index(Settings(seeds_dir=seeds, index_dir=path / "index"), embedder=embedder)
    return path / "index"


def replicate(base: IndexData, target_chunks: int, seed: int = 0) -> IndexData:
    """The base index repeated under distinct document ids until it holds target_chunks."""
    copies = -(-target_chunks // len(base.chunks))
    rng = np.random.default_rng(seed)
    docs: list[Document] = []
    chunks: list[Chunk] = []
    for r in range(copies):
        rename = {d.id: f"r{r:03d}/{d.id}" for d in base.documents}
        docs += [
            Document(rename[d.id], d.title, d.source, d.date, d.dateline, d.text, d.sha256)
            for d in base.documents
        ]
        chunks += [
            Chunk(
                f"{rename[c.doc_id]}#{c.ordinal}",
                rename[c.doc_id],
                c.ordinal,
                c.start,
                c.end,
                c.text,
                c.n_tokens,
                c.n_tiktoken,
            )
            for c in base.chunks
        ]
    vecs = np.tile(base.chunk_vectors, (copies, 1))
    vecs += rng.normal(0, 0.01, vecs.shape).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    s = base.sentences
    n = len(base.chunks)
    sentences = SentenceTable(
        doc_ids=[f"r{r:03d}/{d}" for r in range(copies) for d in s.doc_ids],
        starts=np.tile(s.starts, copies),
        ends=np.tile(s.ends, copies),
        chunk_rows=np.concatenate([s.chunk_rows + r * n for r in range(copies)]),
        vectors=np.tile(s.vectors, (copies, 1)),
    )
    manifest = {**base.manifest, "counts": {"documents": len(docs), "chunks": len(chunks)}}
    return IndexData(manifest, docs, chunks, vecs.astype(np.float32), sentences)


def scale_part(embedder: Embedder, base_index: Path, target: int, work: Path) -> None:
    _, path = store.version_path(base_index)
    data = replicate(store.read_data(path), target)
    settings = Settings(index_dir=work / "big-index")
    kind = dense_kind(settings, len(data.chunks))
    t0 = time.perf_counter()
    data.manifest["dense_index"] = kind
    dense = build_dense(data.chunk_vectors, kind)
    lexical = build_lexical([tokenize(c.text) for c in data.chunks])
    store.write_version(settings.index_dir, data, dense, lexical)
    build_s = time.perf_counter() - t0
    snap = Snapshot.load(settings.index_dir)
    questions = [json.loads(x)["question"] for x in (ROOT / "eval/qa.jsonl").open()]
    questions += [
        "who won the match at twickenham",
        "what did the chancellor say about taxes",
        "which club signed the striker",
        "when is the general election expected",
    ]
    print(
        f"\nscale: {len(snap.chunks):,} chunks, {len(snap.docs):,} documents, FAISS {kind} "
        f"(index structures built in {build_s:.0f} s)"
    )
    for mode in MODES:
        embed_ms, retrieve_ms, total_ms = [], [], []
        for _ in range(3):
            for q in questions:
                t0 = time.perf_counter()
                qvec = embedder.encode_queries([q])[0] if mode != "bm25" else None
                t1 = time.perf_counter()
                retrieve(snap, q, qvec, mode=mode, top_k=5)  # type: ignore[arg-type]
                t2 = time.perf_counter()
                embed_ms.append((t1 - t0) * 1000)
                retrieve_ms.append((t2 - t1) * 1000)
                total_ms.append((t2 - t0) * 1000)
        print(
            f"  {mode:6s} embed p50 {statistics.median(embed_ms):5.1f} ms · retrieve p50 "
            f"{statistics.median(retrieve_ms):5.1f} ms · total p50 "
            f"{statistics.median(total_ms):5.1f} / p95 {pct(total_ms, 0.95):5.1f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bbc-index", type=Path, default=ROOT / "bench/out/bbc-corpus")
    ap.add_argument("--csv", type=Path, default=ROOT.parent / "shared/bench/bbc-news.csv")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args()
    embedder = Embedder.load(Settings())
    print(f"machine: {machine()}; torch threads {Settings().cpu_threads()}")
    with tempfile.TemporaryDirectory(prefix="rag-qbench-") as tmp:
        work = Path(tmp)
        seeds_part(embedder, args.rounds, work)
        if not args.skip_scale:
            base = args.bbc_index
            index = base if (base / store.CURRENT).exists() else bbc_index(base, embedder, args.csv)
            scale_part(embedder, index, args.chunks, work)


if __name__ == "__main__":
    main()

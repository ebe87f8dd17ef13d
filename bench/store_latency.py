"""Dense retrieval latency per store on the same index data: FAISS vs Milvus, one run.

    .venv/bin/python bench/store_latency.py FAISS_INDEX_DIR MILVUS_INDEX_DIR [--queries 200]

Both folders hold the same articles and vectors (e.g. the two `rag eval --corpus-dir` indexes,
one built with RAG_STORE=faiss, one with RAG_STORE=milvus). Embeds the queries once, then
times `snapshot.dense.search` (top 50, as hybrid retrieval asks) alternating the two stores
query by query, so machine noise hits both alike. Prints medians and p95. Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.index_build import machine  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.retrieve.retrieval import Snapshot  # noqa: E402
from rag.settings import Settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("faiss_index", type=Path)
    ap.add_argument("milvus_index", type=Path)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    snaps = {"faiss": Snapshot.load(args.faiss_index), "milvus": Snapshot.load(args.milvus_index)}
    for name, snap in snaps.items():
        assert snap.manifest.store_kind == name, name
    texts = [
        c.text[:200]
        for c in snaps["faiss"].chunks[:: max(1, len(snaps["faiss"].chunks) // args.queries)]
    ]
    qvecs = Embedder.load(Settings()).encode_queries(texts[: args.queries])
    times: dict[str, list[float]] = {n: [] for n in snaps}
    same = 0
    for q in qvecs:
        tops = {}
        for name, snap in snaps.items():
            t0 = time.perf_counter()
            tops[name] = [r for r, _ in snap.dense.search(q, 50)]
            times[name].append((time.perf_counter() - t0) * 1000)
        same += tops["faiss"][:10] == tops["milvus"][:10]
    print(f"machine: {machine()} (shared with other agents)")
    print(f"{len(snaps['faiss'].chunks)} chunks, {len(qvecs)} queries, top 50")
    for name, ts in times.items():
        p95 = statistics.quantiles(ts, n=20)[-1]
        print(f"{name:7s} dense search p50 {statistics.median(ts):7.2f} ms  p95 {p95:7.2f} ms")
    print(f"same top-10: {same}/{len(qvecs)}")


if __name__ == "__main__":
    main()

"""Near-duplicate detection's cost against a full index build (issue 24, item 4: ≤ 10 %).

    .venv/bin/python bench/near_duplicates.py [--csv ../shared/bench/bbc-news.csv]
        [--limit N] [--runs 3] [--no-build] [--no-warmup]

Writes one .txt file per CSV row (bench/index_build.py's corpus), loads them as a build does,
then per run times duplicate detection — shingling and signing every document
(`rag.near_duplicates.sign`) and grouping them (`group_copies`, decided on the candidates'
exact shingle sets) — and a full `build_index` with the model already loaded (as in a
server). Prints each run, the medians and the ratio detection / full build. Not a test:
nothing is asserted. `--limit 20` checks that it runs in a few seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.index_build import machine, make_corpus  # noqa: E402
from rag import near_duplicates as nd  # noqa: E402
from rag.loading import load_documents  # noqa: E402
from rag.models import Document  # noqa: E402
from rag.settings import Settings  # noqa: E402


def detect(docs: list[Document]) -> tuple[float, float, list[nd.CopyGroup]]:
    """Seconds to sign every document, seconds to group them, and the groups."""
    t0 = time.perf_counter()
    signatures = {d.id: nd.sign(d.text) for d in docs}
    t1 = time.perf_counter()
    groups = nd.group_copies(
        signatures, {d.id: d.date for d in docs}, texts={d.id: d.text for d in docs}
    )
    return t1 - t0, time.perf_counter() - t1, groups


def full_build(settings: Settings, warmup: bool) -> float:
    """Seconds of one full `build_index` (the model loaded first, outside the timing)."""
    from rag.embedding import Embedder
    from rag.indexing import build_index

    embedder = Embedder.load(settings)
    embedder.encode_queries(["warm up"])
    if warmup:  # the first forward passes of a process are slower (allocations, kernels)
        build_index(settings, rebuild=True, embedder=embedder, progress=False)
    t0 = time.perf_counter()
    report = build_index(settings, rebuild=True, embedder=embedder, progress=False)
    seconds = time.perf_counter() - t0
    print(f"  full build: {report.documents} documents, {report.chunks} chunks, {seconds:.2f} s")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--csv", type=Path, default=ROOT.parent / "shared/bench/bbc-news.csv")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    ap.add_argument("--runs", type=int, default=3, help="detection runs (the median is quoted)")
    ap.add_argument("--no-build", action="store_true", help="time the detection only")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed first build")
    args = ap.parse_args()
    if not args.csv.is_file():
        raise SystemExit(f"{args.csv} not found")

    work = Path(tempfile.mkdtemp(prefix="rag-bench-dups-"))
    try:
        seeds = work / "seeds"
        n_rows = make_corpus(args.csv, seeds, 1, args.limit)
        docs, _ = load_documents(seeds)
        print(f"machine: {machine()}")
        print(f"corpus: {len(docs)} documents of {n_rows} rows ({args.csv.name})")
        runs = []
        for run in range(args.runs):
            sign_s, group_s, groups = detect(docs)
            runs.append(sign_s + group_s)
            print(
                f"run {run + 1}: sign {sign_s:.3f} s, group {group_s:.3f} s; "
                f"{len(groups)} groups, {sum(len(g.copies) for g in groups)} copies folded"
            )
        detection = statistics.median(runs)
        print(f"detection (median of {args.runs}): {detection:.3f} s")
        if not args.no_build:
            settings = Settings(seeds_dir=seeds, index_dir=work / "index")
            build = full_build(settings, warmup=not args.no_warmup)
            print(f"detection / full build: {detection / build:.2%} (target ≤ 10 %)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

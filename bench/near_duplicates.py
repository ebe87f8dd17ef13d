"""Near-duplicate detection's cost against a full index build (issue 24, item 4: ≤ 10 %).

    .venv/bin/python bench/near_duplicates.py [--csv ../shared/bench/bbc-news.csv]
        [--limit N] [--runs 3] [--build-runs 2] [--no-build] [--no-warmup]

Writes one .txt file per CSV row (bench/index_build.py's corpus) and loads them as a build
does. Then, per run, times duplicate detection alone — shingling and signing every document
(`rag.ingest.near_duplicates.sign`) and grouping them (`group_copies`, decided on the candidates'
exact shingle sets). Then full `build_index` runs with the model already loaded (as in a
server; one untimed build first): `--build-runs` pairs of a build with detection (as `rag
index` builds) and one without (`rag.ingest.copies.CopySigner` swapped for one that signs and
groups nothing, in this process only), alternating which goes first. Prints each build, with
the time the build itself spent signing and grouping (`BuildReport.copies_seconds`), then
the medians and what detection adds: (with − without) / without, and the in-build detection
time / the median build without. Not a test: nothing is asserted. `--limit 20 --build-runs 1`
checks that it runs in under a minute.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag.ingest.copies  # noqa: E402
from bench.index_build import machine, make_corpus  # noqa: E402
from rag.ingest import near_duplicates as nd  # noqa: E402
from rag.ingest.copies import CopySigner  # noqa: E402
from rag.ingest.loading import load_documents  # noqa: E402
from rag.models import Document  # noqa: E402
from rag.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from rag.embedding import Embedder


def detect(docs: list[Document]) -> tuple[float, float, list[nd.CopyGroup]]:
    """Seconds to sign every document, seconds to group them, and the groups."""
    t0 = time.perf_counter()
    signatures = {d.id: nd.sign(d.text) for d in docs}
    t1 = time.perf_counter()
    groups = nd.group_copies(
        signatures, {d.id: d.date for d in docs}, texts={d.id: d.text for d in docs}
    )
    return t1 - t0, time.perf_counter() - t1, groups


class _NoDetection(CopySigner):
    """A signer that signs and groups nothing: what a build costs without copy detection."""

    def add(self, doc: Document, stored: Callable[[], bytes | None] | None = None) -> bytes:
        return b""

    def group(self, texts: Mapping[str, str]) -> list[nd.CopyGroup]:
        return []


def full_build(settings: Settings, embedder: Embedder, detect: bool) -> tuple[float, float]:
    """Seconds of one full `build_index`, and of them the seconds spent on copies."""
    from rag.index.indexing import build_index

    rag.ingest.copies.CopySigner = CopySigner if detect else _NoDetection  # type: ignore[misc]
    try:
        t0 = time.perf_counter()
        report = build_index(settings, rebuild=True, embedder=embedder, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        rag.ingest.copies.CopySigner = CopySigner  # type: ignore[misc]
    print(
        f"  build {'with' if detect else 'without'} detection: {report.documents} documents, "
        f"{report.chunks} chunks, {seconds:.2f} s; signing and grouping {report.copies_seconds:.3f}"
        f" s ({report.documents_signed} signed, {report.copy_groups} groups)"
    )
    return seconds, report.copies_seconds


def compare_builds(settings: Settings, runs: int, warmup: bool) -> None:
    """`runs` pairs of full builds with and without detection; medians and ratios."""
    from rag.embedding import Embedder
    from rag.index.indexing import build_index

    embedder = Embedder.load(settings)
    embedder.encode_queries(["warm up"])
    if warmup:  # the first forward passes of a process are slower (allocations, kernels)
        build_index(settings, rebuild=True, embedder=embedder, progress=False)
    timed: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for run in range(runs):
        for detect in (True, False) if run % 2 == 0 else (False, True):
            timed[detect].append(full_build(settings, embedder, detect))
    with_s = statistics.median(s for s, _ in timed[True])
    without_s = statistics.median(s for s, _ in timed[False])
    inside = statistics.median(c for _, c in timed[True])
    print(
        f"full build (median of {runs}): with detection {with_s:.2f} s, without {without_s:.2f} s"
    )
    print(
        f"detection adds {(with_s - without_s) / without_s:+.2%} (builds compared), "
        f"{inside / without_s:.2%} (its own time in the build); target ≤ 10 %"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--csv", type=Path, default=ROOT.parent / "shared/bench/bbc-news.csv")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    ap.add_argument("--runs", type=int, default=3, help="detection runs (the median is quoted)")
    ap.add_argument("--build-runs", type=int, default=2, help="pairs of full builds (medians)")
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
        print(f"detection alone (median of {args.runs}): {detection:.3f} s")
        if not args.no_build:
            settings = Settings(seeds_dir=seeds, index_dir=work / "index")
            compare_builds(settings, args.build_runs, warmup=not args.no_warmup)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

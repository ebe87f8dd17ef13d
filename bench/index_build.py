"""Index build benchmark: throughput vs the raw model, incremental cost, memory, disk.

    .venv/bin/python bench/index_build.py [--csv ../shared/bench/bbc-news.csv] [--repeat 1]
        [--runs 3] [--limit N]

Builds a corpus of one .txt file per CSV row (×repeat with distinct ids), then, per run:
a full build (model already loaded, as in a server), `model.encode` on the same chunk texts
with the same batch size, one changed article (in-process and via the `rag index` CLI), and a
no-op `rag index`. Prints medians; docs/performance.md quotes them. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.embedding import Embedder  # noqa: E402
from rag.index.indexing import build_index  # noqa: E402
from rag.retrieve.retrieval import Snapshot  # noqa: E402
from rag.settings import Settings  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def make_corpus(csv_path: Path, dest: Path, repeat: int, limit: int | None) -> int:
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))[:limit]
    dest.mkdir(parents=True)
    for r in range(repeat):
        for i, row in enumerate(rows):
            name = f"bbc-{i:04d}.txt" if repeat == 1 else f"bbc-r{r:02d}-{i:04d}.txt"
            (dest / name).write_text(row["text"].strip() + "\n", encoding="utf-8")
    return len(rows) * repeat


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cli(*args: str) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one `rag` CLI run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"rag {' '.join(args)} failed")
    return wall, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--csv", type=Path, default=ROOT.parent / "shared/bench/bbc-news.csv")
    ap.add_argument("--repeat", type=int, default=1, help="copies of the corpus (distinct ids)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    ap.add_argument("--skip-cli", action="store_true", help="skip the subprocess timings")
    ap.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed first build (large corpora)"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        seeds, index = work / "seeds", work / "index"
        n_docs = make_corpus(args.csv, seeds, args.repeat, args.limit)
        settings = Settings(seeds_dir=seeds, index_dir=index)
        t0 = time.perf_counter()
        embedder = Embedder.load(settings)
        load_s = time.perf_counter() - t0
        embedder.encode_queries(["warm up"])
        print(f"machine: {machine()}")
        print(
            f"corpus: {n_docs} documents ({args.csv.name} ×{args.repeat}); "
            f"model load {load_s:.2f} s"
        )

        # warm-up: the first forward passes of a process are slower (allocations, kernels)
        if not args.no_warmup:
            build_index(settings, rebuild=True, embedder=embedder, progress=False)
        full, raw, ratio, incr, incr_cli, noop_cli, rss = [], [], [], [], [], [], []
        n_chunks = 0
        for run in range(args.runs):
            t0 = time.perf_counter()
            report = build_index(settings, rebuild=True, embedder=embedder, progress=False)
            full_s = time.perf_counter() - t0
            n_chunks = report.chunks
            texts = [c.text for c in Snapshot.load(index).chunks]
            t0 = time.perf_counter()
            embedder.model.encode(texts, batch_size=settings.batch_size, show_progress_bar=False)
            raw_s = time.perf_counter() - t0
            full.append(n_chunks / full_s)
            raw.append(n_chunks / raw_s)
            ratio.append(raw_s / full_s)

            victim = sorted(seeds.iterdir())[run]
            victim.write_text(victim.read_text() + f"\nEdited in run {run}.\n")
            t0 = time.perf_counter()
            r = build_index(settings, embedder=embedder, progress=False)
            incr.append((time.perf_counter() - t0) / full_s)
            assert r.changed == [victim.name], r
            if not args.skip_cli:
                victim.write_text(victim.read_text() + "Edited again.\n")
                wall, _ = cli("index", "--seeds", str(seeds), "--index", str(index))
                incr_cli.append(wall / full_s)
                noop_cli.append(cli("index", "--seeds", str(seeds), "--index", str(index))[0])
            print(
                f"run {run + 1}: full {full_s:.1f} s ({full[-1]:.1f} chunks/s), raw encode "
                f"{raw_s:.1f} s ({raw[-1]:.1f} chunks/s), ratio {ratio[-1]:.3f}, "
                f"one changed (in-process) {incr[-1]:.4f} of full"
            )
        if not args.skip_cli:
            _, peak = cli("index", "--seeds", str(seeds), "--index", str(index), "--rebuild")
            rss.append(peak)
        med = statistics.median
        print("\nmedians")
        print(f"  documents {n_docs}, chunks {n_chunks}")
        print(f"  full build: {n_chunks / med(full) * 1:.1f} s wall, {med(full):.1f} chunks/s")
        print(f"  raw model.encode same texts/batch: {med(raw):.1f} chunks/s")
        print(f"  pipeline ÷ raw throughput: {med(ratio):.3f}")
        print(f"  one article changed, in-process (model loaded): {med(incr):.4f} of a full build")
        if not args.skip_cli:
            print(
                f"  one article changed, `rag index` CLI wall: {med(incr_cli):.4f} of a full build"
            )
            print(f"  no change, `rag index` CLI wall: {med(noop_cli):.2f} s")
            print(f"  peak RSS of `rag index --rebuild`: {rss[0] / 1024:.0f} MiB")
        print(
            f"  index size on disk (live version): {dir_size(index / 'versions') / 2**20:.1f} MiB"
            f" for {len(list((index / 'versions').iterdir()))} kept version(s)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    main()

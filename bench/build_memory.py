"""Peak RSS of index builds versus corpus size, per stage, and the no-op `rag index` time.

    .venv/bin/python bench/build_memory.py [--rows 232] [--sizes 1,40,168] [--csv FILE]

The corpus is the first `--rows` BBC articles, one .txt file each, replicated ×size with
distinct ids (`bbc-rNNN-XXXX.txt`). Each size is built by a fresh `rag index` process (model
loaded, as the CLI does) with a thread sampling its RSS every 20 ms; the stage it is in is
tracked by wrapping the pipeline's stage functions (nothing is replaced). The ×1 build embeds
every chunk. Larger sizes add replicas to the same folder and run `rag index` again: replicas
are byte-identical copies, so the build copies their chunks and vectors from the live version
(renames/duplicates are never re-embedded) while the writer, SQLite, BM25 and FAISS stages run
over every chunk of the new version. After the size whose file count is closest to 9,280 the
no-op `rag index` (stat fast path), `rag index --verify` (hashes every file) are timed.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(seeds: Path, index: Path) -> None:
    """One build, instrumented: prints a JSON line with per-stage peaks and the RSS curve."""
    import psutil

    from rag.engines import factory
    from rag.index import indexing, store, writer
    from rag.settings import Settings

    proc = psutil.Process()
    state = {"stage": "start", "peaks": {}, "curve": [], "next": 0}

    def sample() -> None:
        while True:
            rss = proc.memory_info().rss
            peaks = state["peaks"]
            peaks[state["stage"]] = max(peaks.get(state["stage"], 0), rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()

    def staged(owner: object, name: str, label: str) -> None:
        real = getattr(owner, name)

        def wrapper(*a: object, **k: object) -> object:
            state["stage"] = label
            return real(*a, **k)

        setattr(owner, name, wrapper)

    staged(indexing, "list_files", "list files (stat)")
    staged(indexing, "plan_build", "plan")
    staged(indexing, "embed_stream", "load+chunk+embed+write rows")
    staged(writer.VersionWriter, "close_tables", "close tables")
    staged(factory, "build_dense_blocks", "FAISS from the vector file")
    staged(factory, "build_lexical_ids", "BM25 from term ids")
    staged(store, "commit_version", "fsync + commit")
    real_end = writer.VersionWriter._end_document

    def end_document(self: writer.VersionWriter, doc_id: str, n: int, lo: int) -> None:
        real_end(self, doc_id, n, lo)
        if self.n_chunks >= state["next"]:
            state["curve"].append((self.n_chunks, proc.memory_info().rss))
            state["next"] = self.n_chunks + max(500, state["next"] // 4)

    writer.VersionWriter._end_document = end_document  # type: ignore[method-assign]
    t0 = time.perf_counter()
    report = indexing.build_index(Settings(seeds_dir=seeds, index_dir=index), progress=False)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - t0,
                "chunks": report.chunks,
                "documents": report.documents,
                "embedded": report.chunks_embedded,
                "reason": report.reason,
                "peaks": state["peaks"],
                "curve": state["curve"],
                "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


def _run(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"{args} failed: {out.stderr[-2000:]}")
    return time.perf_counter() - t0, out.stdout


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _add_replicas(rows: list[str], seeds: Path, lo: int, hi: int) -> None:
    for r in range(lo, hi):
        for i, text in enumerate(rows):
            (seeds / f"bbc-r{r:03d}-{i:04d}.txt").write_text(text.strip() + "\n", encoding="utf-8")


def _noop_figures(seeds: Path, index: Path, runs: int) -> None:
    from rag.index.indexing import build_index
    from rag.settings import Settings

    n_files = len(list(seeds.iterdir()))
    s = Settings(seeds_dir=seeds, index_dir=index)
    inproc, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        assert build_index(s, progress=False).reason == "up to date"
        inproc.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    cli = [_run("-m", "rag.cli", "index", "--seeds", str(seeds), "--index", str(index))[0]]
    cli += [
        _run("-m", "rag.cli", "index", "--seeds", str(seeds), "--index", str(index))[0]
        for _ in range(runs - 1)
    ]
    t0 = time.perf_counter()
    build_index(s, verify=True, progress=False)
    verify = time.perf_counter() - t0
    print(
        f"\nno-op over {n_files:,} files: decision in-process median "
        f"{statistics.median(inproc):.3f} s (runs {', '.join(f'{x:.3f}' for x in inproc)}); "
        f"CPU time median {statistics.median(cpu):.3f} s; `rag index` process wall median "
        f"{statistics.median(cli):.2f} s; `--verify` (hash every file) {verify:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--csv", type=Path, default=ROOT.parent.parent / "shared/bench/bbc-news.csv")
    ap.add_argument("--rows", type=int, default=232, help="distinct articles (base corpus)")
    ap.add_argument("--sizes", default="1,40,168", help="replication factors, increasing")
    ap.add_argument("--noop-runs", type=int, default=5)
    ap.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if not args.csv.is_file():
        args.csv = Path("/work/shared/bench/bbc-news.csv")
    rows = [r["text"] for r in csv.DictReader(args.csv.open(encoding="utf-8"))][: args.rows]
    sizes = [int(x) for x in args.sizes.split(",")]
    noop_at = min(sizes, key=lambda k: abs(k * len(rows) - 9280))
    work = Path(tempfile.mkdtemp(prefix="rag-mem-"))
    try:
        seeds, index = work / "seeds", work / "index"
        seeds.mkdir()
        print(f"machine: {os.cpu_count()} cores (shared with other jobs); base {len(rows)} rows")
        done = 0
        for k in sizes:
            _add_replicas(rows, seeds, done, k)
            done = k
            _, out = _run(__file__, "--child", str(seeds), str(index))
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"\n×{k}: {r['documents']:,} documents, {r['chunks']:,} chunks "
                f"({r['embedded']:,} embedded, {r['reason']}), {r['seconds']:.0f} s; "
                f"peak RSS {_mib(r['maxrss'])}"
            )
            for stage, peak in r["peaks"].items():
                print(f"  {stage:30s} peak {_mib(peak)}")
            curve = ", ".join(f"{n:,}: {_mib(rss)}" for n, rss in r["curve"])
            print(f"  RSS while writing (chunks: RSS): {curve}")
            if k == noop_at:
                _noop_figures(seeds, index, args.noop_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

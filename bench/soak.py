"""Soak test: a real `rag serve` under steady mixed load for minutes, its memory sampled.

    .venv/bin/python bench/soak.py --minutes 60 --clients 8 --swaps 6       # the goal run
    .venv/bin/python bench/soak.py --minutes 10 --label quick --tracemalloc

The corpus is the seed articles plus `--articles` BBC articles (one file each, from the shared
CSV) in bench/out/soak/seeds, indexed with `rag index`. The server runs in its own process on a
free loopback port. `--clients` concurrent clients send, until the time is up: /v1/ask (most),
/v1/search (a tenth, mixed modes) and the SSE stream (a tenth; a third of those disconnect after
the first event). Half the questions come from a fixed pool (asked again and again), half are
never seen before (random mixes of article words, 3-25 words). `--swaps` times, evenly spread
after warm-up, an article is changed and one added, then the index is rebuilt and hot-swapped
(POST /v1/index/rebuild, or `rag index` in another process with `--swap-via cli`).

Every `--sample` seconds the server's RSS is recorded: the `rag serve` process plus the
processes it had started when it became ready (its answer processes; rebuild processes come and
go and are not counted). With `--tracemalloc` the server traces
Python allocations (RAG_TRACEMALLOC_DIR) and dumps a snapshot at the end of warm-up, every
`--trace-every` minutes and at the end; the first and last are compared by line.

Output in bench/out/ (git-ignored): soak-<label>.csv (the curve), soak-<label>.png (the plot),
soak-<label>-tracemalloc.txt, and one summary line, printed and appended to soak-summary.txt:
requests, errors, p50/p99, RSS after warm-up and at the end, and the fitted slope (MiB/min)
after warm-up and over the last half.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import load
from bench.load import (
    BBC_CSV,
    BBC_QUESTIONS,
    OUT,
    ROOT,
    SEED_QUESTIONS,
    Connection,
    _env,
    _percentile,
    ensure_index,
    machine,
)
from bench.soak_report import Sample, compare_traces, plot_compare, write_outputs

SWAP_DOC = "soak-swap.txt"
# the shared data sits beside the checkout (../shared) or beside the worktrees' parent
CSV_DEFAULT = next(
    (p for p in (BBC_CSV, ROOT.parent.parent / "shared" / "bench" / "bbc-news.csv") if p.is_file()),
    BBC_CSV,
)
SEARCH_MODES = ("hybrid", "bm25", "dense")


# ---------------------------------------------------------------------------- corpus


class Server(load.Server):
    """`rag serve` as in bench/load.py, optionally from another checkout (before/after runs)."""

    def __init__(self, seeds: Path, index: Path, log: Path, root: Path | None = None) -> None:
        if root is None:
            super().__init__(seeds, index, log)
            return
        self.port = load.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port)]
        cmd += ["--seeds", str(seeds.resolve()), "--index", str(index.resolve())]
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=root, env=_env(), stdout=self._log, stderr=subprocess.STDOUT
        )


def prepare_corpus(work: Path, articles: int, csv_path: Path) -> tuple[Path, list[str]]:
    """seeds/ + the first `articles` BBC rows as files; returns the folder and the BBC texts."""
    seeds = work / "seeds"
    if seeds.exists():
        shutil.rmtree(seeds)
    seeds.mkdir(parents=True)
    for f in sorted((ROOT / "seeds").glob("*.txt")):
        shutil.copy(f, seeds / f.name)
    csv.field_size_limit(sys.maxsize)
    texts: list[str] = []
    with csv_path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=1):
            if n > articles:
                break
            texts.append(row["text"].strip())
            (seeds / f"bbc-{n:04d}.txt").write_text(texts[-1] + "\n", encoding="utf-8")
    return seeds, texts


class Questions:
    """A fixed pool asked again and again, and never-seen random mixes of article words."""

    def __init__(self, texts: list[str], seed: int = 7) -> None:
        vocab = sorted({w for t in texts for w in re.findall(r"[a-z]{3,}", t)})
        self.vocab = vocab
        self.rng = random.Random(seed)
        pool_rng = random.Random(seed + 1)
        self.pool = SEED_QUESTIONS + BBC_QUESTIONS + [self._mix(pool_rng) for _ in range(200)]

    def _mix(self, rng: random.Random) -> str:
        words = rng.sample(self.vocab, rng.randint(3, 25))
        return rng.choice(("What ", "Who ", "Why ", "When ", "")) + " ".join(words) + "?"

    def next(self, novel_share: float) -> str:
        if self.rng.random() < novel_share:
            return self._mix(self.rng)
        return self.rng.choice(self.pool)


# ---------------------------------------------------------------------------- load


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        self.latencies.append(seconds)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if error is not None:
            self.errors.append(f"{kind}: {error}")


async def sse(host: str, port: int, body: bytes, disconnect: bool) -> str | None:
    """One streamed answer on its own connection; None when it went as expected."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = (
            f"POST /v1/ask HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Content-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status = int((await reader.readline()).split()[1])
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        if status != 200:
            return f"HTTP {status}"
        if disconnect:  # first event, then hang up without reading the rest
            await reader.readuntil(b"\n\n")
            writer.transport.abort()
            return None
        data = await reader.read()
        return None if b"event: done" in data else "stream ended without `done`"
    finally:
        writer.close()


async def client(
    host: str, port: int, questions: Questions, args: argparse.Namespace, t_end: float, tally: Tally
) -> None:
    conn = Connection(host, port)
    rng = random.Random()
    try:
        while time.monotonic() < t_end:
            q = questions.next(args.novel)
            u = rng.random()
            t0 = time.perf_counter()
            error: str | None = None
            try:
                if u < args.search_share:
                    kind = "search"
                    body = {"question": q, "mode": rng.choice(SEARCH_MODES)}
                    status, data = await asyncio.wait_for(
                        conn.post("/v1/search", json.dumps(body).encode()), 60
                    )
                    error = None if status == 200 else f"HTTP {status} {data[:200]!r}"
                elif u < args.search_share + args.stream_share:
                    drop = rng.random() < args.disconnect_share
                    kind = "stream-dropped" if drop else "stream"
                    body_b = json.dumps({"question": q}).encode()
                    error = await asyncio.wait_for(sse(host, port, body_b, drop), 60)
                else:
                    kind = "ask"
                    status, data = await asyncio.wait_for(
                        conn.post("/v1/ask", json.dumps({"question": q}).encode()), 60
                    )
                    error = None if status == 200 else f"HTTP {status} {data[:200]!r}"
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                await conn.close()
            except TimeoutError:
                error = "timeout"
                await conn.close()
            tally.record(kind, time.perf_counter() - t0, error)
    finally:
        await conn.close()


# ---------------------------------------------------------------------------- swaps


async def swap(server: Server, seeds: Path, index: Path, k: int, via: str, texts: list[str]) -> str:
    """Change one article and add another, rebuild, wait until the new version serves."""
    rng = random.Random(k)
    before = (await asyncio.to_thread(httpx.get, f"{server.base}/v1/index/status")).json()
    sentences = [s for t in rng.sample(texts, 3) for s in t.split(".  ") if len(s) > 40]
    (seeds / SWAP_DOC).write_text(f"soak swap {k}\n\n" + ".  ".join(sentences[:8]) + ".\n")
    (seeds / f"soak-added-{k:02d}.txt").write_text(rng.choice(texts) + f"\n\nsoak edition {k}.\n")
    if via == "cli":
        cmd = [
            sys.executable,
            "-m",
            "rag.cli",
            "index",
            "--seeds",
            str(seeds),
            "--index",
            str(index),
        ]
        await asyncio.to_thread(subprocess.run, cmd, cwd=ROOT, env=_env(), check=True)
    else:
        r = await asyncio.to_thread(httpx.post, f"{server.base}/v1/index/rebuild", timeout=10)
        r.raise_for_status()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        st = (await asyncio.to_thread(httpx.get, f"{server.base}/v1/index/status")).json()
        if st["serving_version"] != before["serving_version"] and not st["running"]:
            return str(st["serving_version"])
    raise TimeoutError(f"swap {k} did not finish")


# ---------------------------------------------------------------------------- sampling


def server_processes(proc: psutil.Process) -> list[psutil.Process]:
    """`rag serve` and the processes it runs for good (answer processes), once it is ready."""
    return [proc, *proc.children(recursive=True)]


def tree_rss_mib(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        # an answer process that died is skipped (the one started in its place is not counted)
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


async def sampler(
    procs: list[psutil.Process],
    t0: float,
    t_end: float,
    every: float,
    tally: Tally,
    out: list[Sample],
) -> None:
    proc = procs[0]
    while True:
        now = time.monotonic()
        try:
            rss = tree_rss_mib(procs)
            threads = proc.num_threads()
        except psutil.Error:
            return
        out.append(
            Sample(
                round((now - t0) / 60, 3),
                round(rss, 2),
                threads,
                len(tally.latencies),
                len(tally.errors),
            )
        )
        if now >= t_end:
            return
        await asyncio.sleep(min(every, max(0.0, t_end - now)))


def mark(samples: list[Sample], procs: list[psutil.Process], t0: float, event: str) -> None:
    rss = tree_rss_mib(procs)
    minute = round((time.monotonic() - t0) / 60, 3)
    samples.append(Sample(minute, round(rss, 2), procs[0].num_threads(), -1, -1, event))


def slope(samples: list[Sample], since: float) -> float:
    """Least-squares RSS slope in MiB/min over the samples at or after minute `since`."""
    pts = [(s.minute, s.rss_mib) for s in samples if s.minute >= since and not s.event]
    if len(pts) < 3:
        return float("nan")
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


# ---------------------------------------------------------------------------- main


async def run(
    args: argparse.Namespace,
    server: Server,
    seeds: Path,
    index: Path,
    texts: list[str],
    trace_dir: Path | None,
) -> tuple[Tally, list[Sample], float]:
    host, port = server.base.removeprefix("http://").split(":")
    procs = server_processes(psutil.Process(server.proc.pid))
    questions = Questions(texts)
    tally = Tally()
    samples: list[Sample] = []
    t0 = time.monotonic()
    t_end = t0 + args.minutes * 60
    warm_end = t0 + args.warmup * 60

    def dump_trace() -> None:
        if trace_dir is not None:
            server.proc.send_signal(signal.SIGUSR1)

    async def swaps() -> None:
        span = (args.minutes - args.warmup) * 60
        for k in range(1, args.swaps + 1):
            at = warm_end + span * k / (args.swaps + 1)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            mark(samples, procs, t0, f"swap{k} start")
            version = await swap(server, seeds, index, k, args.swap_via, texts)
            mark(samples, procs, t0, f"swap{k} done {version}")
            print(
                f"  swap {k} done at minute {(time.monotonic() - t0) / 60:.1f}: {version}",
                flush=True,
            )

    async def traces() -> None:
        await asyncio.sleep(max(0.0, warm_end - time.monotonic()))
        dump_trace()
        while time.monotonic() + args.trace_every * 60 < t_end:
            await asyncio.sleep(args.trace_every * 60)
            dump_trace()

    async def progress() -> None:
        while time.monotonic() < t_end:
            await asyncio.sleep(60)
            last = samples[-1] if samples else None
            if last is not None:
                print(
                    f"  minute {last.minute:.0f}: RSS {last.rss_mib:.1f} MiB, "
                    f"{last.requests} requests, {last.errors} errors",
                    flush=True,
                )

    tasks = [asyncio.create_task(t) for t in (swaps(), traces(), progress())]
    await asyncio.gather(
        sampler(procs, t0, t_end, args.sample, tally, samples),
        *(client(host, int(port), questions, args, t_end, tally) for _ in range(args.clients)),
    )
    for t in tasks:
        t.cancel()
    if trace_dir is not None:
        dump_trace()
        await asyncio.sleep(20)
    return tally, samples, time.monotonic() - t0


def summarise(args: argparse.Namespace, tally: Tally, samples: list[Sample], seconds: float) -> str:
    """The one-line summary: requests, errors, latency, RSS after warm-up and at the end, slope."""
    ms = sorted(x * 1000 for x in tally.latencies)
    pts = [s for s in samples if not s.event]
    warm = next((s for s in pts if s.minute >= args.warmup), pts[0])
    end = pts[-1]
    half = args.warmup + (args.minutes - args.warmup) / 2
    growth = (end.rss_mib - warm.rss_mib) / warm.rss_mib * 100
    swaps_done = sum(1 for s in samples if " done" in s.event)
    return (
        f"[{args.label}] {len(ms)} requests ({len(ms) / seconds:.1f}/s), "
        f"{len(tally.errors)} errors, p50 {_percentile(ms, 50):.0f} ms, "
        f"p99 {_percentile(ms, 99):.0f} ms; RSS "
        f"{warm.rss_mib:.0f} MiB after {args.warmup:g} min warm-up, {end.rss_mib:.0f} MiB at "
        f"{end.minute:.0f} min ({growth:+.1f} %); slope {slope(samples, args.warmup):.2f} MiB/min "
        f"after warm-up, {slope(samples, half):.2f} over the last half; {swaps_done} swaps; "
        f"{args.clients} clients, {args.articles} BBC articles"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30, help="Length of the soak.")
    p.add_argument("--warmup", type=float, default=2, help="Minutes before 'after warm-up'.")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--articles", type=int, default=300, help="BBC articles beside the seeds.")
    p.add_argument("--swaps", type=int, default=4, help="Hot swaps, spread after warm-up.")
    p.add_argument("--swap-via", choices=["api", "cli"], default="api")
    p.add_argument("--novel", type=float, default=0.5, help="Share of never-seen questions.")
    p.add_argument("--search-share", type=float, default=0.1)
    p.add_argument("--stream-share", type=float, default=0.1)
    p.add_argument("--disconnect-share", type=float, default=0.33, help="Of the streams.")
    p.add_argument("--sample", type=float, default=5, help="Seconds between RSS samples.")
    p.add_argument("--tracemalloc", action="store_true", help="Trace Python allocations.")
    p.add_argument("--trace-every", type=float, default=5, help="Minutes between snapshots.")
    p.add_argument("--label", default="soak", help="Output file names: soak-<label>.*")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra environment for the server (e.g. MALLOC_ARENA_MAX=2).",
    )
    p.add_argument("--bbc-csv", type=Path, default=CSV_DEFAULT)
    p.add_argument("--server-root", type=Path, help="Checkout whose `rag serve` to run.")
    p.add_argument("--compare", nargs="+", metavar="LABEL", help="Only plot earlier runs.")
    args = p.parse_args(argv)
    if args.compare:
        print(f"wrote {plot_compare(args.compare)}")
        return 0

    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "soak" if args.server_root is None else OUT / f"soak-{args.label}"
    if args.server_root is not None and not (work / "index").exists() and (OUT / "soak").is_dir():
        shutil.copytree(OUT / "soak" / "index", work / "index")  # reuse the vectors
    seeds, texts = prepare_corpus(work, args.articles, args.bbc_csv)
    index = work / "index"
    print(f"machine: {machine()}", flush=True)
    ensure_index(seeds, index)
    trace_dir = None
    for kv in args.server_env:
        key, _, value = kv.partition("=")
        os.environ[key] = value
    if args.tracemalloc:
        trace_dir = work / f"traces-{args.label}"
        shutil.rmtree(trace_dir, ignore_errors=True)
        os.environ["RAG_TRACEMALLOC_DIR"] = str(trace_dir)
    if args.server_root is not None:  # serve another checkout (e.g. `git archive` of main)
        os.environ["PYTHONPATH"] = str(args.server_root.resolve())
    server = Server(seeds, index, OUT / f"soak-{args.label}-server.log", args.server_root)
    try:
        ready = server.wait_ready()
        print(
            f"serving {ready['documents']} documents, {ready['chunks']} chunks; "
            f"{args.clients} clients for {args.minutes} min",
            flush=True,
        )
        tally, samples, seconds = asyncio.run(run(args, server, seeds, index, texts, trace_dir))
    finally:
        server.stop()

    summary = summarise(args, tally, samples, seconds)
    print(summary)
    print(f"requests by kind: {tally.kinds}")
    for e in tally.errors[:10]:
        print(f"  error: {e}")
    with (OUT / "soak-summary.txt").open("a") as fh:
        fh.write(summary + "\n")
    write_outputs(args.label, samples, summary, f"rag serve soak ({args.label})")
    if trace_dir is not None:
        print(compare_traces(trace_dir, args.label, top=15))
    print(f"wrote {OUT}/soak-{args.label}.csv and .png")
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())

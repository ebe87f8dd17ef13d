"""Load generator for `rag serve`: throughput and latency at several concurrency levels.

    .venv/bin/python bench/load.py                      # seeds and BBC corpora, c = 1, 8, 32
    .venv/bin/python bench/load.py --corpus bbc --bbc-index bench/out/bbc-index
    .venv/bin/python bench/load.py --corpus seeds --levels 32 --replicas 2   # two `rag serve`
    .venv/bin/python bench/load.py --corpus seeds --levels 32 --workers 2    # `--workers 2`
    .venv/bin/python bench/load.py --corpus seeds --levels 32 --answer-processes 0  # in-process

For each corpus it starts the real server (`rag serve`, a separate process, so client and server
don't share a GIL) on a free loopback port, waits for /ready, warms up, then for each concurrency
level sends a fixed number of questions (bounded by time too) from that many concurrent clients
and prints requests/s, p50/p99 latency and errors. The BBC corpus (928 articles) is written from
the shared CSV as one .txt file per row and indexed with `rag index`; the index is kept under
bench/out/ (git-ignored) and reused on the next run. With `--replicas N`, N `rag serve`
processes serve the same index (the stateless replicas of docs/scale.md) and the clients are spread
evenly over them, as a round-robin load balancer would; CPU per request is summed over them.
With `--workers N`, one `rag serve --workers N` (N processes on one port; the kernel assigns
each connection to a worker); CPU is summed over the server and its child processes (answer
processes included). `--answer-processes` is passed to `rag serve` (default: its own, auto).
The table's "mean floor" is Little's law: with c clients always waiting and each request
costing the measured server + client CPU on this machine's cores, no server can do better.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BBC_CSV = ROOT.parent / "shared" / "bench" / "bbc-news.csv"

SEED_QUESTIONS = [
    "Who chairs the Arab Parliament?",
    "What did the Arab Parliament call on the Non-Aligned Movement to do?",
    "Where did Al-Asoumi meet Sahiba Gafarova?",
    "When was the NAM parliamentary network inaugurated?",
    "What is happening in Gaza according to the statement?",
    "Who heads the National Assembly of Azerbaijan?",
    "What did Gafarova express admiration for?",
    "Which news agency reported the meeting?",
]
BBC_QUESTIONS = [
    "When will Jonny Wilkinson return from injury?",
    "What did Tony Blair say about the general election?",
    "Who is the England rugby captain?",
    "What did Gordon Brown announce in the budget?",
    "Which club does Andy Farrell play for?",
    "What happened to council tax?",
    "Who won the Australian Open?",
    "What did Michael Howard promise on immigration?",
    "How did Chelsea do in the Champions League?",
    "What are the Liberal Democrats saying about tuition fees?",
    "Who was injured before the Six Nations match?",
    "What is the government's plan for identity cards?",
]


@dataclass
class LevelResult:
    corpus: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    server_cpu_ms: float = 0.0  # server CPU time (all threads) per request
    client_cpu_ms: float = 0.0  # this load generator's CPU time per request (same cores)

    def floor_mean_ms(self, cores: int) -> float:
        """Little's law: with `concurrency` clients always waiting and every request costing
        server + client CPU on `cores` cores, the mean latency can be no lower than this."""
        per_request = self.server_cpu_ms + self.client_cpu_ms
        return self.concurrency * per_request / max(cores, 1)


# ---------------------------------------------------------------------------- corpora


def write_bbc_seeds(csv_path: Path, seeds: Path) -> int:
    """One article per CSV row, `bbc-0001.txt` onwards (row order, 1-based)."""
    csv.field_size_limit(sys.maxsize)
    seeds.mkdir(parents=True, exist_ok=True)
    n = 0
    with csv_path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=1):
            (seeds / f"bbc-{n:04d}.txt").write_text(row["text"].strip() + "\n", encoding="utf-8")
    return n


def ensure_index(seeds: Path, index: Path) -> None:
    """Build (or bring up to date) an index with the CLI, as a user would."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "rag.cli", "index", "--seeds", str(seeds), "--index", str(index)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env())
    print(f"  index ready in {time.perf_counter() - t0:.1f} s: {index}", flush=True)


# ---------------------------------------------------------------------------- server


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`rag serve` in a child process, stopped with SIGINT (uvicorn's graceful shutdown)."""

    def __init__(
        self, seeds: Path, index: Path, log: Path, workers: int = 1, answer_processes: str = ""
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(self.port),
            "--seeds",
            str(seeds),
            "--index",
            str(index),
            "--workers",
            str(workers),
        ]
        if answer_processes:
            cmd += ["--answer-processes", answer_processes]
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_env(), stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 180) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self._log.name}"
                )
            try:
                r = httpx.get(f"{self.base}/ready", timeout=2)
                if r.status_code == 200:
                    return r.json()  # type: ignore[no-any-return]
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server not ready")

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server process and its children (the uvicorn
        workers of `--workers N`), from Linux /proc."""
        stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            stats[int(entry.name)] = (int(fields[1]), cpu)
        tree, todo = set(), [self.proc.pid]
        while todo:  # the server, its children, theirs
            pid = todo.pop()
            tree.add(pid)
            todo += [p for p, (parent, _) in stats.items() if parent == pid and p not in tree]
        return sum(stats[p][1] for p in tree if p in stats)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------------- load


class Connection:
    """A minimal keep-alive HTTP/1.1 client for JSON POSTs.

    The load generator shares the machine's cores with the server, so its own cost per request
    must be small: this is a few hundred bytes of parsing per request, where httpx spends about
    a millisecond of CPU. The server answers with Content-Length, so no chunked decoding.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        keep_alive = True
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                keep_alive = False
        data = await self.reader.readexactly(length)
        if not keep_alive:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def run_level(
    bases: list[str],
    corpus: str,
    questions: list[str],
    concurrency: int,
    requests: int,
    max_seconds: float,
    endpoint: str,
) -> LevelResult:
    addresses = [b.removeprefix("http://").split(":") for b in bases]
    bodies = [json.dumps({"question": q}).encode() for q in questions]
    latencies: list[float] = []
    errors = 0
    issued = 0
    t_end = time.monotonic() + max_seconds

    async def worker(n: int) -> None:
        nonlocal errors, issued
        host, port = addresses[n % len(addresses)]  # clients spread evenly over the replicas
        conn = Connection(host, int(port))
        try:
            while issued < requests and time.monotonic() < t_end:
                body = bodies[issued % len(bodies)]
                issued += 1
                t0 = time.perf_counter()
                try:
                    status, data = await asyncio.wait_for(conn.post(endpoint, body), 30)
                    ok = status == 200 and data.startswith(b"{")
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
                    ok = False
                    await conn.close()
                latencies.append(time.perf_counter() - t0)
                errors += not ok
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in latencies)
    return LevelResult(
        corpus=corpus,
        concurrency=concurrency,
        requests=len(ms),
        errors=errors,
        seconds=round(elapsed, 2),
        rps=round(len(ms) / elapsed, 1),
        p50_ms=round(_percentile(ms, 50), 1),
        p99_ms=round(_percentile(ms, 99), 1),
        mean_ms=round(statistics.fmean(ms), 1) if ms else 0.0,
    )


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 samples is the 198th value)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


# ---------------------------------------------------------------------------- report


def machine() -> dict[str, object]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def print_table(results: list[LevelResult]) -> None:
    head = f"{'corpus':<8} {'c':>3} {'requests':>8} {'errors':>6} {'req/s':>7} "
    head += f"{'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'CPU ms/req':>10} {'client':>7}"
    head += f" {'mean floor':>10}"
    print(head)
    cores = os.cpu_count() or 1
    for r in results:
        print(
            f"{r.corpus:<8} {r.concurrency:>3} {r.requests:>8} {r.errors:>6} {r.rps:>7.1f} "
            f"{r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.mean_ms:>8.1f} {r.server_cpu_ms:>10.2f} "
            f"{r.client_cpu_ms:>7.2f} {r.floor_mean_ms(cores):>10.1f}"
        )
    print(
        "mean floor: Little's law on this machine's cores — clients × (server + client CPU per "
        "request) ÷ cores; no scheduling gets the mean latency below it"
    )


def check_targets(results: list[LevelResult]) -> list[str]:
    """The service's goals on a 2-core machine; returns what was missed."""
    missed = []
    for corpus in sorted({r.corpus for r in results}):
        by_c = {r.concurrency: r for r in results if r.corpus == corpus}
        if any(r.errors for r in by_c.values()):
            missed.append(f"{corpus}: errors")
        if 1 in by_c and 8 in by_c and by_c[8].rps < 2 * by_c[1].rps:
            missed.append(f"{corpus}: c=8 throughput {by_c[8].rps} < 2 x c=1 ({by_c[1].rps})")
        if 32 in by_c and by_c[32].rps < 250:
            missed.append(f"{corpus}: c=32 throughput {by_c[32].rps} < 250 req/s")
        if 32 in by_c and by_c[32].p99_ms > 100:
            missed.append(f"{corpus}: c=32 p99 {by_c[32].p99_ms} ms > 100 ms")
    return missed


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", choices=["seeds", "bbc", "both"], default="both")
    p.add_argument("--levels", default="1,8,32", help="Concurrency levels (comma-separated).")
    p.add_argument("--requests", type=int, default=500, help="Requests per level.")
    p.add_argument("--seconds", type=float, default=30, help="Time limit per level.")
    p.add_argument("--warmup", type=int, default=20, help="Unmeasured requests per corpus.")
    p.add_argument("--endpoint", choices=["ask", "search"], default="ask")
    p.add_argument("--bbc-csv", type=Path, default=BBC_CSV)
    p.add_argument("--bbc-index", type=Path, default=OUT / "bbc-index", help="Reused if built.")
    p.add_argument("--seeds-index", type=Path, help="Index of seeds/ (default: a temp dir).")
    p.add_argument("--json", type=Path, help="Also write the results here.")
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="`rag serve` processes over the same index, clients spread evenly over them.",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="`rag serve --workers N`: processes of one server sharing its port.",
    )
    p.add_argument(
        "--answer-processes",
        default="",
        help="`rag serve --answer-processes N|auto` (default: the server's own default).",
    )
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    endpoint = f"/v1/{args.endpoint}"
    info = machine()
    print(f"machine: {info}", flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    corpora: list[tuple[str, Path, Path, list[str]]] = []
    if args.corpus in ("seeds", "both"):
        corpora.append(
            ("seeds", ROOT / "seeds", args.seeds_index or tmp / "seeds-index", SEED_QUESTIONS)
        )
    if args.corpus in ("bbc", "both"):
        bbc_seeds = OUT / "bbc-seeds"
        if not bbc_seeds.is_dir():
            n = write_bbc_seeds(args.bbc_csv, bbc_seeds)
            print(f"wrote {n} BBC articles to {bbc_seeds}", flush=True)
        corpora.append(("bbc", bbc_seeds, args.bbc_index, BBC_QUESTIONS))

    results: list[LevelResult] = []
    for name, seeds, index, questions in corpora:
        print(f"[{name}] indexing {seeds}", flush=True)
        ensure_index(seeds, index)
        servers = [
            Server(
                seeds, index, OUT / f"server-{name}-{k}.log", args.workers, args.answer_processes
            )
            for k in range(args.replicas)
        ]
        bases = [sv.base for sv in servers]
        try:
            ready = [sv.wait_ready() for sv in servers][-1]  # every replica is ready
            print(
                f"[{name}] serving {ready['documents']} documents, {ready['chunks']} chunks, "
                f"{ready.get('answer_processes', 0)} answer processes"
            )
            asyncio.run(run_level(bases, name, questions, 4, args.warmup, 60, endpoint))
            for c in levels:
                cpu0, own0 = sum(sv.cpu_seconds() for sv in servers), _own_cpu()
                r = asyncio.run(
                    run_level(bases, name, questions, c, args.requests, args.seconds, endpoint)
                )
                used = sum(sv.cpu_seconds() for sv in servers) - cpu0
                r.server_cpu_ms = round(used * 1000 / max(r.requests, 1), 2)
                r.client_cpu_ms = round((_own_cpu() - own0) * 1000 / max(r.requests, 1), 2)
                print(
                    f"[{name}] c={c}: {r.rps} req/s, p50 {r.p50_ms} ms, p99 {r.p99_ms} ms, "
                    f"{r.errors} errors ({r.requests} requests, "
                    f"server CPU {r.server_cpu_ms} ms/req)",
                    flush=True,
                )
                results.append(r)
        finally:
            for sv in servers:
                sv.stop()

    print()
    print(f"machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}")
    print_table(results)
    missed = check_targets(results)
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    if args.json:
        data = {"machine": info, "results": [asdict(r) for r in results], "missed": missed}
        args.json.write_text(json.dumps(data, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

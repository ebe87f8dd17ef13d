"""Embedding backends side by side: ingest throughput, query latency and retrieval quality.

    .venv/bin/python bench/embed_backends.py [--chunks 384] [--rounds 3] [--eval]

Speed (one process, one run): the same real chunks (BBC articles chunked at 128 tokens, with
their sentence spans) are encoded by raw PyTorch `SentenceTransformer.encode` and by
`Embedder.encode_chunks` on each backend (torch, onnx, onnx-int8; the latter two also pool the
per-sentence vectors), and short questions are embedded one at a time. Rounds interleave the
engines so a busy neighbour on the shared CPU slows all of them alike; figures are medians.
Wall-clock figures and process CPU time are both printed: on a machine shared with other jobs
the CPU time (run with RAG_THREADS=1, where it equals the wall time of an idle core) is the
stable measure of the work each engine does.

Quality: with `--eval` it runs, one after another, `rag eval` of the SQuAD dev sample with the
BBC distractors in hybrid mode for each backend (each builds a ~5k-chunk index) and prints
200-word recall, hit@1 and MRR from their JSON reports; without it, it prints the reports
already in bench/out/ (written by an earlier `--eval`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.index_build import machine  # noqa: E402
from rag.choices import EMBED_BACKENDS  # noqa: E402
from rag.embedding import Embedder  # noqa: E402
from rag.ingest.chunking import ChunkerConfig, chunk_with_sentences  # noqa: E402
from rag.ingest.loading import load_documents  # noqa: E402
from rag.settings import Settings  # noqa: E402

BACKENDS = EMBED_BACKENDS
SHARED = ROOT.parent / "shared" / "bench"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/bench")
OUT = ROOT / "bench" / "out"
QUESTIONS = [
    "Who chairs the Arab Parliament?",
    "what did the chancellor say about taxes",
    "which club signed the striker",
    "when is the general election expected",
    "who won the match at twickenham",
    "How many people were killed in the attack?",
    "What did the Iranian foreign minister say about the talks?",
    "Which company reported higher profits this quarter?",
]


def real_chunks(n: int, counter: object) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """The first n chunks of the BBC articles, with sentence spans relative to each chunk."""
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = csv.DictReader((SHARED / "bbc-news.csv").open(encoding="utf-8"))
        for i, row in enumerate(rows):
            if i >= max(20, n // 4):
                break
            (Path(tmp) / f"bbc-{i:04d}.txt").write_text(row["text"].strip() + "\n")
        docs, _ = load_documents(Path(tmp))
    config = ChunkerConfig(max_tokens=128, overlap=1)
    for d in docs:
        chunks, spans_list = chunk_with_sentences(d, counter, config)  # type: ignore[arg-type]
        for c, sp in zip(chunks, spans_list, strict=True):
            texts.append(c.text)
            spans.append([(s - c.start, e - c.start) for s, e in sp])
    return texts[:n], spans[:n]


CPU: dict[str, list[float]] = {}  # process CPU seconds per measurement, by label


def timed(fn: object, label: str = "") -> float:
    """Wall seconds of one call; its process CPU seconds go to CPU[label] (all threads: on a
    shared machine this is what the work costs, whatever the neighbours do)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()  # type: ignore[operator]
    wall = time.perf_counter() - t0
    CPU.setdefault(label, []).append(time.process_time() - c0)
    return wall


def speed(chunks: int, rounds: int) -> dict[str, dict[str, float]]:
    engines = {b: Embedder.load(Settings(embed_backend=b)) for b in BACKENDS}
    raw = engines["torch"].model
    texts, spans = real_chunks(chunks, engines["torch"].counter)
    ingest: dict[str, list[float]] = {k: [] for k in ("raw torch encode", *BACKENDS)}
    query: dict[str, list[float]] = {k: [] for k in ingest}
    for _ in range(rounds):
        raw_name = "raw torch encode"
        s = timed(lambda: raw.encode(texts, batch_size=32, show_progress_bar=False), raw_name)
        ingest[raw_name].append(len(texts) / s)
        for q in QUESTIONS:
            wall = timed(lambda q=q: raw.encode([q], show_progress_bar=False), raw_name + " q")
            query[raw_name].append(wall * 1000)
        for b, e in engines.items():
            s = timed(lambda e=e: e.encode_chunks(texts, spans, 32, progress=False), b)
            ingest[b].append(len(texts) / s)
            for q in QUESTIONS:
                query[b].append(timed(lambda e=e, q=q: e.encode_queries([q]), b + " q") * 1000)
    base = statistics.median(ingest["raw torch encode"])
    print(f"\n{len(texts)} chunks × {rounds} rounds (interleaved), batch 32; questions one by one")
    print(
        f"  {'engine':18s} {'chunks/s':>9s} {'vs raw':>7s} {'query p50':>10s} {'p95':>8s}"
        f" │ CPU: {'chunks/cpu-s':>12s} {'vs raw':>7s} {'query p50':>10s}"
    )
    cpu_base = len(texts) / statistics.median(CPU["raw torch encode"])
    out = {}
    for k in ingest:
        cps = statistics.median(ingest[k])
        q = sorted(query[k])
        p50, p95 = statistics.median(q), q[min(len(q) - 1, round(0.95 * (len(q) - 1)))]
        cpu_cps = len(texts) / statistics.median(CPU[k])
        cpu_q = statistics.median(CPU[k + " q"]) * 1000
        out[k] = {"chunks_per_s": cps, "query_p50_ms": p50, "cpu_chunks_per_s": cpu_cps}
        print(
            f"  {k:18s} {cps:9.1f} {cps / base:6.2f}× {p50:8.2f} ms {p95:6.2f} ms"
            f" │ {cpu_cps:17.1f} {cpu_cps / cpu_base:6.2f}× {cpu_q:7.2f} ms"
        )
    return out


def run_evals() -> None:
    for b in BACKENDS:
        print(f"running rag eval with RAG_EMBED_BACKEND={b} …", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rag.cli",
                "eval",
                str(SHARED / "squad2-dev-3articles.json"),
                "--distractors",
                str(SHARED / "bbc-news.csv"),
                "--mode",
                "hybrid",
                "--json",
                str(OUT / f"eval-{b}.json"),
            ],
            env={**os.environ, "RAG_EMBED_BACKEND": b, "PYTHONPATH": str(ROOT)},
            check=False,
            stdout=subprocess.DEVNULL,
        )


def quality() -> None:
    print("\nSQuAD dev sample + BBC distractors, hybrid (rag eval):")
    print(f"  {'engine':10s} {'recall@200w':>11s} {'hit@1':>7s} {'MRR':>7s}")
    for b in BACKENDS:
        path = OUT / f"eval-{b}.json"
        if not path.exists():
            print(f"  {b:10s} (no report: run with --eval)")
            continue
        m = json.loads(path.read_text())["files"][0]["modes"]["hybrid"]["metrics"]
        print(f"  {b:10s} {m['recall@200w']:11.3f} {m['hit@1']:7.3f} {m['mrr@10']:7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval", action="store_true", help="Run the three quality evals first.")
    args = ap.parse_args()
    print(f"machine: {machine()} (shared with other jobs); threads {Settings().cpu_threads()}")
    if args.eval:
        run_evals()
    speed(args.chunks, args.rounds)
    quality()


if __name__ == "__main__":
    main()

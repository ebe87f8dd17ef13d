"""How long a timeline takes (`Assistant.timeline`, GET /v1/timeline without HTTP): ms per query.

    .venv/bin/python bench/timeline_latency.py [--rounds 5] [--bbc-index DIR]

One process, one thread. Two corpora:

- the dated corpus (eval/dated/articles, indexed in a temporary folder): its 32 questions
  (eval/dated_qa.jsonl) and the names in them, each on its own `as_of`;
- with `--bbc-index` (an index of the 928 BBC articles, e.g. the one `rag eval … --distractors`
  leaves in bench/out/squad-eval/*/index), ten names the BBC set mentions often (`BBC_NAMES`;
  its text is lower-cased and undated, so most of its events are undated ones).

Each query's vector is computed once; every query is asked once to warm up (date tables,
sentence caches), then `--rounds` times. Prints p50 / p95 / max wall ms over all timings and the
mean number of events (dated + undated). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAG_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATED = ROOT / "eval" / "dated" / "articles"
QUESTIONS = ROOT / "eval" / "dated_qa.jsonl"
NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")
BBC_NAMES = (
    "tony blair", "gordon brown", "michael howard", "george bush", "arsenal", "chelsea",
    "microsoft", "yukos", "iraq election", "apple ipod",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from rag.embedding import Embedder, pin_threads
    from rag.index.indexing import build_index
    from rag.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bbc-index", type=Path)
    args = p.parse_args(argv)
    pin_threads(1)
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    queries = [(r["question"], r["as_of"]) for r in rows]
    names = {m.group(0) for r in rows for m in NAME.finditer(r["question"])}
    queries += [(n, None) for n in sorted(names)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(seeds_dir=DATED, index_dir=Path(tmp) / "index", threads=1)
        embedder = Embedder.load(settings)
        build_index(settings, embedder=embedder, progress=False)
        _report("dated corpus", _time(settings, embedder, queries, args.rounds))
    if args.bbc_index is not None:
        settings = Settings(index_dir=args.bbc_index, threads=1)
        _report("BBC", _time(settings, embedder, [(n, None) for n in BBC_NAMES], args.rounds))
    return 0


def _time(
    settings: Any, embedder: Any, queries: list[tuple[str, str | None]], rounds: int
) -> tuple[list[float], list[int]]:
    from rag.assistant import Assistant

    assistant = Assistant.open(settings=settings, embedder=embedder)
    asked = [
        (q, dt.date.fromisoformat(a) if a else None, assistant.embed([q])[0]) for q, a in queries
    ]
    found = [assistant.timeline(q, as_of=a, query_vector=v) for q, a, v in asked]
    events = [len(t.events) + len(t.undated) for t in found]
    times = []
    for _ in range(rounds):
        for q, a, v in asked:
            t0 = time.perf_counter()
            assistant.timeline(q, as_of=a, query_vector=v)
            times.append((time.perf_counter() - t0) * 1000)
    return times, events


def _report(corpus: str, result: tuple[list[float], list[int]]) -> None:
    times, events = result
    q = statistics.quantiles(times, n=20)
    print(
        f"{corpus}: {len(events)} queries × {len(times) // max(1, len(events))} rounds · "
        f"p50 {statistics.median(times):.1f} ms · p95 {q[18]:.1f} ms · max {max(times):.1f} ms · "
        f"{statistics.mean(events):.1f} events a timeline"
    )


if __name__ == "__main__":
    sys.exit(main())

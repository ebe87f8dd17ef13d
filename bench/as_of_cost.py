"""What `as_of` and the time preference add to a question: ms per question, with against without.

    .venv/bin/python bench/as_of_cost.py [--rounds 5] [--index DIR]

One process, one thread, the dated corpus (eval/dated/articles, indexed in a temporary folder
unless --index points at an index of it) and its 32 questions (eval/dated_qa.jsonl), each asked
on its own `as_of`. Each question's vector is computed once; then, interleaved question by
question so both see the same machine state, it is answered

- without: `retrieve` (filters only) + the extractive answer, as `Assistant.stream_ask` did
  before time was read;
- with: `time_scope` (the question parsed, as_of and period masks) + `retrieve` with them +
  `answer_in_time` (periods narrowed to sentences, the newest article first, earlier claims,
  stale future dates, relative days resolved and written into the text).

Prints the median process-CPU ms per question of each and the difference, and — because the
answers differ (other passages, so the reader reads other sentences) — the cost of the time
steps alone, timed on their own over the same questions: parsing, the scope, the newest-article
choice, and resolving days. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAG_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATED = ROOT / "eval" / "dated" / "articles"
QUESTIONS = ROOT / "eval" / "dated_qa.jsonl"
PARSE = "parse the question (time_intent)"


def main(argv: list[str] | None = None) -> int:
    from rag.assistant import Assistant
    from rag.embedding import Embedder, pin_threads
    from rag.index.indexing import build_index
    from rag.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--index", type=Path)
    args = p.parse_args(argv)
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index or Path(tmp) / "index"
        settings = Settings(seeds_dir=DATED, index_dir=index, threads=1)
        pin_threads(1)
        embedder = Embedder.load(settings)
        if args.index is None:
            build_index(settings, embedder=embedder, progress=False)
        assistant = Assistant.open(settings=settings, embedder=embedder)
        asked = [_query(assistant, r) for r in rows]
        for q in asked:  # warm-up: the reader loads, date tables and caches fill
            _with(assistant, *q)
            _without(assistant, *q)
        without, with_ = _interleaved(assistant, asked, args.rounds)
        steps = _steps(assistant, asked, args.rounds)
    _report(len(asked), args.rounds, without, with_, steps)
    return 0


def _query(assistant: Any, row: dict[str, Any]) -> tuple[Any, Any]:
    from rag.models import Query

    as_of = dt.date.fromisoformat(row["as_of"]) if row["as_of"] else None
    q = assistant._resolve(Query(question=row["question"], as_of=as_of))
    return q, assistant.embed([q.question])[0]


def _without(assistant: Any, q: Any, qvec: Any) -> None:
    from rag.retrieve.retrieval import retrieve

    s, snap = assistant.settings, assistant.snapshot
    passages = retrieve(
        snap, q.question, qvec, mode=q.mode, top_k=q.top_k, filters=q.filters, rrf_k=s.rrf_k,
        weights=(s.dense_weight, s.bm25_weight), mmr_lambda=s.mmr_lambda,
    )  # fmt: skip
    assistant._extractive(snap, q.question, qvec, passages)


def _with(assistant: Any, q: Any, qvec: Any) -> None:
    from rag.answer.question_steps import retrieve_in, scope_of
    from rag.temporal.time_answer import answer_in_time
    from rag.temporal.time_scope import InScope

    snap = assistant.snapshot
    scope = scope_of(assistant.settings, snap, q)
    passages = retrieve_in(assistant.settings, snap, q, qvec, scope)

    def answer(ps: list[Any]) -> Any:
        return assistant._extractive(snap, q.question, qvec, ps)

    answer_in_time(InScope(snap, scope, q.question, qvec, passages), answer)


def _cpu_ms(fn: Callable[[], Any]) -> float:
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1000


def _interleaved(
    assistant: Any, asked: list[tuple[Any, Any]], rounds: int
) -> tuple[list[float], list[float]]:
    """Per question, the median CPU ms without and with time over the rounds."""
    runs: dict[str, list[list[float]]] = {"without": [], "with": []}
    for r in range(rounds):
        for i, q in enumerate(asked):
            order = ("with", "without") if (r + i) % 2 else ("without", "with")
            for kind in order:
                fn = _with if kind == "with" else _without
                ms = _cpu_ms(lambda fn=fn, q=q: fn(assistant, *q))
                if len(runs[kind]) <= i:
                    runs[kind].append([])
                runs[kind][i].append(ms)
    return (
        [statistics.median(v) for v in runs["without"]],
        [statistics.median(v) for v in runs["with"]],
    )


def _steps(assistant: Any, asked: list[tuple[Any, Any]], rounds: int) -> dict[str, float]:
    """Mean wall ms per question of each time step on its own (best of the rounds)."""
    from rag.answer.answering import score_sentences
    from rag.answer.question_steps import retrieve_in
    from rag.temporal.time_answer import _newest_passages, with_days
    from rag.temporal.time_query import time_intent
    from rag.temporal.time_scope import dates_of, period_passages, time_scope

    snap = assistant.snapshot
    scopes = [time_scope(snap, q.question, q.as_of) for q, _ in asked]
    s = assistant.settings
    passages = [retrieve_in(s, snap, *a, sc) for a, sc in zip(asked, scopes, strict=True)]
    drafts = [
        assistant._extractive(snap, q.question, v, p)
        for (q, v), p in zip(asked, passages, strict=True)
    ]
    table = dates_of(snap)

    def newest(i: int) -> None:
        if scopes[i].intent.prefer_newest:
            scored = score_sentences(snap, asked[i][0].question, asked[i][1], passages[i])
            _newest_passages(table, scored, passages[i])

    def narrowed(i: int) -> None:
        if scopes[i].period is not None:
            period_passages(snap, passages[i], scopes[i].period)

    def parse(i: int) -> None:
        time_intent(asked[i][0].question, asked[i][0].as_of)

    def scope(i: int) -> None:
        time_scope(snap, asked[i][0].question, asked[i][0].as_of)

    steps: dict[str, Callable[[int], Any]] = {
        PARSE: parse,
        "scope: parse + as_of/period masks": scope,
        "period: sentences of the period": narrowed,
        "newest: score sentences + choose": newest,
        "relative days + answer text": lambda i: with_days(snap, drafts[i]),
    }
    out = {}
    for name, step in steps.items():
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for i in range(len(asked)):
                step(i)
            best = min(best, (time.perf_counter() - t0) * 1000 / len(asked))
        out[name] = best
    return out


def _report(
    n: int, rounds: int, without: list[float], with_: list[float], steps: dict[str, float]
) -> None:
    diff = [b - a for a, b in zip(without, with_, strict=True)]
    print(f"{n} questions (eval/dated_qa.jsonl, each on its as_of) × {rounds} rounds, 1 thread")
    print("process CPU ms per question (median over rounds; then over questions):")
    print(f"  without time: retrieve + answer          {statistics.median(without):7.2f}")
    print(f"  with time: scope + retrieve + answer     {statistics.median(with_):7.2f}")
    print(
        f"  difference, median {statistics.median(diff):+.2f}  mean {statistics.mean(diff):+.2f}"
        f"  (the answers differ: other passages, other sentences read)"
    )
    print("the time steps alone, wall ms per question (mean over questions, best round):")
    for name, ms in steps.items():
        print(f"  {name:40s} {ms:7.3f}")
    total = sum(ms for name, ms in steps.items() if name != PARSE)  # the scope parses
    print(f"  {'total (parsing counted once)':40s} {total:7.3f}   (target: ≤ 1 ms)")


if __name__ == "__main__":
    sys.exit(main())

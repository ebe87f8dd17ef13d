"""What the reader adds to a question: CPU ms per question, RAG_READER=model against rules.

    .venv/bin/python bench/reader_cost.py [--rounds 5] [--index DIR]

One process, one thread for the models (as one answer process serves), the seeds index (built
in a temporary folder unless --index is given). Every question of eval/qa.jsonl is asked
through `Assistant.ask` with the reader and with the rules, interleaved question by question
so both see the same machine state; prints the median process CPU ms per question of each, the
difference, and the median wall ms of the answer stage. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAG_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from rag.assistant import Assistant
    from rag.embedding import Embedder, pin_threads
    from rag.index.indexing import build_index
    from rag.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--index", type=Path)
    args = p.parse_args(argv)
    questions = [json.loads(x)["question"] for x in (ROOT / "eval" / "qa.jsonl").open()]
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index or Path(tmp) / "index"
        settings = Settings(seeds_dir=ROOT / "seeds", index_dir=index, threads=1)
        pin_threads(1)
        embedder = Embedder.load(settings)
        if args.index is None:
            build_index(settings, embedder=embedder, progress=False)
        runs = {r: Assistant.open(settings=settings.with_overrides(reader=r), embedder=embedder)
                for r in ("rules", "model")}
        for a in runs.values():  # warm-up: model loads and first calls
            a.ask(questions[0])
        cpu: dict[str, list[float]] = {r: [] for r in runs}
        wall: dict[str, list[float]] = {r: [] for r in runs}
        for _ in range(args.rounds):
            for q in questions:
                for r, a in runs.items():
                    t0 = time.process_time()
                    answer = a.ask(q)
                    cpu[r].append((time.process_time() - t0) * 1000)
                    wall[r].append(answer.timings["answer"])
    med = {r: statistics.median(v) for r, v in cpu.items()}
    for r in runs:
        print(f"{r:6} CPU per question p50 {med[r]:6.2f} ms · answer stage p50 "
              f"{statistics.median(wall[r]):6.2f} ms ({len(cpu[r])} questions)")
    print(f"reader adds {med['model'] - med['rules']:+.2f} ms CPU per question (p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

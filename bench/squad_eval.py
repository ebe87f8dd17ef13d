"""The SQuAD figures of docs/evaluation.md: SQuAD 2.0 (3 articles), alone and among BBC distractors.

Usage (from the repository root):

    .venv/bin/python bench/squad_eval.py [--bench ../shared/bench] [--out bench/out]
                                         [--corpus-dir DIR] [--limit N]

Runs `rag eval` in all three retrieval modes on both corpora (the distractor index embeds a few
thousand chunks: minutes on two cores) and writes one JSON report per corpus under --out.
--corpus-dir keeps the built indexes for the next run; without it they are temporary.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.evaluation.runner import EvalConfig, run_eval
from rag.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--bench", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "bench"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument("--corpus-dir", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)

    squad_file = args.bench / "squad2-dev-3articles.json"
    runs = {"squad": None, "squad+bbc": args.bench / "bbc-news.csv"}
    code = 0
    for name, distractors in runs.items():
        config = EvalConfig(
            files=(squad_file,),
            modes="dense,bm25,hybrid",
            distractors=distractors,
            corpus_dir=args.corpus_dir,
            limit=args.limit,
            calibrate_abstain=True,
            json_out=args.out / f"{name}.json",
        )
        status, _ = run_eval(config, load_settings())
        code = max(code, status)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Calibrate the reader's two thresholds through the whole pipeline, on validation articles.

Usage (from the repository root):

    .venv/bin/python bench/reader_calibrate.py [--model rag/reader/model] [--write]
        [--data ../shared/reader/squad-train.json.gz] [--distractors ../shared/bench/bbc-news.csv]
        [--corpus-dir bench/out/reader-cal] [--max-false-abstain 0.05] [--wrong-cost 2]
        [--rows FILE] [--windows N] [--context N]

The validation articles are the ones `rag reader train` held out (by title, from the training
file: never an evaluation article). Their questions, answerable and not, are asked through
`Assistant.ask` against an index of those articles plus the BBC distractors, with the reader's
thresholds lifted so every question yields its best span and margin. Then:

- `show` = the threshold at or above the margin-only abstention point that maximises
  right − --wrong-cost (2) × wrong shown short answers (right: SQuAD F1 ≥ .5; one shown on an
  unanswerable question is wrong);
- the margin-only abstention point (the highest threshold with at most --max-false-abstain,
  .05, false abstentions) is printed for information: answers abstain by the rules unless the
  reader is confident enough to show its span (rag/reader/answer.py says why).

Prints the trade-off table; --write stores `show` in the model's reader.json (its sha256 covers
the ONNX file only, so the model stays verified).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def validation_file(data: Path, n_val: int, target: Path) -> int:
    """Write the validation articles of `data` as a SQuAD file; returns its question count."""
    from rag.reader.data import load_articles, split_by_title

    _, val = split_by_title(load_articles(data), n_val)
    titles = {a.title for a in val}
    with gzip.open(data, "rt", encoding="utf-8") if data.suffix == ".gz" else open(data) as fh:
        raw = json.load(fh)
    raw["data"] = [a for a in raw["data"] if a["title"] in titles]
    target.write_text(json.dumps(raw))
    return sum(len(p["qas"]) for a in raw["data"] for p in a["paragraphs"])


def ask_all(squad: Path, model: Path, args: argparse.Namespace) -> list[dict]:
    """Every question's best margin, shown text and F1 with the thresholds lifted."""
    from rich.console import Console

    from rag.assistant import Assistant
    from rag.embedding import Embedder
    from rag.evaluation.corpora import open_eval_set
    from rag.evaluation.metrics import squad_f1
    from rag.evaluation.runner import EvalConfig
    from rag.settings import load_settings

    settings = load_settings(reader="model", reader_model=model, reader_windows=args.windows,
                             reader_context=args.context)
    embedder = Embedder.load(settings)
    config = EvalConfig(distractors=args.distractors, corpus_dir=args.corpus_dir)
    rows = []
    with open_eval_set(squad, config, settings, embedder, Console(stderr=True)) as (es, fs):
        assistant = Assistant.open(settings=fs, embedder=embedder)
        reader = assistant.reader()
        reader.show_threshold = -math.inf  # every question shows its best span and margin
        for q in es.questions:
            a = assistant.ask(q.question)
            short = a.short_answer
            rows.append({
                "question": q.question,
                "short": short.text if short else None,
                "answerable": q.answerable and bool(q.answers),
                "margin": short.score if short else -math.inf,
                "f1": squad_f1(short.text, q.answers) if short and q.answers else 0.0,
                "ms": a.timings.get("total", 0.0),
            })
    return rows


def trade_offs(rows: list[dict], grid: np.ndarray) -> list[dict]:
    m = np.array([r["margin"] for r in rows])
    f = np.array([r["f1"] for r in rows])
    a = np.array([r["answerable"] for r in rows])
    out = []
    for t in grid:
        kept = m >= t
        shown_right = np.sum(kept & a & (f >= 0.5))
        out.append({
            "t": float(t),
            "abstain_recall": float(np.mean(~kept[~a])) if (~a).any() else None,
            "false_abstain": float(np.mean(~kept[a])),
            "shown_precision": float(shown_right / kept.sum()) if kept.any() else None,
            "coverage": float(np.mean(kept[a])),
            "short_f1": float(np.mean(np.where(kept[a], f[a], 0.0))),
        })
    return out


def choose(table: list[dict], max_false: float, wrong_cost: float) -> dict[str, float]:
    """`abstain`: the highest threshold with at most `max_false` false abstentions. `show`: the
    threshold at or above it that maximises right − wrong_cost × wrong shown short answers
    (a wrong short answer on top of the page is worse than none)."""
    abstain = max((r["t"] for r in table if r["false_abstain"] <= max_false),
                  default=table[0]["t"])

    def utility(r: dict) -> float:
        p = r["shown_precision"] or 0.0
        return r["coverage"] * (p - wrong_cost * (1 - p))

    show = max((r for r in table if r["t"] >= abstain), key=utility)["t"]
    return {"abstain": abstain, "show": show}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", type=Path, default=ROOT / "rag" / "reader" / "model")
    p.add_argument("--data", type=Path, default=SHARED / "reader" / "squad-train.json.gz")
    p.add_argument("--distractors", type=Path, default=SHARED / "bench" / "bbc-news.csv")
    p.add_argument("--corpus-dir", type=Path, default=None)
    p.add_argument("--val-articles", type=int, default=8)
    p.add_argument("--windows", type=int, default=None, help="RAG_READER_WINDOWS to use.")
    p.add_argument("--context", type=int, default=None, help="RAG_READER_CONTEXT to use.")
    p.add_argument("--rows", type=Path, help="Write every question's margin and F1 here.")
    p.add_argument("--from-rows", type=Path, help="Choose from rows saved by --rows.")
    p.add_argument("--max-false-abstain", type=float, default=0.05)
    p.add_argument("--wrong-cost", type=float, default=2.0,
                   help="How many right short answers one wrong one undoes.")
    p.add_argument("--write", action="store_true", help="Store the thresholds in reader.json.")
    args = p.parse_args(argv)
    if args.from_rows:
        rows = json.loads(args.from_rows.read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            squad = Path(tmp) / "reader-validation.json"
            n = validation_file(args.data, args.val_articles, squad)
            print(f"{n} validation questions", file=sys.stderr)
            rows = ask_all(squad, args.model, args)
    if args.rows:
        args.rows.write_text(json.dumps(rows))
    grid = np.round(np.arange(-8.0, 10.01, 0.25), 2)
    table = trade_offs(rows, grid)
    chosen = choose(table, args.max_false_abstain, args.wrong_cost)
    print(f"{'t':>6} {'abst R':>7} {'false ab':>8} {'shown P':>8} {'coverage':>8} {'F1':>6}")
    for r in table:
        mark = "  <- abstain" if r["t"] == chosen["abstain"] else ""
        mark += "  <- show" if r["t"] == chosen["show"] else ""
        print(f"{r['t']:6.2f} {r['abstain_recall'] or 0:7.3f} {r['false_abstain']:8.3f} "
              f"{r['shown_precision'] or 0:8.3f} {r['coverage']:8.3f} {r['short_f1']:6.3f}{mark}")
    print(json.dumps({"chosen": chosen, "questions": len(rows),
                      "p50_ms": float(np.median([r["ms"] for r in rows]))}))
    if args.write:
        from rag.reader.export import META_FILE, write_meta

        meta = json.loads((args.model / META_FILE).read_text())
        at = {r["t"]: r for r in table}
        meta.update(thresholds={"show": chosen["show"]}, thresholds_from=(
            f"bench/reader_calibrate.py: {len(rows)} questions of the {args.val_articles} "
            "validation articles among the BBC distractors, whole pipeline"),
            calibration={"margin-only abstention (not used)": at[chosen["abstain"]],
                         "show": at[chosen["show"]]})
        write_meta(args.model, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

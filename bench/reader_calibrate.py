"""Calibrate the reader's show decision through the whole pipeline, on validation articles.

Usage (from the repository root):

    .venv/bin/python bench/reader_calibrate.py [--model rag/reader/model] [--write]
        [--data ../shared/reader/squad-train.json.gz] [--distractors ../shared/bench/bbc-news.csv]
        [--corpus-dir bench/out/reader-cal] [--wrong-cost 2] [--max-false-abstain 0.05]
        [--rows FILE] [--from-rows FILE] [--windows N]

The validation articles are the ones `rag reader train` held out (by title, from the training
file: never an evaluation article). Their questions, answerable and not, are read as an answer
reads them (`bench/reader_rows.py`: hybrid retrieval among the BBC distractors, the best
`RAG_READER_WINDOWS` sentences). Then:

- the show decision (`rag/reader/decision.py`) is fitted on every question's best span: a
  logistic model of P(right) — right: SQuAD F1 ≥ .5; a span on an unanswerable question is
  wrong — over the span's features; its threshold maximises right − --wrong-cost (2) × wrong
  shown short answers ("a wrong short answer is worse than none"). 8-fold cross-validation by
  article prints what to expect on articles the fit has not seen;
- the margin-only table (the decision before) and the margin-only abstention point (the highest
  margin with at most --max-false-abstain false abstentions) are printed for comparison:
  answers abstain by the rules unless the reader's margin is above 0 (rag/reader/answer.py).

--write stores the decision in the model's reader.json (its sha256 covers the ONNX file only, so
the model stays verified).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.reader_rows import SHARED, rows_of, validation_file  # noqa: E402


def shown_stats(shown: np.ndarray, right: np.ndarray, answerable: np.ndarray,
                f1: np.ndarray) -> dict:
    n = int(shown.sum())
    return {"shown_precision": round(float((shown & right).sum() / n), 4) if n else None,
            "coverage": round(float(shown[answerable].mean()), 4),
            "short_f1": round(float(np.where(shown, f1, 0.0)[answerable].mean()), 4),
            "right": int((shown & right).sum()), "wrong": int((shown & ~right).sum())}


def cross_validated(rows: list[dict], feats: list[dict], right: np.ndarray, folds: int = 8,
                    wrong_cost: float = 2.0) -> np.ndarray:
    """Each question's shown/not, from a decision fitted on the other articles' questions."""
    from rag.reader.decision import choose_threshold, fit

    groups = sorted({(r["gold_docs"] or [r["id"]])[0] for r in rows})
    fold = np.array([groups.index((r["gold_docs"] or [r["id"]])[0]) % folds for r in rows])
    has = np.array([f is not None for f in feats])
    shown = np.zeros(len(rows), bool)
    for k in range(folds):
        train, test = has & (fold != k), has & (fold == k)
        model = fit([feats[i] for i in np.nonzero(train)[0]], right[train])
        probs = [model.probability(feats[i]) for i in np.nonzero(train)[0]]
        t = choose_threshold(probs, right[train], wrong_cost)
        for i in np.nonzero(test)[0]:
            shown[i] = model.probability(feats[i]) >= t
    return shown


def calibrate(rows: list[dict], wrong_cost: float, max_false: float):
    """(decision fitted on all rows, report dict)."""
    from rag.reader.decision import choose_threshold, fit

    answerable = np.array([r["answerable"] for r in rows])
    f1 = np.array([r["f1"] for r in rows])
    right = answerable & (f1 >= 0.5)
    feats = [r["features"] for r in rows]
    has = np.array([f is not None for f in feats])
    idx = np.nonzero(has)[0]
    model = fit([feats[i] for i in idx], right[idx])
    probs = np.zeros(len(rows))
    probs[idx] = [model.probability(feats[i]) for i in idx]
    threshold = choose_threshold(probs[idx], right[idx], wrong_cost)
    model = dataclasses.replace(model, threshold=threshold)
    margin = np.array([f["margin"] if f else -np.inf for f in feats])
    by_margin = {}
    for t in np.round(np.arange(-2.0, 10.01, 0.5), 2):
        by_margin[float(t)] = shown_stats(margin >= t, right, answerable, f1)
    best_margin = max(by_margin, key=lambda t: by_margin[t]["right"]
                      - wrong_cost * by_margin[t]["wrong"])
    grid = np.round(np.arange(-8.0, 10.01, 0.25), 2)
    abstain = max((float(t) for t in grid if np.mean(margin[answerable] < t) <= max_false),
                  default=float(grid[0]))
    report = {
        "questions": len(rows), "answerable": int(answerable.sum()),
        "decision (fitted on all)": shown_stats(probs >= threshold, right, answerable, f1),
        "decision (8-fold by article)": shown_stats(
            cross_validated(rows, feats, right, wrong_cost=wrong_cost), right, answerable, f1),
        f"margin ≥ {best_margin} (the best margin threshold)": by_margin[best_margin],
        "every span shown": shown_stats(has, right, answerable, f1),
        "margin-only abstention (not used)": {
            "margin": abstain, "recall": round(float(np.mean(margin[~answerable] < abstain)), 4)
            if (~answerable).any() else None},
    }
    return model, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", type=Path, default=ROOT / "rag" / "reader" / "model")
    p.add_argument("--data", type=Path, default=SHARED / "reader" / "squad-train.json.gz")
    p.add_argument("--distractors", type=Path, default=SHARED / "bench" / "bbc-news.csv")
    p.add_argument("--corpus-dir", type=Path, default=ROOT / "bench" / "out" / "reader-cal")
    p.add_argument("--val-articles", type=int, default=8)
    p.add_argument("--windows", type=int, default=None, help="RAG_READER_WINDOWS to use.")
    p.add_argument("--rows", type=Path, help="Also write the questions' rows here.")
    p.add_argument("--from-rows", type=Path, help="Calibrate on rows saved by --rows.")
    p.add_argument("--max-false-abstain", type=float, default=0.05)
    p.add_argument("--wrong-cost", type=float, default=2.0,
                   help="How many right short answers one wrong one undoes.")
    p.add_argument("--write", action="store_true", help="Store the decision in reader.json.")
    args = p.parse_args(argv)
    if args.from_rows:
        rows = json.loads(args.from_rows.read_text())
    else:
        import os

        os.environ["RAG_READER_MODEL"] = str(args.model)
        with tempfile.TemporaryDirectory() as tmp:
            squad = Path(tmp) / "reader-validation.json"
            print(f"{validation_file(args.data, args.val_articles, squad)} validation "
                  "questions", file=sys.stderr)
            rows = rows_of(squad, args)
    if args.rows:
        args.rows.write_text(json.dumps(rows))
    model, report = calibrate(rows, args.wrong_cost, args.max_false_abstain)
    print(json.dumps({"report": report, "decision": model.to_meta()}, indent=1))
    if args.write:
        from rag.reader.export import META_FILE, write_meta

        meta = json.loads((args.model / META_FILE).read_text())
        meta.update(decision=model.to_meta(), decision_from=(
            f"bench/reader_calibrate.py: {len(rows)} questions of the {args.val_articles} "
            "validation articles among the BBC distractors, whole pipeline"),
            calibration=report)
        meta.pop("thresholds_from", None)
        write_meta(args.model, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

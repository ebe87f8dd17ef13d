"""How the reader and the rules share the decision to abstain, counted on logged rows.

Reads the rows `bench/reader_rows.py` writes (one per question: the rules' verdict, the
reader's best span and its decision features) and prints, for each way of combining them, the
share of unanswerable questions refused (recall) and of answerable ones refused (false).

Usage (from the repository root):

    .venv/bin/python bench/reader_rows.py validation --out bench/out/rows-validation.json
    .venv/bin/python bench/reader_abstain.py bench/out/rows-validation.json [more rows files]

Fit choices on the validation rows only; rows of an evaluation set (SQuAD dev, the seeds) are
for measuring what was chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Row = dict
Policy = Callable[[Row], bool]


def policies(probability: Callable[[Row], float], threshold: float) -> dict[str, Policy]:
    def margin(r: Row) -> float:
        return max((w["margin"] for w in r["windows"]), default=float("-inf"))

    return {
        "rules unless margin > 0 (until Dec 2026)": lambda r: r["rules_abstained"]
        and margin(r) <= 0,
        "rules unless the span is shown": lambda r: r["rules_abstained"]
        and probability(r) < threshold,
        "missing term unless shown, else margin > 0 (default)": lambda r: (
            r.get("rules_missing", False) and probability(r) < threshold
        ) or (r["rules_abstained"] and margin(r) <= 0),
        "rules alone": lambda r: r["rules_abstained"],
        "margin < -4.5 alone": lambda r: margin(r) < -4.5,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("rows", nargs="+", type=Path)
    p.add_argument("--model", type=Path, help="the reader whose decision judges the rows "
                   "(default: the shipped one; the rows must come from the same model)")
    args = p.parse_args(argv)

    from rag.reader.runtime import MODEL_DIR, get_reader

    decision = get_reader(args.model or MODEL_DIR).show_model
    if decision is None:
        print("the shipped reader has no show decision", file=sys.stderr)
        return 1

    def probability(r: Row) -> float:
        return decision.probability(r["features"]) if r["features"] else 0.0

    for path in args.rows:
        rows = json.loads(path.read_text())
        answerable = [r for r in rows if r["answerable"]]
        unanswerable = [r for r in rows if not r["answerable"]]
        print(f"{path}: {len(answerable)} answerable, {len(unanswerable)} unanswerable")
        for name, refuses in policies(probability, decision.threshold).items():
            recall = sum(map(refuses, unanswerable)) / max(1, len(unanswerable))
            false = sum(map(refuses, answerable)) / max(1, len(answerable))
            print(f"  {name:<42} recall {recall:.3f}  false {false:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How far abstention on the reader's no-answer margin can go, whatever its threshold.

Reads the rows `bench/reader_rows.py` writes (log them with `--windows 6` to see what reading
more sentences would give) and prints, for the first k sentences read (k = 1, 2, 3, 4, 6):

- the share of answerable questions whose gold answer lies in one of those sentences (what the
  reader can find at all; the rest it rightly reads as "no answer here");
- the share of unanswerable questions refused by the best margin below a threshold set *on the
  same rows* so that 2, 5 or 10 % of the answerable questions are refused — an oracle threshold,
  an upper bound for any margin threshold chosen elsewhere;
- the same bound counted against only the answerable questions whose answer was read (as if
  retrieval never missed).

Usage (from the repository root):

    .venv/bin/python bench/reader_rows.py validation --windows 6 --out bench/out/rows-val6.json
    .venv/bin/python bench/reader_ceiling.py bench/out/rows-val6.json [more rows files]

Nothing is fitted here: it measures a bound, so running it on an evaluation set's rows is not
tuning.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

Row = dict
FALSE_RATES = (0.02, 0.05, 0.10)


def answer_read(row: Row, k: int) -> bool:
    """Whether a gold answer occurs (case-folded) in one of the first `k` sentences read."""
    return any(a.lower() in w["sentence"].lower()
               for w in row["windows"][:k] for a in row["answers"])


def best_margin(row: Row, k: int) -> float:
    return max((w["margin"] for w in row["windows"][:k]), default=float("-inf"))


def oracle_recall(answerable: Sequence[Row], unanswerable: Sequence[Row], k: int,
                  false_rate: float) -> float:
    """Unanswerable questions refused at the margin threshold that refuses `false_rate` of
    `answerable` (the threshold is the margin at that quantile)."""
    if not answerable or not unanswerable:
        return float("nan")
    margins = sorted(best_margin(r, k) for r in answerable)
    threshold = margins[min(len(margins) - 1, int(false_rate * len(margins)))]
    return sum(best_margin(r, k) < threshold for r in unanswerable) / len(unanswerable)


def report(path: Path) -> None:
    rows = json.loads(path.read_text())
    ans = [r for r in rows if r["answerable"]]
    un = [r for r in rows if not r["answerable"]]
    read = max((len(r["windows"]) for r in rows), default=0)
    print(f"{path.name}: {len(ans)} answerable, {len(un)} unanswerable, up to {read} sentences")
    head = "  ".join(f"@{f:.2f}" for f in FALSE_RATES)
    print(f"  {'k':>2}  {'answer read':>11}  oracle recall {head}   (answer read only) {head}")
    for k in (1, 2, 3, 4, 6):
        if k > read:
            break
        found = [r for r in ans if answer_read(r, k)]
        every = "  ".join(f"{oracle_recall(ans, un, k, f):.3f}" for f in FALSE_RATES)
        only = "  ".join(f"{oracle_recall(found, un, k, f):.3f}" for f in FALSE_RATES)
        print(f"  {k:>2}  {len(found) / max(1, len(ans)):>11.3f}  {'':13} {every}   "
              f"{'':17} {only}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", type=Path, nargs="+", help="rows files of bench/reader_rows.py")
    for path in p.parse_args().rows:
        report(path)


if __name__ == "__main__":
    main()

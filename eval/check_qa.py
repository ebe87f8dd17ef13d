"""Validate eval/qa.jsonl against the articles in seeds/.

Usage (from the repository root): python3 eval/check_qa.py [path/to/qa.jsonl]

Checks field names and types, unique ids, that doc_ids exist in seeds/, that every answer
alias of an answerable question occurs in at least one of its listed documents (matched as
`rag eval` matches answers: `rag.evaluation.metrics.occurs`),
that unanswerable questions have no answers, and that the tag counts meet the minimums.
Prints the count per tag; exits 1 with one line per problem when anything is wrong.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: `rag` is importable
    sys.path.insert(0, str(ROOT))

# The eval's own matching, so an alias this checker accepts is one `rag eval` can find.
from rag.evaluation.metrics import occurs  # noqa: E402

DEFAULT_QA = ROOT / "eval" / "qa.jsonl"
SEEDS = ROOT / "seeds"

FIELDS: dict[str, type] = {
    "id": str,
    "question": str,
    "answers": list,
    "doc_ids": list,
    "answerable": bool,
    "tags": list,
}
TAGS = ("factoid", "paraphrase", "multi-doc", "unanswerable")
MIN_TOTAL = 48
MIN_PER_TAG = {"unanswerable": 10, "paraphrase": 10, "multi-doc": 4}
ID_RE = re.compile(r"q\d{2,}")


def load_seeds(seeds_dir: Path) -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8") for p in sorted(seeds_dir.iterdir()) if p.is_file()
    }


def check_record(rec: Any, where: str, seeds: dict[str, str]) -> list[str]:
    if not isinstance(rec, dict):
        return [f"{where}: not a JSON object"]
    problems: list[str] = []
    keys = set(rec)
    if missing := sorted(set(FIELDS) - keys):
        problems.append(f"{where}: missing field(s) {missing}")
    if extra := sorted(keys - set(FIELDS)):
        problems.append(f"{where}: unexpected field(s) {extra}")
    for name, typ in FIELDS.items():
        if name in rec and not isinstance(rec[name], typ):
            problems.append(f"{where}: {name!r} must be {typ.__name__}")
    if problems:
        return problems

    if not ID_RE.fullmatch(rec["id"]):
        problems.append(f"{where}: id {rec['id']!r} is not of the form q01, q02, ...")
    if not rec["question"].strip():
        problems.append(f"{where}: empty question")
    for name in ("answers", "doc_ids", "tags"):
        if not all(isinstance(x, str) and x.strip() for x in rec[name]):
            problems.append(f"{where}: {name!r} must be a list of non-empty strings")
    if problems:
        return problems

    tags: list[str] = rec["tags"]
    bad_tags = [t for t in tags if t not in TAGS]
    if bad_tags or not tags or len(set(tags)) != len(tags):
        problems.append(f"{where}: tags {tags} must be a non-empty, unique subset of {TAGS}")
    unknown = [d for d in rec["doc_ids"] if d not in seeds]
    if unknown:
        problems.append(f"{where}: doc_ids not in seeds/: {unknown}")
    if len(set(rec["doc_ids"])) != len(rec["doc_ids"]):
        problems.append(f"{where}: duplicate doc_ids")

    if rec["answerable"]:
        if "unanswerable" in tags:
            problems.append(f"{where}: answerable question tagged 'unanswerable'")
        if not rec["answers"]:
            problems.append(f"{where}: answerable question with no answers")
        if not rec["doc_ids"]:
            problems.append(f"{where}: answerable question with no doc_ids")
        if "multi-doc" in tags and len(rec["doc_ids"]) < 2:
            problems.append(f"{where}: multi-doc question needs at least two doc_ids")
        texts = [seeds[d] for d in rec["doc_ids"] if d in seeds]
        for alias in rec["answers"]:
            if not any(occurs(alias, t) for t in texts):
                problems.append(f"{where}: answer {alias!r} not found in {rec['doc_ids']}")
    else:
        if "unanswerable" not in tags:
            problems.append(f"{where}: unanswerable question must be tagged 'unanswerable'")
        if rec["answers"] != []:
            problems.append(f"{where}: unanswerable question must have answers == []")
    return problems


def main(argv: list[str]) -> int:
    qa_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_QA
    if not qa_path.is_file():
        print(f"ERROR: {qa_path} not found", file=sys.stderr)
        return 1
    if not SEEDS.is_dir():
        print(f"ERROR: seeds directory {SEEDS} not found", file=sys.stderr)
        return 1
    seeds = load_seeds(SEEDS)

    problems: list[str] = []
    seen: dict[str, int] = {}
    tag_counts: Counter[str] = Counter()
    total = 0
    lines = qa_path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, 1):
        where = f"{qa_path.name}:{lineno}"
        if not line.strip():
            problems.append(f"{where}: blank line")
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: invalid JSON ({exc})")
            continue
        total += 1
        if isinstance(rec, dict) and isinstance(rec.get("id"), str):
            where = f"{where} [{rec['id']}]"
            if rec["id"] in seen:
                problems.append(f"{where}: duplicate id (first on line {seen[rec['id']]})")
            else:
                seen[rec["id"]] = lineno
        record_problems = check_record(rec, where, seeds)
        problems.extend(record_problems)
        if not record_problems:
            tag_counts.update(rec["tags"])

    print(f"questions: {total}")
    for tag in TAGS:
        print(f"  {tag}: {tag_counts[tag]}")

    if total < MIN_TOTAL:
        problems.append(f"only {total} questions; need at least {MIN_TOTAL}")
    for tag, minimum in MIN_PER_TAG.items():
        if tag_counts[tag] < minimum:
            problems.append(f"only {tag_counts[tag]} {tag!r} questions; need at least {minimum}")

    if problems:
        print(f"FAILED: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Validate eval/qa.jsonl against the articles in seeds/, or eval/dated_qa.jsonl against
eval/dated/articles/.

Usage (from the repository root): python3 eval/check_qa.py [path/to/qa.jsonl]

Checks field names and types, unique ids, that doc_ids exist in the articles folder, that every
answer alias of an answerable question occurs in at least one of its listed documents (matched
as `rag eval` matches answers: `rag.evaluation.metrics.occurs`),
that unanswerable questions have no answers, and that the tag counts meet the minimums.
Prints the count per tag; exits 1 with one line per problem when anything is wrong.

A file whose first question has an `as_of` field is a dated set (`DATED`: ids d01, …, its own
tags, `as_of` and `period` fields, the articles of eval/dated/articles): there an answer of a
`relative-day` question may instead be the day a relative expression of a listed document
names ("on Thursday" → 2023-11-09), counted from a listed document's date, and the evidence of
an `as_of` question must have been published by then.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

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


class Profile(NamedTuple):
    """What a question file is checked against (a NamedTuple: this file is also loaded by path,
    outside `sys.modules`, where a dataclass cannot resolve its annotations)."""

    seeds: Path
    fields: dict[str, type | tuple[type, ...]]
    tags: tuple[str, ...]
    min_total: int
    min_per_tag: dict[str, int]
    id_re: re.Pattern[str]


DEFAULT = Profile(SEEDS, FIELDS, TAGS, MIN_TOTAL, MIN_PER_TAG, ID_RE)
DATED_TAGS = ("current", "period", "relative-day", "copies", "factoid", "unanswerable")
DATED = Profile(
    ROOT / "eval" / "dated" / "articles",
    {**FIELDS, "as_of": (str, type(None)), "period": (dict, type(None))},
    DATED_TAGS,
    25,
    dict.fromkeys(DATED_TAGS, 3),
    re.compile(r"d\d{2,}"),
)


def load_seeds(seeds_dir: Path) -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8") for p in sorted(seeds_dir.iterdir()) if p.is_file()
    }


def check_record(
    rec: Any, where: str, seeds: dict[str, str], profile: Profile = DEFAULT
) -> list[str]:
    if not isinstance(rec, dict):
        return [f"{where}: not a JSON object"]
    problems: list[str] = []
    keys = set(rec)
    fields = profile.fields
    if missing := sorted(set(fields) - keys):
        problems.append(f"{where}: missing field(s) {missing}")
    if extra := sorted(keys - set(fields)):
        problems.append(f"{where}: unexpected field(s) {extra}")
    for name, typ in fields.items():
        if name in rec and not isinstance(rec[name], typ):
            problems.append(f"{where}: {name!r} must be {_type_name(typ)}")
    if problems:
        return problems

    if not profile.id_re.fullmatch(rec["id"]):
        problems.append(f"{where}: id {rec['id']!r} is not of the form {profile.id_re.pattern}")
    if not rec["question"].strip():
        problems.append(f"{where}: empty question")
    for name in ("answers", "doc_ids", "tags"):
        if not all(isinstance(x, str) and x.strip() for x in rec[name]):
            problems.append(f"{where}: {name!r} must be a list of non-empty strings")
    if problems:
        return problems

    tags: list[str] = rec["tags"]
    bad_tags = [t for t in tags if t not in profile.tags]
    if bad_tags or not tags or len(set(tags)) != len(tags):
        problems.append(
            f"{where}: tags {tags} must be a non-empty, unique subset of {profile.tags}"
        )
    unknown = [d for d in rec["doc_ids"] if d not in seeds]
    if unknown:
        problems.append(f"{where}: doc_ids not in {profile.seeds.name}/: {unknown}")
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
        problems += _answers_found(rec, where, seeds, profile)
    else:
        if "unanswerable" not in tags:
            problems.append(f"{where}: unanswerable question must be tagged 'unanswerable'")
        if rec["answers"] != []:
            problems.append(f"{where}: unanswerable question must have answers == []")
    if profile is DATED:
        problems += _check_time(rec, where)
    return problems


def _answers_found(
    rec: dict[str, Any], where: str, seeds: dict[str, str], profile: Profile
) -> list[str]:
    """Each answer alias occurs in a listed document (or, for a relative-day question, is the
    day one of its relative expressions names)."""
    texts = [seeds[d] for d in rec["doc_ids"] if d in seeds]
    days = _resolved_days(rec, profile) if "relative-day" in rec["tags"] else set()
    return [
        f"{where}: answer {alias!r} not found in {rec['doc_ids']}"
        for alias in rec["answers"]
        if not any(occurs(alias, t) for t in texts) and _day(alias) not in days
    ]


def _type_name(typ: type | tuple[type, ...]) -> str:
    types = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _day(text: str) -> str | None:
    """An answer written as a date ("November 9, 2023", "2023-11-09") as YYYY-MM-DD."""
    from rag.ingest.article_dates import parse_date

    return parse_date(text)


def _dates(profile: Profile) -> dict[str, str | None]:
    """Each article's date as `rag index` finds it (loaded once)."""
    if not _DATES:
        from rag.ingest.loading import load_documents

        _DATES.update({d.id: d.date for d in load_documents(profile.seeds)[0]})
    return _DATES


_DATES: dict[str, str | None] = {}


def _resolved_days(rec: dict[str, Any], profile: Profile) -> set[str | None]:
    """The days the relative expressions of the listed documents name, each counted from the
    date of any listed document (a copy's days count from its story's first publication)."""
    from rag.temporal.relative_dates import resolve_relative

    dates = _dates(profile)
    anchors = {dates.get(d) for d in rec["doc_ids"]} - {None}
    texts = [(profile.seeds / d).read_text(encoding="utf-8") for d in rec["doc_ids"]]
    return {iso for t in texts for day in anchors for _, _, iso in resolve_relative(t, day)}


def _check_time(rec: dict[str, Any], where: str) -> list[str]:
    """`as_of` an ISO date after its evidence's dates; `period` {since, until} in order."""
    problems = []
    as_of, period = rec["as_of"], rec["period"]
    if as_of is not None:
        if _day(as_of) != as_of:
            problems.append(f"{where}: as_of {as_of!r} is not a YYYY-MM-DD date")
        late = [d for d in rec["doc_ids"] if (_dates(DATED).get(d) or "") > as_of]
        if late:
            problems.append(f"{where}: doc_ids published after as_of {as_of}: {late}")
    if period is not None:
        since, until = period.get("since"), period.get("until")
        if set(period) != {"since", "until"} or not (since or until):
            problems.append(f"{where}: period must be {{since, until}} with at least one set")
        elif any(d is not None and _day(d) != d for d in (since, until)):
            problems.append(f"{where}: period dates must be YYYY-MM-DD or null")
        elif since and until and since > until:
            problems.append(f"{where}: period since {since} is after until {until}")
    return problems


def _profile(qa_path: Path) -> Profile:
    """DATED when the file's first question has an `as_of` field, else DEFAULT."""
    for line in qa_path.read_text(encoding="utf-8").splitlines():
        try:
            first = json.loads(line)
        except json.JSONDecodeError:
            return DEFAULT
        return DATED if isinstance(first, dict) and "as_of" in first else DEFAULT
    return DEFAULT


def main(argv: list[str]) -> int:
    qa_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_QA
    if not qa_path.is_file():
        print(f"ERROR: {qa_path} not found", file=sys.stderr)
        return 1
    profile = _profile(qa_path)
    if not profile.seeds.is_dir():
        print(f"ERROR: articles directory {profile.seeds} not found", file=sys.stderr)
        return 1
    seeds = load_seeds(profile.seeds)

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
        record_problems = check_record(rec, where, seeds, profile)
        problems.extend(record_problems)
        if not record_problems:
            tag_counts.update(rec["tags"])

    print(f"questions: {total}")
    for tag in profile.tags:
        print(f"  {tag}: {tag_counts[tag]}")

    if total < profile.min_total:
        problems.append(f"only {total} questions; need at least {profile.min_total}")
    for tag, minimum in profile.min_per_tag.items():
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

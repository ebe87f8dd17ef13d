"""`rag eval`'s summaries of parts of a question set: by tag (`by_tag`) and by the kind of
question (`by_kind`: who, when, where, how many, what/which, other), beside the metrics of the
whole set (`rag.evaluation.registry.summarise`).

Invariants:
- A question's kind is the first of `_KIND_PATTERNS` its text matches, else "other"; kinds are
  listed in `QUESTION_KINDS` order, and only those some question has.
- Pure functions of the per-question records; standard library and `metrics` only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rag.evaluation.metrics import (
    QuestionRecord,
    abstention_of,
    answerable_records,
    hit_rate,
    mean,
)

Records = Sequence[QuestionRecord]

QUESTION_KINDS = ("who", "when", "where", "how many", "what/which", "other")
_KIND_PATTERNS = (
    ("how many", re.compile(r"\bhow (many|much|long|old|far|big|large|often|tall|high)\b", re.I)),
    ("when", re.compile(r"\bwhen\b|\b(what|which|in what) (year|date|day|month|century)\b", re.I)),
    ("where", re.compile(r"\bwhere\b|\b(what|which) (city|country|place|town|region)\b", re.I)),
    ("who", re.compile(r"\b(who|whom|whose)\b", re.I)),
    ("what/which", re.compile(r"\b(what|which)\b", re.I)),
)  # fmt: skip


def question_kind(question: str) -> str:
    """who, when, where, how many, what/which or other: the first pattern that matches."""
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(question):
            return kind
    return "other"


def breakdowns(records: Records) -> dict[str, Any]:
    """`by_tag` (each tag some record has, sorted) and `by_kind` (each kind some has)."""
    kinds = [question_kind(r.question) for r in records]
    return {
        "by_tag": {
            tag: _tag_metrics([r for r in records if tag in r.tags])
            for tag in sorted({t for r in records for t in r.tags})
        },
        "by_kind": {
            kind: _kind_metrics([r for r, k in zip(records, kinds, strict=True) if k == kind])
            for kind in QUESTION_KINDS
            if kind in kinds
        },
    }


def _kind_metrics(records: Records) -> dict[str, Any]:
    ans = answerable_records(records)
    return {
        "questions": len(records),
        "unanswerable": len(records) - len(ans),
        "short_f1": mean(r.scores.get("short_f1") for r in ans),
        "short_shown": mean(r.scores.get("short_shown") for r in ans),
        "short_right": mean(r.scores.get("short_right") for r in records),
        "abstain_recall": abstention_of(records, "recall"),
        "false_abstain": abstention_of(records, "false_abstain"),
    }


def _tag_metrics(records: Records) -> dict[str, Any]:
    ans = answerable_records(records)
    return {
        "questions": len(records),
        "hit@5": hit_rate([r.first_hit for r in ans], 5),
        "answer_contains": mean(r.contains for r in ans),
        "abstained": mean(r.abstained for r in records),
    }

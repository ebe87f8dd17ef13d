"""Pure metric functions of `rag eval`, and the per-question record they fill.

Invariants: every function here is pure and deterministic, and this module imports nothing
outside the standard library (`eval/check_qa.py` imports it under a bare `python3`). Answer
text is compared after `normalise_answer` (lowercase, every non-alphanumeric run one space), on
word boundaries, so punctuation never decides and "1" does not occur in "10". Token F1 and
exact match over that normalisation are SQuAD-style and work on any prediction string; the
short answer is scored with the official SQuAD normalisation (`squad_normalise`: punctuation
deleted, articles dropped) by `squad_exact_match` and `squad_f1`.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.evaluation.corpora import EvalQuestion

HIT_KS = (1, 3, 5)
MRR_CUTOFF = 10
WORD_BUDGETS = (100, 200, 400)
DOC_RECALL_K = 5

# ---------------------------------------------------------------------------------------------
# Answer text
# ---------------------------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[\W_]+")
_MARKER = re.compile(r"\[\d+\]")


def normalise_answer(text: str) -> str:
    """Lowercase, every non-alphanumeric run to one space, trimmed: punctuation never decides."""
    return " ".join(_NON_ALNUM.sub(" ", text.lower()).split())


def occurs(alias: str, text: str) -> bool:
    """The normalised alias occurs in the normalised text on word boundaries ("1" ∉ "10")."""
    needle = normalise_answer(alias)
    return bool(needle) and f" {needle} " in f" {normalise_answer(text)} "


def any_occurs(aliases: Iterable[str], text: str) -> bool:
    haystack = f" {normalise_answer(text)} "
    return any((n := normalise_answer(a)) and f" {n} " in haystack for a in aliases)


def strip_markers(answer: str) -> str:
    """Citation markers like `[2]` are not answer text; they would count as tokens otherwise."""
    return _MARKER.sub(" ", answer)


def token_f1(prediction: str, truth: str) -> float:
    """SQuAD-style bag-of-tokens F1 on normalised tokens."""
    pred, gold = normalise_answer(prediction).split(), normalise_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, aliases: Iterable[str]) -> float:
    """Max over accepted answers, as SQuAD scores several annotators' answers."""
    return max((token_f1(prediction, a) for a in aliases), default=0.0)


def exact_match(prediction: str, truth: str) -> bool:
    """SQuAD-style exact match: equal once both are normalised."""
    return normalise_answer(prediction) == normalise_answer(truth)


def best_exact_match(prediction: str, aliases: Iterable[str]) -> bool:
    """Exact match against any accepted answer."""
    return any(exact_match(prediction, a) for a in aliases)


_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalise(text: str) -> str:
    """The official SQuAD normalisation: lowercase, punctuation removed (not spaced: "Al-Asoumi"
    is "alasoumi"), articles a/an/the dropped, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_f1(prediction: str, aliases: Iterable[str]) -> float:
    """The official SQuAD token F1, max over the accepted answers (0 when there are none)."""
    pred = squad_normalise(prediction).split()
    best = 0.0
    for alias in aliases:
        gold = squad_normalise(alias).split()
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            p, r = common / len(pred), common / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


def squad_exact_match(prediction: str, aliases: Iterable[str]) -> bool:
    """The official SQuAD exact match against any accepted answer."""
    pred = squad_normalise(prediction)
    return any(pred == squad_normalise(a) for a in aliases)


def first_hit_rank(texts: Sequence[str], aliases: Sequence[str]) -> int | None:
    """1-based rank of the first passage containing an accepted answer, None if none does."""
    for rank, text in enumerate(texts, start=1):
        if any_occurs(aliases, text):
            return rank
    return None


def hit_rate(ranks: Sequence[int | None], k: int) -> float | None:
    """Share of questions answered within the top k passages (None: no questions)."""
    if not ranks:
        return None
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None], cutoff: int = MRR_CUTOFF) -> float | None:
    """MRR@cutoff: 1/rank of the first hit, 0 when it is missing or below the cutoff."""
    if not ranks:
        return None
    return sum(1 / r for r in ranks if r is not None and r <= cutoff) / len(ranks)


def within_word_budget(texts: Sequence[str], aliases: Sequence[str], words: int) -> bool:
    """An accepted answer occurs in the first `words` words of the ranked passages, joined.

    A fixed word budget compares systems with different chunk sizes fairly: bigger chunks
    cannot win by showing the reader more text.
    """
    head = " ".join(normalise_answer(" ".join(texts)).split()[:words])
    return any_occurs(aliases, head)


def doc_recall(expected: Sequence[str], retrieved: Sequence[str]) -> float | None:
    """Share of the listed source documents found among the retrieved passages' documents."""
    wanted = set(expected)
    if not wanted:
        return None
    return len(wanted & set(retrieved)) / len(wanted)


def mean(values: Iterable[float | bool | None]) -> float | None:
    """Mean of the defined values; None when there are none (a metric that cannot be measured)."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


@dataclass(frozen=True, slots=True)
class AbstentionScores:
    precision: float | None  # of abstentions, the share on unanswerable questions
    recall: float | None  # of unanswerable questions, the share abstained on
    false_abstain: float | None  # of answerable questions, the share wrongly abstained on


def abstention_scores(abstained: Sequence[bool], answerable: Sequence[bool]) -> AbstentionScores:
    """Abstention as a classifier whose positives are the unanswerable questions."""
    pairs = list(zip(abstained, answerable, strict=True))
    tp = sum(1 for a, ok in pairs if a and not ok)
    predicted = sum(1 for a, _ in pairs if a)
    negatives = sum(1 for _, ok in pairs if ok)
    positives = len(pairs) - negatives
    false_abstain = sum(1 for a, ok in pairs if a and ok)
    return AbstentionScores(
        precision=tp / predicted if predicted else None,
        recall=tp / positives if positives else None,
        false_abstain=false_abstain / negatives if negatives else None,
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in 0..100."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# ---------------------------------------------------------------------------------------------
# Abstention threshold calibration (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    threshold: float
    precision: float | None
    recall: float | None
    false_abstain: float | None

    @property
    def balanced(self) -> float | None:
        """Mean of abstain recall and answer rate on answerable questions (chance = 0.5)."""
        if self.recall is None or self.false_abstain is None:
            return None
        return (self.recall + 1 - self.false_abstain) / 2


def calibrate(
    confidences: Sequence[float], answerable: Sequence[bool], thresholds: Iterable[float]
) -> list[CalibrationRow]:
    """What abstention would look like at each threshold: abstain iff confidence < t."""
    rows = []
    for t in thresholds:
        scores = abstention_scores([c < t for c in confidences], answerable)
        rows.append(CalibrationRow(t, scores.precision, scores.recall, scores.false_abstain))
    return rows


def candidate_thresholds(
    confidences: Sequence[float], current: float | None = None, step: float = 0.05
) -> list[float]:
    """A grid over the observed confidences (5th to 95th percentile), plus the current value."""
    if not confidences:
        return [current] if current is not None else []
    lo = math.floor((percentile(confidences, 5) or 0.0) / step) * step
    hi = math.ceil((percentile(confidences, 95) or 0.0) / step) * step
    if current is not None:  # keep the grid contiguous around the current setting
        lo = min(lo, math.floor(current / step) * step)
        hi = max(hi, math.ceil(current / step) * step)
    n = max(1, round((hi - lo) / step))
    if n > 30:  # keep the table readable
        step, n = (hi - lo) / 30, 30
    grid = {round(lo + i * step, 4) for i in range(n + 1)}
    if current is not None:
        grid.add(round(current, 4))
    return sorted(grid)


def best_threshold(rows: Sequence[CalibrationRow]) -> CalibrationRow | None:
    """The row with the best balanced accuracy (ties: fewer wrongly abstained answerables)."""
    scored = [r for r in rows if r.balanced is not None]
    if not scored:
        return None
    return max(scored, key=lambda r: (r.balanced, -(r.false_abstain or 0.0)))


# ---------------------------------------------------------------------------------------------
# Per-question records
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class QuestionRecord:
    """What one question did in one mode: the raw outcome and its per-question scores."""

    id: str
    question: str
    answerable: bool
    tags: list[str]
    answers: list[str]
    doc_ids: list[str]
    answer: str
    abstained: bool
    confidence: float
    latency_ms: float
    ranked_doc_ids: list[str]  # of the MRR_CUTOFF-deep ranking
    first_hit: int | None  # rank of the first passage holding an accepted answer
    in_budget: dict[str, bool]  # words budget -> answer within it
    doc_recall: float | None
    contains: bool  # accepted answer contained in the answer text
    f1: float
    cited_docs: list[str]
    citations_in_source: bool | None  # None: abstained, or no listed sources
    quotes: int
    quotes_exact: int
    # registry answer metrics (`Metric.score`): key -> value; flattened into the JSON record
    scores: dict[str, float | bool | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The record as the JSON report writes it: fields, then the answer-metric scores."""
        data = asdict(self)
        scores = data.pop("scores")
        return {**data, **scores}


def score_question(
    q: EvalQuestion,
    *,
    answer_text: str,
    abstained: bool,
    confidence: float,
    latency_ms: float,
    ranked_texts: Sequence[str],
    ranked_doc_ids: Sequence[str],
    cited_docs: Sequence[str],
    quotes: int,
    quotes_exact: int,
    scores: Mapping[str, float | bool | None] | None = None,
) -> QuestionRecord:
    """Apply the metric functions to one outcome; pure, so it is tested without a model.

    `scores` are the values of the registry's answer metrics for this question, computed by
    the runner from the `Answer` (see `rag.evaluation.registry.answer_scores`).
    """
    aliases = list(q.answers)
    answerable = q.answerable and bool(aliases)
    text = strip_markers(answer_text)
    in_source = None
    if not abstained and answerable and q.doc_ids:
        in_source = bool(cited_docs) and all(d in q.doc_ids for d in cited_docs)
    return QuestionRecord(
        id=q.id,
        question=q.question,
        answerable=q.answerable,
        tags=list(q.tags),
        answers=aliases,
        doc_ids=list(q.doc_ids),
        answer=answer_text,
        abstained=abstained,
        confidence=confidence,
        latency_ms=latency_ms,
        ranked_doc_ids=list(ranked_doc_ids),
        first_hit=first_hit_rank(ranked_texts[:MRR_CUTOFF], aliases) if answerable else None,
        in_budget={
            str(w): answerable and within_word_budget(ranked_texts, aliases, w)
            for w in WORD_BUDGETS
        },
        doc_recall=doc_recall(q.doc_ids, ranked_doc_ids[:DOC_RECALL_K]) if answerable else None,
        contains=answerable and not abstained and any_occurs(aliases, text),
        f1=0.0 if abstained or not answerable else best_f1(text, aliases),
        cited_docs=list(cited_docs),
        citations_in_source=in_source,
        quotes=quotes,
        quotes_exact=quotes_exact,
        scores=dict(scores or {}),
    )


def answerable_records(records: Sequence[QuestionRecord]) -> list[QuestionRecord]:
    """The records of answerable questions."""
    return [r for r in records if r.answerable]


def abstention_of(records: Sequence[QuestionRecord], attr: str) -> float | None:
    """One of `AbstentionScores`' fields (`precision`, `recall`, `false_abstain`) of records."""
    scores = abstention_scores([r.abstained for r in records], [r.answerable for r in records])
    return getattr(scores, attr)

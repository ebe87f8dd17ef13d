"""The one table of `rag eval` metrics: each declared once, everything else derived from it.

A `Metric` names its summary key (JSON and thresholds), its table label and section, how its
value is formatted, its optional threshold flag (`min-…` fails below, `max-…` above) and how
it is computed. The summary (`summarise`), the table (`report.render_metrics`), the threshold
check (`check_thresholds`) and the CLI's `rag eval --min-…/--max-…` options all iterate
`METRICS` in order, so adding a metric is one entry here.

Two ways to compute a metric:
- `summarise`: an aggregate over the per-question records of one mode (ranking, citations,
  abstention, latency);
- `score`: an *answer metric*, `score(answer, question)` per question from the `Answer` and the
  gold `EvalQuestion` (None: not applicable). The runner stores it in `QuestionRecord.scores`,
  the JSON report writes it beside the record's fields, and the summary is its mean over the
  answerable questions. Example: `short_f1`, the SQuAD token F1 of `Answer.short_answer`.

The summary's parts by tag and by kind of question are `breakdowns`'. This module imports only
the standard library, `metrics`, `breakdowns` and `time_metrics` (the dated questions' answer
metrics), so `rag.cli` can build its options from it without loading models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rag.evaluation.breakdowns import QUESTION_KINDS as QUESTION_KINDS  # re-exported
from rag.evaluation.breakdowns import breakdowns
from rag.evaluation.breakdowns import question_kind as question_kind  # re-exported
from rag.evaluation.metrics import (
    DOC_RECALL_K,
    HIT_KS,
    MRR_CUTOFF,
    WORD_BUDGETS,
    QuestionRecord,
    abstention_of,
    answerable_records,
    hit_rate,
    mean,
    mean_reciprocal_rank,
    percentile,
    squad_exact_match,
    squad_f1,
)
from rag.evaluation.time_metrics import copies_folded, duplicate_citations, in_time, period_parsed

if TYPE_CHECKING:
    from rag.evaluation.corpora import EvalQuestion
    from rag.models import Answer

Records = Sequence[QuestionRecord]
RIGHT_F1 = 0.5  # a shown short answer is "right" at this SQuAD token F1 or above
Format = Literal["share", "ms", "count"]


@dataclass(frozen=True, slots=True)
class Metric:
    key: str  # summary key, e.g. "hit@5" (also the JSON key and the name in failures)
    label: str  # table row label
    section: str = ""  # a table section starts at this row ("" continues the previous one)
    fmt: Format = "share"
    flag: str | None = None  # threshold option, e.g. "min-hit5" (min- lower, max- upper bound)
    flag_help: str = ""  # what the option bounds, in its --help text
    summarise: Callable[[Records], Any] | None = None  # aggregate over one mode's records
    score: Callable[[Answer, EvalQuestion], float | bool | None] | None = None  # answer metric
    every_question: bool = False  # an answer metric averaged over all questions, not answerable

    def __post_init__(self) -> None:
        if (self.summarise is None) == (self.score is None):
            raise ValueError(f"metric {self.key}: give exactly one of summarise or score")
        if self.flag is not None and not self.flag.startswith(("min-", "max-")):
            raise ValueError(f"metric {self.key}: flag {self.flag!r} must start min- or max-")

    @property
    def option(self) -> str | None:
        """The flag as click names its parameter: `min-hit5` → `min_hit5`."""
        return self.flag.replace("-", "_") if self.flag else None

    @property
    def lower_bound(self) -> bool:
        """True when the flag is a minimum (fails below), False for a maximum."""
        return bool(self.flag and self.flag.startswith("min-"))

    def aggregate(self, records: Records) -> Any:
        """The summary value: `summarise`, or the answer metric's mean (its sum for a count)."""
        if self.summarise is not None:
            return self.summarise(records)
        values = [r.scores.get(self.key) for r in records if r.answerable or self.every_question]
        if self.fmt == "count":
            return sum(float(v) for v in values if v is not None)
        return mean(values)


def _ranks(records: Records) -> list[int | None]:
    return [r.first_hit for r in answerable_records(records)]


def _quote_exact(records: Records) -> float | None:
    quotes = sum(r.quotes for r in records)
    return sum(r.quotes_exact for r in records) / quotes if quotes else None


def _short(
    answer: Answer, q: EvalQuestion, score: Callable[[str, Sequence[str]], float]
) -> float | None:
    """A short-answer score on an answerable question; 0 when there is no short answer."""
    if not (q.answerable and q.answers):
        return None
    short = answer.short_answer
    return 0.0 if answer.abstained or short is None else score(short.text, q.answers)


def _shown_right(answer: Answer, q: EvalQuestion) -> bool | None:
    """Whether a displayed short answer is right (SQuAD token F1 ≥ .5 against an accepted
    answer); None when none is shown. One shown on an unanswerable question is wrong."""
    if answer.abstained or answer.short_answer is None:
        return None
    if not (q.answerable and q.answers):
        return False
    return squad_f1(answer.short_answer.text, q.answers) >= RIGHT_F1


def _first_sentence(answer: Answer, q: EvalQuestion) -> float | None:
    if not (q.answerable and q.answers):
        return None
    if answer.abstained or not answer.citations:
        return 0.0
    return squad_f1(answer.citations[0].quote, q.answers)


def _answerable_mean(field: str) -> Callable[[Records], float | None]:
    """The mean of one record field over the answerable questions."""
    return lambda records: mean(getattr(r, field) for r in answerable_records(records))


def _latency(q: float) -> Callable[[Records], float | None]:
    return lambda records: percentile([r.latency_ms for r in records], q)


def _hit(k: int) -> Metric:
    return Metric(
        f"hit@{k}",
        f"hit@{k}",
        section="retrieval · answerable" if k == HIT_KS[0] else "",
        flag=f"min-hit{k}",
        flag_help=f"hit@{k}",
        summarise=lambda records: hit_rate(_ranks(records), k),
    )


def _budget(words: int) -> Metric:
    return Metric(
        f"recall@{words}w",
        f"answer in first {words} words",
        flag=f"min-recall{words}",
        flag_help=f"answer-in-first-{words}-words rate",
        summarise=lambda records: mean(
            r.in_budget[str(words)] for r in answerable_records(records)
        ),
    )


METRICS: tuple[Metric, ...] = (
    *(_hit(k) for k in HIT_KS),
    Metric(
        f"mrr@{MRR_CUTOFF}",
        f"MRR@{MRR_CUTOFF}",
        flag="min-mrr",
        flag_help=f"MRR@{MRR_CUTOFF}",
        summarise=lambda records: mean_reciprocal_rank(_ranks(records), MRR_CUTOFF),
    ),
    *(_budget(w) for w in WORD_BUDGETS),
    Metric(
        f"doc_recall@{DOC_RECALL_K}",
        f"source doc recall@{DOC_RECALL_K}",
        flag="min-doc-recall",
        flag_help=f"source document recall@{DOC_RECALL_K}",
        summarise=_answerable_mean("doc_recall"),
    ),
    Metric(
        "answer_contains",
        "answer contains gold",
        section="answers · answerable",
        flag="min-answer",
        flag_help="answer containment",
        summarise=_answerable_mean("contains"),
    ),
    Metric(
        "answer_f1",
        "token F1",
        flag="min-f1",
        flag_help="answer token F1",
        summarise=_answerable_mean("f1"),
    ),
    Metric(
        "llm_fallback",
        "LLM answer fell back",
        flag="max-llm-fallback",
        flag_help="share of LLM answers replaced by the extractive fallback",
        score=lambda a, q: a.fallback,
    ),
    Metric(
        "short_em",
        "short answer exact match (SQuAD)",
        section="short answer · answerable",
        flag="min-short-em",
        flag_help="short-answer exact match",
        score=lambda a, q: _short(a, q, lambda text, golds: float(squad_exact_match(text, golds))),
    ),
    Metric(
        "short_f1",
        "short answer token F1 (SQuAD)",
        flag="min-short-f1",
        flag_help="short-answer token F1",
        score=lambda a, q: _short(a, q, squad_f1),
    ),
    Metric(
        "short_shown",
        "short answer shown (coverage)",
        flag="min-short-coverage",
        flag_help="share of answerable questions with a short answer shown",
        score=lambda a, q: _short(a, q, lambda text, golds: 1.0),
    ),
    Metric(
        "short_right",
        "shown short answers right (all questions)",
        flag="min-short-precision",
        flag_help="share of shown short answers that are right (F1 >= .5)",
        score=_shown_right,
        every_question=True,
    ),
    Metric(
        "first_sentence_f1",
        "first sentence token F1 (SQuAD)",
        score=lambda a, q: _first_sentence(a, q),
    ),
    Metric(
        "citation_source",
        "cite only listed sources",
        section="citations",
        flag="min-citation-source",
        flag_help="share of answers citing only listed sources",
        summarise=_answerable_mean("citations_in_source"),
    ),
    Metric(
        "quote_exact",
        "quote == document slice",
        flag="min-quote-exact",
        flag_help="share of quotes equal to their document slice",
        summarise=_quote_exact,
    ),
    Metric(
        "citations",
        "citations checked",
        fmt="count",
        summarise=lambda records: sum(r.quotes for r in records),
    ),
    Metric(
        "current_newest",
        "current/latest from the newest article",
        section="time · tagged questions",
        flag="min-current-newest",
        flag_help="share of 'current' questions answered from an article holding the answer "
        "as of their day",
        score=in_time("current"),
        every_question=True,
    ),
    Metric(
        "period_right",
        "period questions right",
        flag="min-period-right",
        flag_help="share of 'period' questions answered from an article of their period",
        score=in_time("period"),
        every_question=True,
    ),
    Metric("period_parsed", "period read as listed", score=period_parsed, every_question=True),
    Metric(
        "copies_folded",
        "copies folded (story once, copies listed)",
        flag="min-copies-folded",
        flag_help="share of 'copies' questions whose story is shown once with its copies",
        score=copies_folded,
        every_question=True,
    ),
    Metric(
        "duplicate_citations",
        "answers citing the same text twice",
        fmt="count",
        flag="max-duplicate-citations",
        flag_help="answers with two citations of the same text",
        score=duplicate_citations,
        every_question=True,
    ),
    Metric(
        "abstain_precision",
        "precision (unanswerable)",
        section="abstention",
        flag="min-abstain-precision",
        flag_help="abstention precision",
        summarise=lambda records: abstention_of(records, "precision"),
    ),
    Metric(
        "abstain_recall",
        "recall (unanswerable)",
        flag="min-abstain-recall",
        flag_help="abstention recall",
        summarise=lambda records: abstention_of(records, "recall"),
    ),
    Metric(
        "false_abstain",
        "false abstain (answerable)",
        flag="max-false-abstain",
        flag_help="share of answerable questions abstained on",
        summarise=lambda records: abstention_of(records, "false_abstain"),
    ),
    Metric("latency_p50_ms", "p50 ms", section="latency", fmt="ms", summarise=_latency(50)),
    Metric(
        "latency_p95_ms",
        "p95 ms",
        fmt="ms",
        flag="max-p95-ms",
        flag_help="p95 latency (ms)",
        summarise=_latency(95),
    ),
)

# click option name (`min_hit5`) -> the metric it bounds
LIMITED: dict[str, Metric] = {m.option: m for m in METRICS if m.option is not None}
THRESHOLDS: dict[str, str] = {option: m.key for option, m in LIMITED.items()}


def answer_scores(
    answer: Answer, question: EvalQuestion, metrics: Sequence[Metric] = METRICS
) -> dict[str, float | bool | None]:
    """The answer metrics (`Metric.score`) of one question, keyed by metric."""
    return {m.key: m.score(answer, question) for m in metrics if m.score is not None}


def summarise(records: Records, metrics: Sequence[Metric] = METRICS) -> dict[str, Any]:
    """Aggregate metrics of one mode; answerable and unanswerable questions kept apart."""
    answerable = answerable_records(records)
    summary: dict[str, Any] = {
        "questions": len(records),
        "answerable": len(answerable),
        "unanswerable": len(records) - len(answerable),
        **{m.key: m.aggregate(records) for m in metrics},
    }
    summary.update(breakdowns(records))  # by_tag, by_kind
    return summary


def check_thresholds(
    metrics_by_mode: Mapping[str, Mapping[str, Any]],
    limits: Mapping[str, float | None],
    where: str = "",
) -> list[str]:
    """One line per failed bound per mode; a metric that cannot be measured fails its bound."""
    failures = []
    prefix = f"{where}: " if where else ""
    for option, limit in limits.items():
        if limit is None:
            continue
        metric = LIMITED[option]
        flag, key = f"--{metric.flag}", metric.key
        for mode, summary in metrics_by_mode.items():
            value = summary.get(key)
            if value is None:
                failures.append(f"{prefix}{mode} {key} cannot be measured here ({flag} {limit})")
            elif (value < limit) if metric.lower_bound else (value > limit):
                relation = "below the minimum" if metric.lower_bound else "above the maximum"
                failures.append(
                    f"{prefix}{mode} {key} = {value:.4g} is {relation} {limit:g} ({flag})"
                )
    return failures

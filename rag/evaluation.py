"""`rag eval`: measure retrieval, answers, citations, abstention and latency on a question set.

Every question goes through `Assistant.ask` the way the HTTP service calls it (embed, then ask
with the vector), so the figures describe what users get. Answers use `top_k` passages exactly
as `rag ask -k` would. All ranking metrics (hit@k, MRR@10, budgeted recall, document recall)
read one ranking: a `search` `max(10, top_k)` deep with the same vector, whose head matches the
answer's passages (a chunk that bridges two passages can merge them, so rarely not exactly).
The metric functions are pure and small so the tests can pin their definitions on hand-made
cases; the runner only gathers per-question records (confidence included) that the summary,
the thresholds and `--calibrate` all reuse.

Two inputs: our `eval/qa.jsonl` (against an existing index) and SQuAD JSON, for which a
temporary index of its articles (plus optional distractor articles) is built and removed.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from rag.errors import RagError
from rag.models import Mode
from rag.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from rag.assistant import Assistant
    from rag.embedding import Embedder

MODES: tuple[str, ...] = get_args(Mode)
HIT_KS = (1, 3, 5)
MRR_CUTOFF = 10
WORD_BUDGETS = (100, 200, 400)
DOC_RECALL_K = 5

# ---------------------------------------------------------------------------------------------
# Metric functions (pure)
# ---------------------------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[\W_]+")
_MARKER = re.compile(r"\[\d+\]")


def normalise(text: str) -> str:
    """Lowercase, every non-alphanumeric run to one space, trimmed: punctuation never decides."""
    return " ".join(_NON_ALNUM.sub(" ", text.lower()).split())


def occurs(alias: str, text: str) -> bool:
    """The normalised alias occurs in the normalised text on word boundaries ("1" ∉ "10")."""
    needle = normalise(alias)
    return bool(needle) and f" {needle} " in f" {normalise(text)} "


def any_occurs(aliases: Iterable[str], text: str) -> bool:
    haystack = f" {normalise(text)} "
    return any((n := normalise(a)) and f" {n} " in haystack for a in aliases)


def strip_markers(answer: str) -> str:
    """Citation markers like `[2]` are not answer text; they would count as tokens otherwise."""
    return _MARKER.sub(" ", answer)


def token_f1(prediction: str, truth: str) -> float:
    """SQuAD-style bag-of-tokens F1 on normalised tokens."""
    pred, gold = normalise(prediction).split(), normalise(truth).split()
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
    head = " ".join(normalise(" ".join(texts)).split()[:words])
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
# Questions and per-question records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One line of `eval/qa.jsonl` (SQuAD questions are converted to the same shape)."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_ids: tuple[str, ...]
    answerable: bool
    tags: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> EvalQuestion:
        return cls(
            id=str(rec["id"]),
            question=str(rec["question"]),
            answers=tuple(rec.get("answers", [])),
            doc_ids=tuple(rec.get("doc_ids", [])),
            answerable=bool(rec.get("answerable", bool(rec.get("answers")))),
            tags=tuple(rec.get("tags", [])),
        )


def load_questions(path: Path) -> list[EvalQuestion]:
    """Questions of a JSON Lines file; a bad line is an error naming the line, not a skip."""
    questions = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(EvalQuestion.from_record(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RagError(f"{path}:{lineno}: not an eval question ({exc})") from exc
    if not questions:
        raise RagError(f"{path}: no questions")
    return questions


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
) -> QuestionRecord:
    """Apply the metric functions to one outcome; pure, so it is tested without a model."""
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
    )


def summarise(records: Sequence[QuestionRecord]) -> dict[str, Any]:
    """Aggregate metrics of one mode; answerable and unanswerable questions kept apart."""
    ans = [r for r in records if r.answerable]
    unans = [r for r in records if not r.answerable]
    ranks = [r.first_hit for r in ans]
    abst = abstention_scores([r.abstained for r in records], [r.answerable for r in records])
    latencies = [r.latency_ms for r in records]
    quotes = sum(r.quotes for r in records)
    metrics: dict[str, Any] = {
        "questions": len(records),
        "answerable": len(ans),
        "unanswerable": len(unans),
        **{f"hit@{k}": hit_rate(ranks, k) for k in HIT_KS},
        f"mrr@{MRR_CUTOFF}": mean_reciprocal_rank(ranks, MRR_CUTOFF),
        **{f"recall@{w}w": mean(r.in_budget[str(w)] for r in ans) for w in WORD_BUDGETS},
        f"doc_recall@{DOC_RECALL_K}": mean(r.doc_recall for r in ans),
        "answer_contains": mean(r.contains for r in ans),
        "answer_f1": mean(r.f1 for r in ans),
        "citation_source": mean(r.citations_in_source for r in ans),
        "quote_exact": sum(r.quotes_exact for r in records) / quotes if quotes else None,
        "citations": quotes,
        "abstain_precision": abst.precision,
        "abstain_recall": abst.recall,
        "false_abstain": abst.false_abstain,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
    }
    metrics["by_tag"] = {
        tag: _tag_metrics([r for r in records if tag in r.tags])
        for tag in sorted({t for r in records for t in r.tags})
    }
    return metrics


def _tag_metrics(records: Sequence[QuestionRecord]) -> dict[str, Any]:
    ans = [r for r in records if r.answerable]
    return {
        "questions": len(records),
        "hit@5": hit_rate([r.first_hit for r in ans], 5),
        "answer_contains": mean(r.contains for r in ans),
        "abstained": mean(r.abstained for r in records),
    }


# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------

# CLI option (as click names it) -> metric it bounds; `min_` options are lower bounds.
THRESHOLDS: dict[str, str] = {
    "min_hit1": "hit@1",
    "min_hit3": "hit@3",
    "min_hit5": "hit@5",
    "min_mrr": f"mrr@{MRR_CUTOFF}",
    "min_recall100": "recall@100w",
    "min_recall200": "recall@200w",
    "min_recall400": "recall@400w",
    "min_doc_recall": f"doc_recall@{DOC_RECALL_K}",
    "min_answer": "answer_contains",
    "min_f1": "answer_f1",
    "min_citation_source": "citation_source",
    "min_quote_exact": "quote_exact",
    "min_abstain_precision": "abstain_precision",
    "min_abstain_recall": "abstain_recall",
    "max_false_abstain": "false_abstain",
    "max_p95_ms": "latency_p95_ms",
}


def check_thresholds(
    metrics_by_mode: dict[str, dict[str, Any]], limits: dict[str, float | None], where: str = ""
) -> list[str]:
    """One line per failed bound per mode; a metric that cannot be measured fails its bound."""
    failures = []
    prefix = f"{where}: " if where else ""
    for option, limit in limits.items():
        if limit is None:
            continue
        metric = THRESHOLDS[option]
        flag = "--" + option.replace("_", "-")
        lower = option.startswith("min_")
        for mode, metrics in metrics_by_mode.items():
            value = metrics.get(metric)
            if value is None:
                failures.append(f"{prefix}{mode} {metric} cannot be measured here ({flag} {limit})")
            elif (value < limit) if lower else (value > limit):
                relation = "below the minimum" if lower else "above the maximum"
                failures.append(
                    f"{prefix}{mode} {metric} = {value:.4g} is {relation} {limit:g} ({flag})"
                )
    return failures


# ---------------------------------------------------------------------------------------------
# Running questions through the assistant
# ---------------------------------------------------------------------------------------------


def run_questions(
    assistant: Assistant,
    questions: Sequence[EvalQuestion],
    *,
    mode: Mode,
    top_k: int,
    answerer: str | None = None,
    vectors: dict[str, tuple[np.ndarray, float]] | None = None,
    on_done: Any = None,
) -> list[QuestionRecord]:
    """Ask every question as the HTTP service does and score it.

    Like the service, the question is embedded first and the vector passed to `ask`; latency is
    embedding time plus `Answer.timings["total"]`, as the service reports it. `vectors` caches
    (vector, embed ms) per question so several modes embed each question once. The ranking
    metrics all read one ranking `MRR_CUTOFF` deep: a `search` with the same vector.
    """
    depth = max(MRR_CUTOFF, top_k)
    cache = vectors if vectors is not None else {}
    records = []
    for q in questions:
        if q.question not in cache:
            t0 = time.perf_counter()
            vector = assistant.embed([assistant.check_question(q.question)])[0]
            cache[q.question] = (vector, (time.perf_counter() - t0) * 1000)
        qvec, embed_ms = cache[q.question]
        answer = assistant.ask(
            q.question,
            top_k=top_k,
            mode=mode,
            answerer=answerer,  # type: ignore[arg-type]
            query_vector=qvec,
        )
        ranked = answer.passages
        if depth > top_k:
            deeper = assistant.search(q.question, top_k=depth, mode=mode, query_vector=qvec)
            ranked = deeper.passages
        exact = 0
        for c in answer.citations:
            doc = assistant.document(c.doc_id)
            exact += doc is not None and doc.text[c.start : c.end] == c.quote
        records.append(
            score_question(
                q,
                answer_text=answer.answer,
                abstained=answer.abstained,
                confidence=answer.confidence,
                latency_ms=round(embed_ms + answer.timings.get("total", 0.0), 3),
                ranked_texts=[p.text for p in ranked],
                ranked_doc_ids=[p.doc_id for p in ranked],
                cited_docs=[c.doc_id for c in answer.citations],
                quotes=len(answer.citations),
                quotes_exact=exact,
            )
        )
        if on_done is not None:
            on_done()
    return records


def parse_modes(text: str | None, default: str) -> list[Mode]:
    """`dense,bm25,hybrid` → a deduplicated list, validated against the retrieval modes."""
    names = [m.strip() for m in (text or default).split(",") if m.strip()]
    bad = [m for m in names if m not in MODES]
    if bad or not names:
        raise RagError(f"unknown mode(s) {bad or text!r}: choose from {', '.join(MODES)}")
    return list(dict.fromkeys(names))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Corpora: our index, or a temporary one built from SQuAD
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class EvalSet:
    path: Path
    kind: str  # "jsonl" | "squad"
    questions: list[EvalQuestion]
    index_dir: Path
    documents: int | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def open_eval_set(
    path: Path,
    settings: Settings,
    embedder: Embedder,
    *,
    index_dir: Path | None,
    distractors: Path | None,
    corpus_dir: Path | None,
    limit: int | None,
    console: Console,
) -> Iterator[tuple[EvalSet, Settings]]:
    """The questions of one file and the settings of the index to ask them against."""
    from rag import squad

    if not path.is_file():
        raise RagError(f"eval file not found: {path}")
    if not squad.sniff_squad(path):
        if distractors is not None:
            raise RagError("--distractors only applies to SQuAD files (it extends their corpus)")
        questions = load_questions(path)[:limit]
        idx = index_dir or settings.index_dir
        yield EvalSet(path, "jsonl", questions, idx), settings.with_overrides(index_dir=idx)
        return

    corpus = squad.load_squad(path)
    n_articles = len(corpus.documents)
    if distractors is not None:
        extra = squad.load_distractors(distractors)
        clash = set(extra) & set(corpus.documents)
        if clash:
            raise RagError(f"distractor ids clash with SQuAD titles: {sorted(clash)[:3]}")
        corpus.documents.update(extra)
    questions = [EvalQuestion.from_record(r) for r in corpus.questions][:limit]
    with _corpus_folder(path, distractors, corpus_dir) as folder:
        corpus_settings = settings.with_overrides(
            seeds_dir=folder / "articles", index_dir=folder / "index"
        )
        squad.write_documents(corpus.documents, corpus_settings.seeds_dir)
        _build(corpus_settings, embedder, len(corpus.documents), console)
        notes = [f"{n_articles} SQuAD articles + {len(corpus.documents) - n_articles} distractors"]
        yield (
            EvalSet(path, "squad", questions, folder / "index", len(corpus.documents), notes),
            corpus_settings,
        )


@contextmanager
def _corpus_folder(path: Path, distractors: Path | None, corpus_dir: Path | None) -> Iterator[Path]:
    """A kept folder under `corpus_dir` (reused next time) or a temporary one, removed after."""
    if corpus_dir is not None:
        name = path.stem + (f"+{distractors.stem}" if distractors else "")
        folder = corpus_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        yield Path(tmp)


def _build(settings: Settings, embedder: Embedder, n_docs: int, console: Console) -> None:
    from rag.indexing import build_index

    console.print(f"[dim]indexing {n_docs} articles in {settings.index_dir} …[/dim]")
    report = build_index(settings, embedder=embedder, progress=None)
    console.print(
        f"[dim]index: {report.documents} documents, {report.chunks} chunks "
        f"({report.chunks_embedded} embedded, {report.seconds:.1f} s, {report.reason})[/dim]"
    )


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

# (section, label, metric key, kind) — kind: "share", "ms" or "count"
TABLE_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("retrieval · answerable", "hit@1", "hit@1", "share"),
    ("", "hit@3", "hit@3", "share"),
    ("", "hit@5", "hit@5", "share"),
    ("", f"MRR@{MRR_CUTOFF}", f"mrr@{MRR_CUTOFF}", "share"),
    ("", "answer in first 100 words", "recall@100w", "share"),
    ("", "answer in first 200 words", "recall@200w", "share"),
    ("", "answer in first 400 words", "recall@400w", "share"),
    ("", f"source doc recall@{DOC_RECALL_K}", f"doc_recall@{DOC_RECALL_K}", "share"),
    ("answers · answerable", "answer contains gold", "answer_contains", "share"),
    ("", "token F1", "answer_f1", "share"),
    ("citations", "cite only listed sources", "citation_source", "share"),
    ("", "quote == document slice", "quote_exact", "share"),
    ("", "citations checked", "citations", "count"),
    ("abstention", "precision (unanswerable)", "abstain_precision", "share"),
    ("", "recall (unanswerable)", "abstain_recall", "share"),
    ("", "false abstain (answerable)", "false_abstain", "share"),
    ("latency", "p50 ms", "latency_p50_ms", "ms"),
    ("", "p95 ms", "latency_p95_ms", "ms"),
)


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "ms":
        return f"{value:.1f}"
    if kind == "count":
        return str(value)
    return f"{value:.3f}"


def render_metrics(
    console: Console, title: str, metrics_by_mode: dict[str, dict[str, Any]]
) -> None:
    """Metrics as rows, modes as columns, so modes compare at a glance."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for mode in metrics_by_mode:
        table.add_column(mode, justify="right")
    for section, label, key, kind in TABLE_ROWS:
        if section:
            table.add_section()
            table.add_row(f"[bold]{section}[/bold]", *[""] * len(metrics_by_mode))
        cells = [_fmt(m.get(key), kind) for m in metrics_by_mode.values()]
        table.add_row(f"  {label}", *cells)
    console.print(table)


def render_calibration(
    console: Console, mode: str, rows: Sequence[CalibrationRow], current: float
) -> None:
    from rich.table import Table

    best = best_threshold(rows)
    table = Table(
        title=f"abstain threshold calibration · {mode} (abstain iff confidence < t)",
        title_justify="left",
    )
    for name in ("t", "abstain precision", "abstain recall", "false abstain", "balanced"):
        table.add_column(name, justify="right")
    for r in rows:
        mark = " (current)" if math.isclose(r.threshold, current) else ""
        mark += " ← best" if best is not None and r is best else ""
        table.add_row(
            f"{r.threshold:.3f}{mark}",
            *(_fmt(v, "share") for v in (r.precision, r.recall, r.false_abstain, r.balanced)),
        )
    console.print(table)


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def run_eval(
    files: Sequence[Path],
    settings: Settings,
    *,
    modes: str | None = None,
    answerer: str | None = None,
    top_k: int | None = None,
    index_dir: Path | None = None,
    distractors: Path | None = None,
    corpus_dir: Path | None = None,
    limit: int | None = None,
    calibrate_abstain: bool = False,
    json_out: Path | None = None,
    thresholds: dict[str, float | None] | None = None,
    embedder: Embedder | None = None,
    console: Console | None = None,
) -> tuple[int, list[str]]:
    """Evaluate each file in each mode; returns (exit code, failed-threshold lines)."""
    from rich.console import Console

    from rag.assistant import Assistant
    from rag.embedding import Embedder

    console = console or Console(highlight=False)
    status = Console(stderr=True, highlight=False)
    mode_list = parse_modes(modes, settings.mode)
    k = top_k or settings.top_k
    embedder = embedder or Embedder.load(settings)  # once for every file and mode
    report: dict[str, Any] = {"files": []}
    failures: list[str] = []
    for path in files or [Path("eval/qa.jsonl")]:
        with open_eval_set(
            Path(path),
            settings,
            embedder,
            index_dir=index_dir,
            distractors=distractors,
            corpus_dir=corpus_dir,
            limit=limit,
            console=status,
        ) as (eval_set, file_settings):
            assistant = Assistant.open(settings=file_settings, embedder=embedder)
            vectors: dict[str, tuple[np.ndarray, float]] = {}
            results: dict[str, list[QuestionRecord]] = {}
            for mode in mode_list:
                if eval_set.questions:  # warm-up: first-call costs are not a user's latency
                    assistant.ask(eval_set.questions[0].question, mode=mode, answerer="extractive")
                results[mode] = _run_with_progress(
                    assistant, eval_set.questions, mode, k, answerer, vectors, status
                )
        metrics = {mode: summarise(recs) for mode, recs in results.items()}
        first = next(iter(metrics.values()))
        counts = (
            f"{first['questions']} questions: {first['answerable']} answerable, "
            f"{first['unanswerable']} unanswerable · top_k {k} · "
            f"answerer {answerer or settings.answerer} · "
            f"abstain_threshold {settings.abstain_threshold}"
        )
        where = "; ".join(eval_set.notes) or str(eval_set.index_dir)
        render_metrics(console, f"{path} · {where}", metrics)
        console.print(counts)
        calibration: dict[str, list[dict[str, Any]]] = {}
        if calibrate_abstain:
            for mode, recs in results.items():
                conf = [r.confidence for r in recs]
                grid = candidate_thresholds(conf, settings.abstain_threshold)
                rows = calibrate(conf, [r.answerable for r in recs], grid)
                render_calibration(console, mode, rows, settings.abstain_threshold)
                calibration[mode] = [{**asdict(r), "balanced": r.balanced} for r in rows]
        failures += check_thresholds(metrics, thresholds or {}, where=str(path))
        report["files"].append(
            {
                "file": str(path),
                "kind": eval_set.kind,
                "index": str(eval_set.index_dir) if eval_set.kind == "jsonl" else None,
                "documents": eval_set.documents,
                "notes": eval_set.notes,
                "settings": {
                    "top_k": k,
                    "answerer": answerer or settings.answerer,
                    "abstain_threshold": settings.abstain_threshold,
                    "model": settings.model,
                    "chunk_tokens": settings.chunk_tokens,
                    "chunk_overlap": settings.chunk_overlap,
                },
                "modes": {
                    mode: {"metrics": metrics[mode], "questions": [asdict(r) for r in recs]}
                    for mode, recs in results.items()
                },
                "calibration": calibration or None,
            }
        )
    report["failures"] = failures
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return (1 if failures else 0), failures


def _run_with_progress(
    assistant: Assistant,
    questions: Sequence[EvalQuestion],
    mode: Mode,
    top_k: int,
    answerer: str | None,
    vectors: dict[str, tuple[np.ndarray, float]],
    status: Console,
) -> list[QuestionRecord]:
    from rich.progress import Progress

    with Progress(console=status, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"{mode}", total=len(questions))
        return run_questions(
            assistant,
            questions,
            mode=mode,
            top_k=top_k,
            answerer=answerer,
            vectors=vectors,
            on_done=lambda: progress.advance(task),
        )

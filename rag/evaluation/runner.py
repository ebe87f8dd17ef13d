"""`rag eval`: ask each eval set's questions through the Assistant in each mode, and score them.

Every question goes through `Assistant.ask` the way the HTTP service calls it (embed, then ask
with the vector), so the figures describe what users get. Answers use `top_k` passages exactly
as `rag ask -k` would. All ranking metrics (hit@k, MRR@10, budgeted recall, document recall)
read one ranking: a `search` `max(10, top_k)` deep with the same vector and the same `Query`,
whose head matches the answer's passages (a chunk that bridges two passages can merge them, so
rarely not exactly). The runner only gathers per-question records (confidence included, and the
registry's answer metrics computed from each `Answer`) that the summary, the thresholds and
`--calibrate` all reuse.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.choices import MODES, READERS
from rag.errors import RagError
from rag.evaluation.corpora import EvalQuestion, open_eval_set
from rag.evaluation.metrics import (
    MRR_CUTOFF,
    QuestionRecord,
    calibrate,
    candidate_thresholds,
    score_question,
)
from rag.evaluation.registry import answer_scores, check_thresholds, summarise
from rag.evaluation.report import (
    calibration_json,
    counts_line,
    file_report,
    render_calibration,
    render_kinds,
    render_metrics,
    write_json,
)
from rag.models import Mode, Query
from rag.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from rag.assistant import Assistant
    from rag.embedding import Embedder

DEFAULT_FILE = Path("eval/qa.jsonl")

VectorCache = dict[str, tuple["np.ndarray", float]]  # question -> (vector, embed ms)


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """What `rag eval` was asked to do; None takes the value from `Settings`."""

    files: tuple[Path, ...] = ()  # eval sets (default: eval/qa.jsonl)
    modes: str | None = None  # comma-separated retrieval modes (default: settings.mode)
    answerer: str | None = None
    top_k: int | None = None
    index_dir: Path | None = None  # index to ask JSON Lines questions against
    distractors: Path | None = None  # CSV of extra articles for SQuAD corpora
    corpus_dir: Path | None = None  # keep SQuAD corpus indexes here instead of a temp folder
    limit: int | None = None  # only the first N questions of each file
    readers: str | None = None  # comma-separated RAG_READER values side by side (default: one)
    calibrate_abstain: bool = False
    json_out: Path | None = None
    thresholds: Mapping[str, float | None] = field(default_factory=dict)  # click option -> bound


def parse_modes(text: str | None, default: str) -> list[Mode]:
    """`dense,bm25,hybrid` → a deduplicated list, validated against the retrieval modes."""
    names = [m.strip() for m in (text or default).split(",") if m.strip()]
    bad = [m for m in names if m not in MODES]
    if bad or not names:
        raise RagError(f"unknown mode(s) {bad or text!r}: choose from {', '.join(MODES)}")
    return list(dict.fromkeys(names))  # type: ignore[arg-type]


def parse_readers(text: str | None, default: str) -> list[str]:
    """`rules,model` → the RAG_READER values to compare, validated."""
    names = [r.strip() for r in (text or default).split(",") if r.strip()]
    bad = [r for r in names if r not in READERS]
    if bad or not names:
        raise RagError(f"unknown reader(s) {bad or text!r}: choose from {', '.join(READERS)}")
    return list(dict.fromkeys(names))


def run_questions(
    assistant: Assistant,
    questions: Sequence[EvalQuestion],
    query: Query,
    *,
    vectors: VectorCache | None = None,
    on_done: Callable[[], Any] | None = None,
) -> list[QuestionRecord]:
    """Ask every question with `query`'s options (top_k, mode, answerer; its own question is
    replaced by each one's) and score it.

    Like the service, the question is embedded first and the vector passed to `ask`; latency is
    embedding time plus `Answer.timings["total"]`, as the service reports it. `vectors` caches
    (vector, embed ms) per question so several modes embed each question once. The ranking
    metrics all read one ranking `MRR_CUTOFF` deep: a `search` with the same vector.
    """
    top_k = query.top_k or assistant.settings.top_k
    depth = max(MRR_CUTOFF, top_k)
    cache = vectors if vectors is not None else {}
    records = []
    for q in questions:
        if q.question not in cache:
            t0 = time.perf_counter()
            vector = assistant.embed([assistant.check_question(q.question)])[0]
            cache[q.question] = (vector, (time.perf_counter() - t0) * 1000)
        qvec, embed_ms = cache[q.question]
        asked = query.model_copy(update={"question": q.question, "top_k": top_k, "as_of": q.as_of})
        answer = assistant.ask(asked, query_vector=qvec)
        ranked = answer.passages
        if depth > top_k:
            ranked = assistant.search(asked, top_k=depth, query_vector=qvec).passages
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
                scores=answer_scores(answer, q),
            )
        )
        if on_done is not None:
            on_done()
    return records


def run_eval(
    config: EvalConfig,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    console: Console | None = None,
) -> tuple[int, list[str]]:
    """Evaluate each file in each mode; returns (exit code, failed-threshold lines)."""
    from rich.console import Console

    from rag.embedding import Embedder

    console = console or Console(highlight=False)
    modes = parse_modes(config.modes, settings.mode)  # a bad mode fails before the model loads
    embedder = embedder or Embedder.load(settings)  # once for every file and mode
    report: dict[str, Any] = {"files": []}
    failures: list[str] = []
    for path in config.files or (DEFAULT_FILE,):
        entry, failed = _eval_file(Path(path), modes, config, settings, embedder, console)
        report["files"].append(entry)
        failures += failed
    report["failures"] = failures
    if config.json_out is not None:
        write_json(report, config.json_out)
    return (1 if failures else 0), failures


def _eval_file(
    path: Path,
    modes: Sequence[Mode],
    config: EvalConfig,
    settings: Settings,
    embedder: Embedder,
    console: Console,
) -> tuple[dict[str, Any], list[str]]:
    """Ask one file's questions in every mode, print its tables; (JSON entry, failures)."""
    from rich.console import Console

    from rag.assistant import Assistant

    k = config.top_k or settings.top_k
    answerer = config.answerer or settings.answerer
    status = Console(stderr=True, highlight=False)
    readers = parse_readers(config.readers, settings.reader)
    records: dict[str, list[QuestionRecord]] = {}
    with open_eval_set(path, config, settings, embedder, status) as (eval_set, file_settings):
        query = Query(question="", top_k=k, answerer=config.answerer)  # the options of each ask
        for reader in readers:
            assistant = Assistant.open(
                settings=file_settings.with_overrides(reader=reader), embedder=embedder
            )
            asked = _ask_all(assistant, eval_set.questions, modes, query, status)
            for mode, recs in asked.items():
                records[f"{mode} · reader {reader}" if len(readers) > 1 else mode] = recs
    summaries = {mode: summarise(recs) for mode, recs in records.items()}
    threshold = settings.abstain_threshold
    where = "; ".join(eval_set.notes) or str(eval_set.index_dir)
    render_metrics(console, f"{path} · {where}", summaries)
    render_kinds(console, summaries)
    described = answerer if answerer != "extractive" else f"extractive · reader {','.join(readers)}"
    console.print(counts_line(next(iter(summaries.values())), k, described, threshold))
    calibration: dict[str, list[dict[str, Any]]] = {}
    if config.calibrate_abstain:
        for mode, recs in records.items():
            conf = [r.confidence for r in recs]
            rows = calibrate(
                conf, [r.answerable for r in recs], candidate_thresholds(conf, threshold)
            )
            render_calibration(console, mode, rows, threshold)
            calibration[mode] = calibration_json(rows)
    failures = check_thresholds(summaries, config.thresholds, where=str(path))
    entry = file_report(
        eval_set,
        settings,
        top_k=k,
        answerer=answerer,
        summaries=summaries,
        records=records,
        calibration=calibration,
    )
    return entry, failures


def _ask_all(
    assistant: Assistant,
    questions: Sequence[EvalQuestion],
    modes: Sequence[Mode],
    query: Query,
    status: Console,
) -> dict[str, list[QuestionRecord]]:
    """Every question in every mode (each embedded once), with a progress bar on a terminal."""
    from rich.progress import Progress

    vectors: VectorCache = {}
    results: dict[str, list[QuestionRecord]] = {}
    for mode in modes:
        if questions:  # warm-up: first-call costs are not a user's latency
            assistant.ask(Query(question=questions[0].question, mode=mode, answerer="extractive"))
        with Progress(console=status, transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task(f"{mode}", total=len(questions))
            results[mode] = run_questions(
                assistant,
                questions,
                query.model_copy(update={"mode": mode}),
                vectors=vectors,
                on_done=lambda task=task: bar.advance(task),
            )
    return results

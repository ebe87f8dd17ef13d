"""What `rag eval` prints and writes: the metrics table, the calibration table, the JSON report.

Invariants: the table has one row per registry metric, in registry order, modes as columns;
a value that cannot be measured prints as "–" (JSON null). The JSON report holds, per file,
the settings that produced it, each mode's summary and every per-question record, so any
figure can be recomputed from it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.evaluation.metrics import CalibrationRow, QuestionRecord, best_threshold
from rag.evaluation.registry import METRICS, Metric

if TYPE_CHECKING:
    from rich.console import Console

    from rag.evaluation.corpora import EvalSet
    from rag.settings import Settings


def fmt(value: Any, kind: str) -> str:
    """A table cell: shares to 3 decimals, milliseconds to 1, counts as integers."""
    if value is None:
        return "–"
    if kind == "ms":
        return f"{value:.1f}"
    if kind == "count":
        return str(value)
    return f"{value:.3f}"


def render_metrics(
    console: Console,
    title: str,
    metrics_by_mode: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[Metric] = METRICS,
) -> None:
    """Metrics as rows, modes as columns, so modes compare at a glance."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for mode in metrics_by_mode:
        table.add_column(mode, justify="right")
    for m in metrics:
        if m.section:
            table.add_section()
            table.add_row(f"[bold]{m.section}[/bold]", *[""] * len(metrics_by_mode))
        cells = [fmt(summary.get(m.key), m.fmt) for summary in metrics_by_mode.values()]
        table.add_row(f"  {m.label}", *cells)
    console.print(table)


def render_kinds(console: Console, metrics_by_mode: Mapping[str, Mapping[str, Any]]) -> None:
    """Short answers and abstention per question kind (who, when, where, how many, …)."""
    from rich.table import Table

    table = Table(
        title="by question kind: short F1 · shown right · shown · abstain recall · false abstain",
        title_justify="left",
    )
    table.add_column("kind (questions)")
    for mode in metrics_by_mode:
        table.add_column(mode, justify="right")
    kinds = dict.fromkeys(k for s in metrics_by_mode.values() for k in s.get("by_kind", {}))
    for kind in kinds:
        cells, n = [], 0
        for summary in metrics_by_mode.values():
            row = summary.get("by_kind", {}).get(kind)
            if row is None:
                cells.append("")
                continue
            n = row["questions"]
            cells.append(" · ".join(fmt(row[k], "share") for k in (
                "short_f1", "short_right", "short_shown", "abstain_recall", "false_abstain")))
        table.add_row(f"{kind} ({n})", *cells)
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
            *(fmt(v, "share") for v in (r.precision, r.recall, r.false_abstain, r.balanced)),
        )
    console.print(table)


def calibration_json(rows: Sequence[CalibrationRow]) -> list[dict[str, Any]]:
    return [{**asdict(r), "balanced": r.balanced} for r in rows]


def counts_line(summary: Mapping[str, Any], top_k: int, answerer: str, threshold: float) -> str:
    """The line under the table: question counts and the settings that matter most."""
    return (
        f"{summary['questions']} questions: {summary['answerable']} answerable, "
        f"{summary['unanswerable']} unanswerable · top_k {top_k} · "
        f"answerer {answerer} · "
        f"abstain_threshold {threshold}"
    )


def file_report(
    eval_set: EvalSet,
    settings: Settings,
    *,
    top_k: int,
    answerer: str,
    summaries: Mapping[str, Mapping[str, Any]],
    records: Mapping[str, Sequence[QuestionRecord]],
    calibration: Mapping[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """One file's entry of the JSON report."""
    return {
        "file": str(eval_set.path),
        "kind": eval_set.kind,
        "index": str(eval_set.index_dir) if eval_set.kind == "jsonl" else None,
        "documents": eval_set.documents,
        "notes": eval_set.notes,
        "settings": {
            "top_k": top_k,
            "answerer": answerer,
            "abstain_threshold": settings.abstain_threshold,
            "model": settings.model,
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap": settings.chunk_overlap,
        },
        "modes": {
            mode: {"metrics": summaries[mode], "questions": [r.to_json() for r in recs]}
            for mode, recs in records.items()
        },
        "calibration": dict(calibration) or None,
    }


def write_json(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")

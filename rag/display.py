"""Human-readable terminal output for `rag search` and `rag ask` (rich)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from rag.events import DeltaEvent, DoneEvent, StreamEvent
from rag.models import AlsoIn, Answer, Passage, Period

_console = Console(highlight=False, soft_wrap=False)


def _snippet(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def print_passages(
    passages: list[Passage],
    timings: dict[str, float],
    *,
    as_of: dt.date | None = None,
    period: Period | None = None,
) -> None:
    if not passages:
        _console.print("no matching passages")
    for p in passages:
        _console.print(
            f"[bold]{p.rank}.[/bold] [cyan]{escape(p.doc_id)}[/cyan] "
            f"[{p.start}:{p.end}]  score {p.score:.4f}  [dim]{escape(p.title)}[/dim]"
        )
        _console.print(f"   {escape(_snippet(p.text))}")
        _print_also_in(p.also_in, "   ")
        _console.print()
    _print_time(as_of, period)
    _console.print(f"[dim]{_timing_line(timings)}[/dim]")


def _print_time(as_of: dt.date | None, period: Period | None, newest: bool = False) -> None:
    """One dim line: the day asked on, the period the question named, newest first."""
    parts = [f"as of {as_of}"] if as_of else []
    if period is not None:
        parts.append(f"period {period.since or '…'} to {period.until or '…'}")
    if newest:
        parts.append("newest articles first")
    if parts:
        _console.print(f"[dim]{' · '.join(parts)}[/dim]")


def _print_also_in(entries: list[AlsoIn], indent: str) -> None:
    """The copies of a story a passage or citation lists, one line (nothing when none)."""
    if entries:
        where = "; ".join(f"{a.doc_id} [{a.start}:{a.end}]" for a in entries)
        _console.print(f"{indent}[dim]also in: {escape(where)}[/dim]")


def _timing_line(timings: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.1f} ms" for k, v in timings.items())


def print_answer_stream(events: Iterable[StreamEvent], live: bool, show: bool = True) -> Answer:
    """Consume an answer stream; print the answer (as it arrives when `live`) unless not `show`."""
    answer: Answer | None = None
    streamed = False
    for event in events:
        if isinstance(event, DeltaEvent) and live and event.text:
            sys.stdout.write(event.text)
            sys.stdout.flush()
            streamed = True
        elif isinstance(event, DoneEvent):
            answer = event.answer
    assert answer is not None
    if streamed:
        sys.stdout.write("\n")
    if show:
        print_answer(answer, answer_printed=streamed)
    return answer


def print_answer(answer: Answer, answer_printed: bool = False) -> None:
    if not answer_printed:
        _console.print(Panel(escape(answer.answer), title="answer", expand=False))
    if answer.short_answer is not None:
        sa = answer.short_answer
        _console.print(
            f"[bold]short answer:[/bold] {escape(sa.text)}  "
            f"[dim][{sa.n}] {escape(sa.doc_id)} [{sa.start}:{sa.end}][/dim]"
        )
    if answer.fallback:
        _console.print(f"[yellow]LLM unavailable, extractive answer: {answer.fallback_reason}")
    for c in answer.citations:
        earlier = " [yellow]earlier[/yellow]" if c.earlier else ""
        _console.print(
            f"[bold][{c.n}][/bold]{earlier} [cyan]{escape(c.doc_id)}[/cyan] [{c.start}:{c.end}] "
            f"[dim]{escape(c.title)}{' · ' + escape(c.date) if c.date else ''}[/dim]"
        )
        _console.print(f"    “{escape(_snippet(c.quote, 600))}”")
        if c.resolved_dates:
            days = "; ".join(f"{r.text} = {r.date}" for r in c.resolved_dates)
            _console.print(f"    [dim]days: {escape(days)}[/dim]")
        _print_also_in(c.also_in, "    ")
    if answer.abstained and answer.passages:
        _console.print("[dim]closest passages:[/dim]")
        for p in answer.passages[:3]:
            _console.print(
                f"  {p.rank}. [cyan]{escape(p.doc_id)}[/cyan] [{p.start}:{p.end}] "
                f"{escape(_snippet(p.text, 200))}"
            )
    _print_time(answer.as_of, answer.period, answer.prefer_newest)
    _console.print(f"[dim]{_timing_line(answer.timings)}[/dim]")

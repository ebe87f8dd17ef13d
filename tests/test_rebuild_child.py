"""The server's rebuilds run `build_index` in a spawned child process: its report comes back,
its errors come back as one line, and a child that dies (OOM killer, a signal) is a failed
rebuild that leaves the serving index as it was — never a dead server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest

from rag.errors import RagError
from rag.index import store
from rag.settings import Settings
from server.rebuild import build_in_child


def test_child_build_reports_like_an_in_process_build(fresh_corpus: Settings) -> None:
    report = build_in_child(fresh_corpus)
    assert report.full_rebuild and report.chunks > 0
    assert store.current_version(fresh_corpus.index_dir) == report.version
    (fresh_corpus.seeds_dir / "new.txt").write_text("Kestrel-9\n\nThe agency launched it.\n")
    again = build_in_child(fresh_corpus)
    assert again.added == ["new.txt"] and again.chunks_embedded < again.chunks


def test_child_errors_come_back_as_one_line(fresh_corpus: Settings, tmp_path: Path) -> None:
    empty = fresh_corpus.model_copy(update={"seeds_dir": tmp_path / "nothing-here"})
    with pytest.raises(RagError) as err:
        build_in_child(empty)
    assert "nothing-here" in str(err.value) and "\n" not in str(err.value)


def test_a_killed_child_is_a_failed_rebuild(fresh_corpus: Settings) -> None:
    build_in_child(fresh_corpus)
    before = store.current_version(fresh_corpus.index_dir)
    (fresh_corpus.seeds_dir / "new.txt").write_text("Kestrel-9\n\nThe agency launched it.\n")
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = build_in_child(fresh_corpus)
        except RagError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    killed = False
    while not killed and time.monotonic() < deadline:
        for child in psutil.Process().children():
            if "spawn_main" in " ".join(child.cmdline()):
                child.kill()
                killed = True
        time.sleep(0.01)
    thread.join(timeout=60)
    assert killed and not thread.is_alive()
    assert "ended without a result (exit code -9)" in str(outcome.get("error")), outcome
    assert store.current_version(fresh_corpus.index_dir) == before
    # its build lock died with it: the next rebuild goes through
    assert build_in_child(fresh_corpus).added == ["new.txt"]

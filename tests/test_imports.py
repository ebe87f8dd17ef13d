"""The shape of the code (tools/check_imports.py) and a CLI that imports only what it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import get_args

import pytest

from rag.index.indexing import build_index
from rag.index.noop import EMBED_BACKENDS, IndexSettings, Listing, UpToDate, index_if_unchanged
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "tools" / "check_imports.py"
HEAVY = {"numpy", "pydantic", "pydantic_settings", "torch", "faiss", "onnxruntime", "rich"}


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), *args], cwd=ROOT, capture_output=True, text=True
    )


def test_no_import_circles_and_rag_never_imports_server() -> None:
    run = _check()
    assert "import circles: 0\n" in run.stdout, run.stdout
    assert "rag → server imports: 0\n" in run.stdout, run.stdout
    assert run.returncode == 0


def test_modules_and_functions_stay_small() -> None:
    run = _check()
    assert "(functions) in rag, server: 0\n" in run.stdout, run.stdout


def test_the_checker_finds_circles_and_upward_imports(tmp_path: Path) -> None:
    sys.path.insert(0, str(CHECKER.parent))
    try:
        import check_imports as ci
    finally:
        sys.path.pop(0)
    for package, files in {
        "rag": {"__init__.py": "", "a.py": "def f():\n    from rag import b\n", "b.py": ""},
        "server": {"__init__.py": "", "x.py": "from rag.a import f\n"},
        "bench": {"__init__.py": ""},
    }.items():
        (tmp_path / package).mkdir()
        for name, text in files.items():
            (tmp_path / package / name).write_text(text)
    (tmp_path / "rag" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rag.a import f\n"
        "from server import x\n"
    )
    modules = ci.find_modules(tmp_path)
    edges = [e for m, p in modules.items() for e in ci.edges_of(m, p, modules)]
    [circle] = ci.cycles(edges)  # a lazy import and a TYPE_CHECKING one count too
    assert circle.members == ["rag.a", "rag.b", "server.x"]
    assert circle.path == ["rag.a", "rag.b", "rag.a"]
    assert [(e.source, e.target) for e in ci.upward_edges(edges)] == [("rag.b", "server.x")]


def test_caches_register_themselves_with_the_memory_report() -> None:
    from rag.ingest import tokens  # noqa: F401
    from rag.memory import cache_stats

    names = {"lexical.stem", "lexical.stemmer", "short_answer.layout", "short_answer.stems"}
    names |= {"embedding.models", "tokens.cl100k", "snapshots.loaded"}
    assert names <= set(cache_stats())
    memory = ROOT / "rag" / "memory.py"
    assert "from rag" not in memory.read_text()  # it reaches into no other module


def _modules_after(*argv: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """Run the `rag` console script's main with `argv` in a fresh interpreter: its exit code,
    the modules it imported and its stdout."""
    script = textwrap.dedent(
        """
        import json, sys
        from server.cli import main
        code = 0
        try:
            main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code or 0
        print(json.dumps([code, sorted(sys.modules)]))
        """
    )
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("RAG_")}
    run = subprocess.run(
        [sys.executable, "-c", script, *argv],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    *printed, last = run.stdout.strip().splitlines()
    code, modules = json.loads(last)
    return code, {m.split(".")[0] for m in modules}, "\n".join(printed)


def test_help_and_a_no_op_index_import_nothing_heavy(seeds_settings: Settings) -> None:
    code, modules, _ = _modules_after("--help")
    assert code == 0 and not modules & HEAVY, modules & HEAVY
    paths = ["--seeds", str(seeds_settings.seeds_dir), "--index", str(seeds_settings.index_dir)]
    code, modules, out = _modules_after("index", *paths)
    assert code == 0 and out.startswith("index up to date: 3 documents")
    assert not modules & HEAVY, modules & HEAVY
    # a setting the fast path does not read: the full path (pydantic), same answer
    code, modules, slow = _modules_after("index", *paths, env={"RAG_TOP_K": "7"})
    assert code == 0 and slow.split(" (")[0] == out.split(" (")[0] and "pydantic" in modules
    code, _, _ = _modules_after("index", *paths, env={"RAG_TOP_K": "0"})  # still validated
    assert code == 2


def test_the_fast_path_reports_what_a_build_reports(seeds_settings: Settings) -> None:
    s = seeds_settings
    quick = index_if_unchanged({}, seeds_dir=s.seeds_dir, index_dir=s.index_dir)
    report = build_index(s, progress=False)
    assert isinstance(quick, UpToDate) and report.reason == quick.reason == "up to date"
    assert (quick.version, quick.documents, quick.chunks, quick.copy_groups, quick.warnings) == (
        report.version,
        report.documents,
        report.chunks,
        report.copy_groups,
        report.warnings,
    )


def test_without_an_index_the_fast_path_hands_over_its_listing(tmp_path: Path) -> None:
    found = index_if_unchanged({}, seeds_dir=ROOT / "seeds", index_dir=tmp_path / "index")
    assert isinstance(found, Listing) and len(found.files) == 3


def test_fast_path_settings_are_settings_defaults() -> None:
    light = IndexSettings()
    for name in IndexSettings.__dataclass_fields__:
        assert getattr(light, name) == Settings.model_fields[name].default, name
    assert set(EMBED_BACKENDS) == set(get_args(Settings.model_fields["embed_backend"].annotation))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, IndexSettings()),
        ({"PATH": "/bin", "RAG_SEEDS_DIR": "a"}, IndexSettings(seeds_dir=Path("a"))),
        ({"RAG_EMBED_BACKEND": "torch"}, IndexSettings(embed_backend="torch")),
        ({"RAG_EMBED_BACKEND": "tpu"}, None),  # Settings says why
        ({"RAG_SEEDS_DIR": ""}, None),
        ({"RAG_CHUNK_TOKENS": "64"}, None),  # read by Settings only
        ({"rag_seeds_dir": "a"}, None),  # pydantic-settings' case-insensitive names
    ],
)
def test_fast_path_reads_few_variables_and_leaves_the_rest_to_settings(
    environ: dict[str, str], expected: IndexSettings | None
) -> None:
    assert IndexSettings.read(environ) == expected
    assert IndexSettings.read(environ, index_dir=Path("x")) == (
        None if expected is None else IndexSettings(**{**_fields(expected), "index_dir": Path("x")})
    )


def _fields(s: IndexSettings) -> dict[str, object]:
    return {name: getattr(s, name) for name in IndexSettings.__dataclass_fields__}

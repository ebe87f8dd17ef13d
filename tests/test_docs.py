"""The docs stay true to the code and to each other.

- docs/settings.md is what docs/gen_settings.py renders from rag/settings.py now (a new or
  changed setting fails here until `.venv/bin/python docs/gen_settings.py` is run);
- README.md stays short enough to be read to the end;
- every relative link in README.md and docs/*.md points at a file that exists (and, for a
  `#fragment` into a Markdown file, at one of its headings);
- `make serve` installs only what serving needs and `make test` everything the suite needs
  (checked with `make -n`, which runs nothing).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 250

# Linked before they are committed; remove an entry once its file is in the repository.

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_settings", ROOT / "docs" / "gen_settings.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def without_code(text: str) -> str:
    """Markdown text with fenced blocks and inline code removed (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(without_code(path.read_text(encoding="utf-8")))
    return [t for t in links if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


def test_settings_doc_is_generated_from_the_code():
    gen = load_generator()
    committed = gen.OUTPUT.read_text(encoding="utf-8")
    assert committed == gen.render(), (
        "docs/settings.md is stale: run `.venv/bin/python docs/gen_settings.py`"
    )


def test_settings_doc_lists_every_setting():
    from rag.settings import Settings

    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [n for n in Settings.model_fields if f"`RAG_{n.upper()}`" not in text]
    assert not missing


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move details to docs/"
    )


def test_slug_matches_github():
    assert slug("Index builds: memory and the no-op") == "index-builds-memory-and-the-no-op"
    assert slug("`rag eval`") == "rag-eval"
    assert slug("Where the 6.9 GiB went (the old build code)") == (
        "where-the-69-gib-went-the-old-build-code"
    )


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path):
    broken = []
    for target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def dry_run(target: str, tmp_path: Path) -> str:
    """`make -n TARGET` in a copy of the build files with no .venv: what a fresh clone runs."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    # run from `make test` too: the parent make's variables would make this a sub-make
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=tmp_path, capture_output=True, text=True, check=True, env=env,
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_serve_installs_only_what_serving_needs(tmp_path: Path):
    out = dry_run("serve", tmp_path)
    installs = [line for line in out.splitlines() if " install " in line]
    assert any("torch==2.13.0" in line for line in installs)
    assert any(line.rstrip().endswith("-e .") for line in installs)
    assert not any("[" in line for line in installs), "serving installs no extras"
    assert "chromium" not in out
    assert out.rstrip().endswith("rag serve")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_test_installs_the_whole_suite(tmp_path: Path):
    out = dry_run("test", tmp_path)
    assert '-e ".[dev,local-llm,scale]"' in out
    assert "apt-get install -y -q chromium" in out
    assert out.splitlines()[-2:] == [".venv/bin/ruff check .", ".venv/bin/pytest -q"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_installs_once(tmp_path: Path):
    dry_run("test", tmp_path)  # copies the files
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    later = time.time() + 60  # stamps newer than the copied files, the test's after serve's
    for stamp, at in ((".serve-deps", later), (".llm-deps", later + 1), (".test-deps", later + 1)):
        (venv / stamp).touch()
        os.utime(venv / stamp, (at, at))
    for target in ("serve", "test", "llm"):
        out = subprocess.run(
            ["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout
        assert "pip install" not in out, f"make {target} would install again"

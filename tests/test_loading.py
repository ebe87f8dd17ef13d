"""Loading real files from disk: metadata, normalisation, and every way a file can be skipped."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import pytest

from rag.errors import CorpusError
from rag.ingest.loading import load_document, load_documents, scan_files
from rag.models import Document, LoadWarning

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
BODY = "First sentence of the article. Second sentence follows here.\n"


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def by_id(docs: list[Document]) -> dict[str, Document]:
    return {d.id: d for d in docs}


def reasons_for(warnings: list[LoadWarning], path: str) -> list[str]:
    return [w.reason for w in warnings if w.path == path]


# --- the real seeds ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_docs() -> dict[str, Document]:
    docs, warnings = load_documents(SEEDS)
    assert warnings == []
    return by_id(docs)


def test_seed_ids(seed_docs: dict[str, Document]) -> None:
    assert list(seed_docs) == [
        "000_2e40f42646a43cae.txt",
        "001_d02ccc4d9c9c05cf.txt",
        "002_ada552b2d9cfc3c4.txt",
    ]


def test_seed_000_menafn_source_and_dateline(seed_docs: dict[str, Document]) -> None:
    doc = seed_docs["000_2e40f42646a43cae.txt"]
    assert doc.source == "Kuwait News Agency (KUNA)"
    assert doc.dateline == "CAIRO, Feb 9"
    assert (doc.date, doc.date_source) == ("--02-09", "dateline")  # no year given: partial
    assert doc.title.startswith("The Arab Parliament on Friday called on the Non-Aligned")
    assert "MENAFN" not in doc.title and "CAIRO" not in doc.title
    assert doc.title.endswith("…") and len(doc.title) <= 80


def test_seed_001_headline_title(seed_docs: dict[str, Document]) -> None:
    doc = seed_docs["001_d02ccc4d9c9c05cf.txt"]
    assert doc.title == "Iran Urges NAM’s Action against Israeli Violation of Palestinian Rights"
    assert doc.source == "Tasnim"
    assert doc.dateline == "TEHRAN"


def test_seed_002_first_sentence_title(seed_docs: dict[str, Document]) -> None:
    doc = seed_docs["002_ada552b2d9cfc3c4.txt"]
    assert doc.title == (
        "The Parliamentary Network of the Non-Aligned Movement was established during…"
    )
    assert len(doc.title) <= 80
    assert doc.source is None and doc.dateline is None and doc.date is None


def test_seed_sha256_and_text(seed_docs: dict[str, Document]) -> None:
    for doc_id, doc in seed_docs.items():
        raw = (SEEDS / doc_id).read_bytes()
        assert doc.sha256 == hashlib.sha256(raw).hexdigest()
        assert doc.text == raw.decode("utf-8").strip()


# --- normalisation ------------------------------------------------------------------------------


def test_bom_stripped(tmp_path: Path) -> None:
    raw = b"\xef\xbb\xbf" + BODY.encode()
    write(tmp_path, "bom.txt", raw)
    docs, warnings = load_documents(tmp_path)
    assert docs[0].text == BODY.strip()
    assert docs[0].sha256 == hashlib.sha256(raw).hexdigest()
    assert warnings == []


def test_crlf_and_cr_normalised(tmp_path: Path) -> None:
    write(tmp_path, "crlf.txt", "Headline\r\n\r\nLine one.\r\nLine two.\rLine three.\r\n")
    doc = load_documents(tmp_path)[0][0]
    assert doc.text == "Headline\n\nLine one.\nLine two.\nLine three."
    assert doc.title == "Headline"


def test_nfc_normalised(tmp_path: Path) -> None:
    write(tmp_path, "nfc.txt", "Caf" + "e\u0301" + " opens in the city. More text.")
    doc = load_documents(tmp_path)[0][0]
    assert doc.text.startswith("Café opens")
    assert "\u0301" not in doc.text


def test_control_chars_replaced(tmp_path: Path) -> None:
    write(tmp_path, "ctl.txt", "Alpha\x0bbeta\x07gamma\tdelta. More words here to read.")
    doc = load_documents(tmp_path)[0][0]
    assert doc.text == "Alpha beta gamma\tdelta. More words here to read."


def test_invalid_utf8_replaced_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "latin.txt", "Caf\xe9 society grows. It is a long story.".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loading"):
        docs, warnings = load_documents(tmp_path)
    assert docs[0].text.startswith("Caf\ufffd society")
    assert reasons_for(warnings, "latin.txt") == ["invalid UTF-8 bytes replaced"]
    assert "latin.txt" in caplog.text
    # load_document alone still returns the document.
    assert isinstance(load_document(tmp_path / "latin.txt", tmp_path), Document)


# --- skipped files ----------------------------------------------------------------------------


def test_binary_skipped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "ok.txt", BODY)
    write(tmp_path, "nul.txt", b"PK\x03\x04\x00\x00binary")
    write(tmp_path, "ctl.txt", bytes(range(1, 9)) * 50)
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loading"):
        docs, warnings = load_documents(tmp_path)
    assert [d.id for d in docs] == ["ok.txt"]
    assert "binary file" in reasons_for(warnings, "nul.txt")[0]
    assert "binary file" in reasons_for(warnings, "ctl.txt")[0]
    assert "nul.txt" in caplog.text and "ctl.txt" in caplog.text


def test_empty_and_whitespace_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "ok.txt", BODY)
    write(tmp_path, "empty.txt", "")
    write(tmp_path, "blank.md", " \n\t\r\n  ")
    write(tmp_path, "blank.html", "<html><head><title>T</title></head><body> <script>x</script>")
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loading"):
        docs, warnings = load_documents(tmp_path)
    assert [d.id for d in docs] == ["ok.txt"]
    for name in ("empty.txt", "blank.md", "blank.html"):
        assert "empty" in reasons_for(warnings, name)[0]
        assert name in caplog.text


def test_hidden_and_other_extensions_ignored_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "a.txt", BODY)
    write(tmp_path, "B.TXT", BODY)
    write(tmp_path, "c.Markdown", BODY)
    write(tmp_path, ".hidden.txt", BODY)
    write(tmp_path, ".git/notes.txt", BODY)
    write(tmp_path, "sub/.cache/x.md", BODY)
    write(tmp_path, "image.png", b"\x89PNG\x00")
    write(tmp_path, "data.json", "{}")
    write(tmp_path, "README", BODY)
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loading"):
        docs, warnings = load_documents(tmp_path)
    assert [d.id for d in docs] == ["B.TXT", "a.txt", "c.Markdown"]
    assert warnings == []
    assert caplog.records == []


def test_symlink_outside_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seeds, outside = tmp_path / "seeds", tmp_path / "outside"
    write(seeds, "real.txt", BODY)
    write(outside, "secret.txt", BODY)
    (seeds / "leak.txt").symlink_to(outside / "secret.txt")
    (seeds / "leakdir").symlink_to(outside, target_is_directory=True)
    (seeds / "alias.txt").symlink_to(seeds / "real.txt")
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loading"):
        docs, warnings = load_documents(seeds)
    assert [d.id for d in docs] == ["alias.txt", "real.txt"]
    assert "outside" in reasons_for(warnings, "leak.txt")[0]
    assert "outside" in reasons_for(warnings, "leakdir")[0]
    assert "leak.txt" in caplog.text
    result = load_document(seeds / "leak.txt", seeds)
    assert isinstance(result, LoadWarning) and "outside" in result.reason


def test_symlink_cycle_does_not_loop(tmp_path: Path) -> None:
    write(tmp_path, "sub/a.txt", BODY)
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    docs, _ = load_documents(tmp_path)
    assert [d.id for d in docs] == ["sub/a.txt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read chmod 000")
def test_unreadable_file_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "ok.txt", BODY)
    locked = write(tmp_path, "locked.txt", BODY)
    locked.chmod(0)
    try:
        with caplog.at_level(logging.WARNING, logger="rag.ingest.loading"):
            docs, warnings = load_documents(tmp_path)
    finally:
        locked.chmod(0o644)
    assert [d.id for d in docs] == ["ok.txt"]
    assert "Permission denied" in reasons_for(warnings, "locked.txt")[0]
    assert "locked.txt" in caplog.text


def test_file_deleted_after_scan_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "gone.txt", BODY)
    (path,) = scan_files(tmp_path)
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="rag.ingest.loading"):
        result = load_document(path, tmp_path)
    assert isinstance(result, LoadWarning)
    assert result.path == "gone.txt"
    assert "No such file or directory" in result.reason
    assert "gone.txt" in caplog.text


# --- formats ----------------------------------------------------------------------------------


def test_html_drops_chrome_and_keeps_blocks(tmp_path: Path) -> None:
    html = """<!DOCTYPE html><html><head><title>Page title | Site</title>
    <style>p { color: red }</style><script>var tracking = 1;</script></head><body>
    <nav><h1>Site logo</h1><a href="/">Home</a></nav>
    <article><h1>Storm   hits the coast</h1>
    <p>Heavy   rain <b>fell</b>
    overnight.</p><p>Roads closed<br>Schools shut</p>
    <noscript>Enable JS</noscript><template><p>hidden</p></template><!-- a comment -->
    <ul><li>one</li><li>two</li></ul></article>
    <footer>Copyright</footer><script>alert(1)</script></body></html>"""
    write(tmp_path, "storm.html", html)
    doc = load_documents(tmp_path)[0][0]
    assert doc.title == "Storm hits the coast"
    assert doc.text == (
        "Storm hits the coast\n\nHeavy rain fell overnight.\n\nRoads closed\nSchools shut"
        "\n\none\ntwo"
    )
    for junk in ("tracking", "color", "Site logo", "Home", "Copyright", "Enable JS", "hidden"):
        assert junk not in doc.text


def test_html_title_from_title_tag(tmp_path: Path) -> None:
    html = "<html><head><title> The  page title </title></head><body><div>Body text here."
    write(tmp_path, "t.HTM", html + " More.</div></body></html>")
    doc = load_documents(tmp_path)[0][0]
    assert doc.title == "The page title"
    assert doc.text == "Body text here. More."


def test_markdown_front_matter(tmp_path: Path) -> None:
    write(
        tmp_path,
        "post.md",
        '---\ntitle: "Front title"\nsource: Example Wire\ndate: 2024-03-05\n---\n'
        "# Heading in body\n\nSome **markdown** text. Another sentence.\n",
    )
    doc = load_documents(tmp_path)[0][0]
    assert doc.title == "Front title"
    assert doc.source == "Example Wire"
    assert doc.date == "2024-03-05"
    assert doc.text == "# Heading in body\n\nSome **markdown** text. Another sentence."


def test_markdown_heading_title_without_front_matter(tmp_path: Path) -> None:
    write(tmp_path, "post.md", "## A heading.\nText right below it. More.\n")
    doc = load_documents(tmp_path)[0][0]
    assert doc.title == "A heading."
    assert doc.text.startswith("## A heading.")


def test_dateline_with_year_gives_date(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.txt",
        "Markets slide on rate fears\n\n"
        "LONDON, March 3, 2024 (Reuters) - Stocks fell sharply on Monday. Bonds rallied.\n",
    )
    write(tmp_path, "ap.txt", "WASHINGTON (AP) — The U.S. Senate voted on Tuesday. Then left.")
    docs = by_id(load_documents(tmp_path)[0])
    reuters = docs["r.txt"]
    assert (reuters.title, reuters.source) == ("Markets slide on rate fears", "Reuters")
    assert (reuters.dateline, reuters.date) == ("LONDON, March 3, 2024", "2024-03-03")
    ap = docs["ap.txt"]
    assert (ap.source, ap.dateline, ap.date) == ("AP", "WASHINGTON", None)
    assert ap.title == "The U.S. Senate voted on Tuesday"


def test_sentence_ending_first_line_is_not_a_headline(tmp_path: Path) -> None:
    write(tmp_path, "s.txt", "A short sentence.\n\nAnother paragraph.")
    assert load_documents(tmp_path)[0][0].title == "A short sentence"


# --- layout, order, errors --------------------------------------------------------------------


def test_recursion_posix_ids_and_order(tmp_path: Path) -> None:
    for rel in ("b.txt", "a/z.md", "a/b/c.html", "A.txt", "a.txt"):
        write(tmp_path, rel, BODY if not rel.endswith(".html") else f"<p>{BODY}</p>")
    expected = ["A.txt", "a.txt", "a/b/c.html", "a/z.md", "b.txt"]
    assert [d.id for d in load_documents(tmp_path)[0]] == expected
    assert [p.relative_to(tmp_path).as_posix() for p in scan_files(tmp_path)] == expected


def test_deterministic_across_copies(tmp_path: Path) -> None:
    first = load_documents(SEEDS)[0]
    copy = tmp_path / "copy"
    shutil.copytree(SEEDS, copy)
    assert load_documents(copy)[0] == first


def test_load_document_matches_load_documents(tmp_path: Path) -> None:
    path = write(tmp_path, "sub/one.txt", BODY)
    assert load_document(path, tmp_path) == load_documents(tmp_path)[0][0]


def test_missing_dir_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(CorpusError, match=r"seeds directory not found: .*nope.*--seeds"):
        load_documents(missing)
    file = write(tmp_path, "file.txt", BODY)
    with pytest.raises(CorpusError, match="seeds directory not found"):
        load_documents(file)


def test_empty_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"no articles found in .*: add \.txt, \.md or \.html"):
        load_documents(tmp_path)
    write(tmp_path, "empty.txt", "")
    write(tmp_path, "notes.json", "{}")
    with pytest.raises(CorpusError, match="no articles found"):
        load_documents(tmp_path)

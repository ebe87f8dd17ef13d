"""The streaming build: stat fast path and --verify, renames copied, leftovers swept, disk full."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import Embedder
from rag.index import store
from rag.index.indexing import build_index
from rag.retrieve.retrieval import Snapshot
from rag.settings import Settings
from tests.conftest import ROOT
from tests.test_indexing import NEW_ARTICLE

DOC = "001_d02ccc4d9c9c05cf.txt"


def _manifest(s: Settings) -> dict:
    return store.read_manifest(store.version_path(s.index_dir)[1])


def test_noop_from_stat_and_verify_sees_what_stat_cannot(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    first = build_index(s, embedder=embedder, progress=False)
    files = _manifest(s)["files"]
    st = (s.seeds_dir / DOC).stat()
    assert files[DOC] == [st.st_size, st.st_mtime_ns, st.st_ino]
    assert build_index(s, embedder=embedder, progress=False).reason == "up to date"

    # same size, mtime restored (what `touch -d` / `rsync --times` can do): stat can't see it
    path = s.seeds_dir / DOC
    text = path.read_text()
    swapped = text.replace("the", "THE", 1)
    assert swapped != text and len(swapped.encode()) == len(text.encode())
    path.write_text(swapped)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    blind = build_index(s, embedder=embedder, progress=False)
    assert blind.reason == "up to date" and blind.version == first.version
    # --verify hashes every file and finds it
    verified = build_index(s, verify=True, embedder=embedder, progress=False)
    assert verified.changed == [DOC] and verified.chunks_embedded > 0
    assert verified.unchanged == 2


def test_touch_refreshes_stats_without_a_new_version(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    first = build_index(s, embedder=embedder, progress=False)
    path = s.seeds_dir / DOC
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    report = build_index(s, embedder=embedder, progress=False)
    assert report.reason == "up to date" and report.version == first.version
    assert _manifest(s)["files"][DOC][1] == path.stat().st_mtime_ns  # the next no-op is fast
    assert len(list((s.index_dir / store.VERSIONS).iterdir())) == 1


def test_rename_and_duplicate_are_copied_not_embedded(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    build_index(s, embedder=embedder, progress=False)
    before = Snapshot.load(s.index_dir)
    (s.seeds_dir / DOC).rename(s.seeds_dir / "renamed.txt")
    (s.seeds_dir / "new-a.txt").write_text(NEW_ARTICLE)
    (s.seeds_dir / "new-b.txt").write_text(NEW_ARTICLE)  # a duplicate within one build
    report = build_index(s, embedder=embedder, progress=False)
    assert report.added == ["new-a.txt", "new-b.txt", "renamed.txt"]
    assert report.removed == [DOC]
    after = Snapshot.load(s.index_dir)
    lo, hi = after.doc_chunks["new-a.txt"]
    assert report.chunks_embedded == hi - lo  # new-b and renamed were copied
    old, new = before.doc_chunks[DOC], after.doc_chunks["renamed.txt"]
    assert np.array_equal(
        before.data.chunk_vectors[old[0] : old[1]], after.data.chunk_vectors[new[0] : new[1]]
    )
    b_lo, b_hi = after.doc_chunks["new-b.txt"]
    assert np.array_equal(after.data.chunk_vectors[lo:hi], after.data.chunk_vectors[b_lo:b_hi])
    for c in after.chunks:
        assert c.id == f"{c.doc_id}#{c.ordinal}"
        assert after.docs[c.doc_id].text[c.start : c.end] == c.text
    sent = after.data.sentences
    for i, doc_id in enumerate(sent.doc_ids):
        assert after.chunks[int(sent.chunk_rows[i])].doc_id == doc_id


def test_skipped_files_warn_again_on_noop_and_leftovers_are_swept(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    (s.seeds_dir / "blob.txt").write_bytes(b"\x00\x01binary\x00" * 50)
    first = build_index(s, embedder=embedder, progress=False)
    assert any("blob.txt" in w for w in first.warnings)
    debris = s.index_dir / store.VERSIONS / ".tmp-v20000101T000000-000000-1"
    debris.mkdir()
    (debris / "chunk_vectors.npy").write_bytes(b"half")
    again = build_index(s, embedder=embedder, progress=False)
    assert again.reason == "up to date" and again.warnings == first.warnings
    assert not debris.exists()  # swept under the lock, even by a no-op


_ENOSPC = textwrap.dedent(
    """
    import errno, sys
    from rag.index import npy_stream
    from rag.cli import main

    real = npy_stream.NpyAppender.append
    calls = [0]

    def append(self, block):
        calls[0] += 1
        if calls[0] > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real(self, block)

    npy_stream.NpyAppender.append = append
    main(sys.argv[1:])
    """
)


def _rag(*args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "rag.cli"]
    return subprocess.run(
        cmd if script else [*cmd, *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _assert_disk_full_handled(s: Settings, proc: subprocess.CompletedProcess[str], live: str):
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line, line
    assert line.startswith("error: disk full while writing the index in ")
    assert str(s.index_dir / store.VERSIONS) in line and "MiB" in line
    assert store.current_version(s.index_dir) == live
    assert not [p for p in (s.index_dir / store.VERSIONS).iterdir() if p.name.startswith(".tmp")]
    assert len(Snapshot.load(s.index_dir).docs) == 3


def test_disk_full_at_the_write_layer_is_one_clear_error(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    live = build_index(s, embedder=embedder, progress=False).version
    assert live
    (s.seeds_dir / "new.txt").write_text(NEW_ARTICLE)
    args = ("index", "--seeds", str(s.seeds_dir), "--index", str(s.index_dir))
    _assert_disk_full_handled(s, _rag(*args, script=_ENOSPC), live)
    report = build_index(s, embedder=embedder, progress=False)  # space back: it just works
    assert report.added == ["new.txt"]


def test_disk_full_on_a_real_small_filesystem(tmp_path: Path, embedder: Embedder) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        seeds = tmp_path / "seeds"
        shutil.copytree(ROOT / "seeds", seeds)
        s = Settings(seeds_dir=seeds, index_dir=mnt / "index")
        live = build_index(s, embedder=embedder, progress=False).version
        assert live
        free = shutil.disk_usage(mnt).free
        with open(mnt / "filler", "wb") as fh:  # leave less than a version needs
            fh.write(b"\0" * (free - 64 * 1024))
        (seeds / "new.txt").write_text(NEW_ARTICLE)
        args = ("index", "--seeds", str(seeds), "--index", str(s.index_dir))
        _assert_disk_full_handled(s, _rag(*args), live)
        assert json.loads((mnt / "index" / store.VERSIONS / live / "manifest.json").read_text())
        (mnt / "filler").unlink()
        assert build_index(s, embedder=embedder, progress=False).added == ["new.txt"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_list_files_matches_the_loader_without_reading(tmp_path: Path) -> None:
    from rag.ingest.loading import list_files, scan_files

    seeds = tmp_path / "seeds"
    (seeds / "sub" / "deeper").mkdir(parents=True)
    (seeds / "b.txt").write_text("Bee.\n")
    (seeds / "sub" / "a.md").write_text("# A\n\nText.\n")
    (seeds / "sub" / "deeper" / "c.html").write_text("<p>See.</p>")
    (seeds / "skip.pdf").write_text("no")
    (seeds / ".hidden.txt").write_text("no")
    (tmp_path / "outside.txt").write_text("Out.\n")
    (seeds / "link.txt").symlink_to(tmp_path / "outside.txt")
    (seeds / "loop").symlink_to(seeds)  # a directory cycle is walked once
    files, warnings = list_files(seeds)
    assert [f.doc_id for f in files] == ["b.txt", "sub/a.md", "sub/deeper/c.html"]
    assert [Path(f.path) for f in files] == scan_files(seeds)
    assert [w.path for w in warnings] == ["link.txt"]
    st = (seeds / "sub" / "a.md").stat()
    assert files[1].key == [st.st_size, st.st_mtime_ns, st.st_ino]

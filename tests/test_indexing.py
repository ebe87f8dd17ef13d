"""The index pipeline end to end: incremental updates, crash safety, locking, determinism."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.errors import CorpusError, IndexStoreError
from rag.index import store
from rag.index.indexing import build_index
from rag.retrieve.retrieval import Snapshot, retrieve
from rag.settings import Settings
from tests.conftest import ROOT, SEEDS, make_settings

NEW_ARTICLE = (
    "Zorbia Launches Kestrel-9\n\n"
    "VELL (ZNA) -- The Zorbian Space Agency launched the satellite Kestrel-9 on 3 March 2031 "
    "from the Vell spaceport. The agency said the satellite will map glaciers.\n"
)


def _rows_by_doc(snap: Snapshot, doc_id: str) -> np.ndarray:
    lo, hi = snap.doc_chunks[doc_id]
    return snap.data.chunk_vectors[lo:hi]


def test_full_then_incremental(fresh_corpus: Settings, embedder: Embedder) -> None:
    s = fresh_corpus
    first = build_index(s, embedder=embedder, progress=False)
    assert first.full_rebuild and len(first.added) == 3
    assert first.chunks_embedded == first.chunks > 3
    before = Snapshot.load(s.index_dir)

    again = build_index(s, embedder=embedder, progress=False)
    assert again.reason == "up to date" and again.chunks_embedded == 0
    assert store.current_version(s.index_dir) == first.version  # no new version written

    # change one, add one, remove one
    changed = s.seeds_dir / "001_d02ccc4d9c9c05cf.txt"
    changed.write_text(changed.read_text() + "\n\nA new closing paragraph was added today.\n")
    (s.seeds_dir / "new.txt").write_text(NEW_ARTICLE)
    (s.seeds_dir / "002_ada552b2d9cfc3c4.txt").unlink()
    report = build_index(s, embedder=embedder, progress=False)
    assert not report.full_rebuild
    assert report.added == ["new.txt"]
    assert report.changed == ["001_d02ccc4d9c9c05cf.txt"]
    assert report.removed == ["002_ada552b2d9cfc3c4.txt"]
    assert report.unchanged == 1
    after = Snapshot.load(s.index_dir)
    n_changed = after.doc_chunks["001_d02ccc4d9c9c05cf.txt"]
    n_new = after.doc_chunks["new.txt"]
    assert report.chunks_embedded == (n_changed[1] - n_changed[0]) + (n_new[1] - n_new[0])
    # the unchanged article's vectors were reused, byte for byte
    kept = "000_2e40f42646a43cae.txt"
    assert np.array_equal(_rows_by_doc(before, kept), _rows_by_doc(after, kept))
    assert "002_ada552b2d9cfc3c4.txt" not in after.docs
    # sentence rows of reused and new documents point at chunks of their own document
    sent = after.data.sentences
    for i, doc_id in enumerate(sent.doc_ids):
        assert after.chunks[int(sent.chunk_rows[i])].doc_id == doc_id
        text = after.docs[doc_id].text
        assert text[int(sent.starts[i]) : int(sent.ends[i])].strip()


def test_settings_change_forces_full_rebuild(fresh_corpus: Settings, embedder: Embedder) -> None:
    build_index(fresh_corpus, embedder=embedder, progress=False)
    smaller = fresh_corpus.with_overrides(chunk_tokens=64)
    report = build_index(smaller, embedder=embedder, progress=False)
    assert report.full_rebuild and "settings changed" in report.reason
    forced = build_index(smaller, rebuild=True, embedder=embedder, progress=False)
    assert forced.full_rebuild and forced.chunks_embedded == forced.chunks


def test_builds_are_deterministic(tmp_path: Path, embedder: Embedder) -> None:
    results = []
    for name in ("a", "b"):
        s = make_settings(SEEDS, tmp_path / name)
        build_index(s, embedder=embedder, progress=False)
        snap = Snapshot.load(s.index_dir)
        queries = ["Arab Parliament Gaza", "Who is Jeyhun Bayramov?", "NAM network Baku 2019"]
        ranked = []
        for q in queries:
            qvec = embedder.encode_queries([q])[0]
            for mode in ("dense", "bm25", "hybrid"):
                hits = retrieve(snap, q, qvec, mode=mode, top_k=5)  # type: ignore[arg-type]
                ranked.append([(p.doc_id, p.start, p.end, p.score) for p in hits])
        chunks = [(c.id, c.doc_id, c.start, c.end, c.n_tokens, c.n_tiktoken) for c in snap.chunks]
        results.append((chunks, ranked, snap.data.chunk_vectors.copy()))
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1]
    assert np.array_equal(results[0][2], results[1][2])


def test_manifest_contents(seeds_settings: Settings) -> None:
    _, path = store.version_path(seeds_settings.index_dir)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == store.FORMAT_VERSION
    assert manifest["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["model"]["dim"] == 384 and manifest["model"]["max_seq_length"] == 256
    assert set(manifest["documents"]) == {p.name for p in SEEDS.iterdir()}
    assert manifest["counts"]["chunks"] > 0 and manifest["chunker"]["max_tokens"] == 128
    assert manifest["dense_index"] == "flat"
    for name in ("tables.sqlite", "chunk_vectors.npy", "sentence_vectors.npy", "dense.faiss"):
        assert (path / name).is_file()
    assert (path / "bm25").is_dir()


def test_hnsw_index_selectable(fresh_corpus: Settings, embedder: Embedder) -> None:
    s = fresh_corpus.with_overrides(index_type="hnsw")
    build_index(s, embedder=embedder, progress=False)
    snap = Snapshot.load(s.index_dir)
    assert snap.manifest.dense_index == "hnsw"
    assert snap.dense.kind == "hnsw"
    assert type(snap.dense.index).__name__ == "IndexHNSWFlat"  # type: ignore[attr-defined]
    qvec = embedder.encode_queries(["Iranian foreign minister"])[0]
    assert retrieve(snap, "Iranian foreign minister", qvec, mode="dense", top_k=3)
    # switching back to flat rewrites the index without re-embedding
    report = build_index(fresh_corpus, embedder=embedder, progress=False)
    assert report.chunks_embedded == 0 and report.reason == "incremental"
    assert Snapshot.load(s.index_dir).manifest.dense_index == "flat"


def test_bad_files_are_skipped_and_named(fresh_corpus: Settings, embedder: Embedder) -> None:
    (fresh_corpus.seeds_dir / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (fresh_corpus.seeds_dir / "empty.md").write_text("   \n\n")
    report = build_index(fresh_corpus, embedder=embedder, progress=False)
    assert report.documents == 3
    assert any("blob.txt" in w for w in report.warnings)
    assert any("empty.md" in w for w in report.warnings)


def test_empty_or_missing_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        build_index(make_settings(tmp_path / "nope", tmp_path / "index"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no articles"):
        build_index(make_settings(tmp_path / "empty", tmp_path / "index"))


def test_second_build_refused_while_locked(fresh_corpus: Settings, embedder: Embedder) -> None:
    s = fresh_corpus.with_overrides(lock_timeout=0.3)
    with store.build_lock(s.index_dir, timeout=0):
        t0 = time.monotonic()
        with pytest.raises(IndexStoreError, match="another build"):
            build_index(s, embedder=embedder, progress=False)
        assert time.monotonic() - t0 >= 0.3
    build_index(s, embedder=embedder, progress=False)  # free again


def test_corrupt_or_missing_index_errors_name_the_fix(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    with pytest.raises(IndexStoreError, match="run `rag index`"):
        Snapshot.load(s.index_dir)
    build_index(s, embedder=embedder, progress=False)
    name, path = store.version_path(s.index_dir)

    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 999}))
    with pytest.raises(IndexStoreError, match=r"format version 999.*--rebuild"):
        Snapshot.load(s.index_dir)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexStoreError, match=r"corrupt.*--rebuild"):
        Snapshot.load(s.index_dir)
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexStoreError, match=r"corrupt.*--rebuild"):
        Snapshot.load(s.index_dir)
    shutil.rmtree(path)
    with pytest.raises(IndexStoreError, match=rf"{name} is missing.*--rebuild"):
        Snapshot.load(s.index_dir)
    # a build recovers from a broken live version
    report = build_index(s, embedder=embedder, progress=False)
    assert report.full_rebuild
    Snapshot.load(s.index_dir)


def test_assistant_refuses_index_of_another_model(seeds_settings: Settings) -> None:
    other = seeds_settings.with_overrides(model="/nonexistent/other-model")
    with pytest.raises(IndexStoreError, match="built with model"):
        Assistant.open(settings=other)


# ---------------------------------------------------------------------------- crash safety

_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from rag.index import store
    from rag.index.indexing import build_index
    from rag.settings import Settings

    point = sys.argv[1]
    real_rename, real_replace, real_fsync_tree = os.rename, os.replace, store.fsync_tree

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def rename(src, dst, *a, **k):
        if point == "before-version-rename" and ".tmp-" in str(src):
            die()
        return real_rename(src, dst, *a, **k)

    def replace(src, dst, *a, **k):
        if point == "before-current-replace" and str(dst).endswith("CURRENT"):
            die()
        return real_replace(src, dst, *a, **k)

    def fsync_tree(path):
        if point == "mid-write":
            (Path(path) / "dense.faiss").write_bytes(b"half")
            die()
        return real_fsync_tree(path)

    from rag.index import writer
    real_add_fresh = writer.VersionWriter.add_fresh

    def add_fresh(self, *a, **k):
        if point == "mid-stream" and self.n_chunks:  # rows of one document already written
            die()
        return real_add_fresh(self, *a, **k)

    writer.VersionWriter.add_fresh = add_fresh
    os.rename, os.replace, store.fsync_tree = rename, replace, fsync_tree
    build_index(Settings(seeds_dir=sys.argv[2], index_dir=sys.argv[3]), rebuild=True,
                progress=False)
    """
)


def _assert_previous_index_serves(s: Settings, version: str) -> None:
    assert store.current_version(s.index_dir) == version
    snap = Snapshot.load(s.index_dir)
    assert snap.version == version and len(snap.docs) == 3


@pytest.mark.parametrize(
    "point", ["mid-stream", "mid-write", "before-version-rename", "before-current-replace"]
)
def test_sigkill_at_each_write_step_keeps_previous_index(
    fresh_corpus: Settings, embedder: Embedder, point: str
) -> None:
    s = fresh_corpus
    version = build_index(s, embedder=embedder, progress=False).version
    assert version
    (s.seeds_dir / "new.txt").write_text(NEW_ARTICLE)
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, point, str(s.seeds_dir), str(s.index_dir)],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    _assert_previous_index_serves(s, version)
    # the next build cleans up the debris and succeeds
    report = build_index(s, embedder=embedder, progress=False)
    assert "new.txt" in report.added
    leftovers = [p.name for p in (s.index_dir / store.VERSIONS).iterdir()]
    assert not any(n.startswith(".tmp-") for n in leftovers)


def test_sigkill_mid_build_of_a_real_build_subprocess(
    fresh_corpus: Settings, embedder: Embedder
) -> None:
    s = fresh_corpus
    version = build_index(s, embedder=embedder, progress=False).version
    assert version
    for i in range(30):  # enough text that embedding takes a while
        (s.seeds_dir / f"copy-{i:02d}.txt").write_text(
            (SEEDS / "002_ada552b2d9cfc3c4.txt").read_text() + f"\n\nCopy number {i}.\n"
        )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "rag.cli",
        "index",
        "--seeds",
        str(s.seeds_dir),
        "--index",
        str(s.index_dir),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    # wait until the build holds the lock (it is then loading the model or embedding), kill it
    deadline = time.monotonic() + 120
    lock = s.index_dir / store.LOCK
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            break
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _assert_previous_index_serves(s, version)


# ---------------------------------------------------------------------------- CLI


def _rag(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_user_errors_are_one_line(tmp_path: Path) -> None:
    missing = _rag("index", "--seeds", str(tmp_path / "nope"), "--index", str(tmp_path / "i"))
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0, missing.stderr
    assert "seeds directory not found" in missing.stderr and "Traceback" not in missing.stderr

    no_index = _rag("search", "anything", "--index", str(tmp_path / "i"))
    assert no_index.returncode != 0 and "Traceback" not in no_index.stderr
    assert no_index.stderr.strip().count("\n") == 0 and "rag index" in no_index.stderr

    bad_flag = _rag("search", "x", "--mode", "magic")
    assert bad_flag.returncode != 0 and "Traceback" not in bad_flag.stderr
    assert bad_flag.stderr.strip().count("\n") == 0


def test_cli_index_and_search(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    index = tmp_path / "index"
    built = _rag("index", "--seeds", str(seeds), "--index", str(index))
    assert built.returncode == 0, built.stderr
    assert "3 added" in built.stdout
    again = _rag("index", "--seeds", str(seeds), "--index", str(index))
    assert "up to date" in again.stdout
    found = _rag("search", "Iranian foreign minister", "--index", str(index), "--json", "-k", "2")
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert len(data["passages"]) == 2
    assert data["passages"][0]["doc_id"] == "001_d02ccc4d9c9c05cf.txt"

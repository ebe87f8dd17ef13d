"""Builds on Ray give the index a local build gives: same chunks, offsets and sentence spans,
vectors within float tolerance, the same top-10 for every eval question; incremental updates
and deletions too. Real Ray: an in-process one (`local`) and a separate head process on
loopback started and stopped here. A killed actor is retried or fails cleanly; an unreachable
address is one clear line. Kept small (the seeds) because Ray is heavy on two cores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.errors import IndexStoreError
from rag.index import store
from rag.index.indexing import build_index
from rag.settings import Settings
from tests.conftest import ROOT, SEEDS, make_settings

pytestmark = pytest.mark.slow
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "eval" / "qa.jsonl").open()]
RAY_BIN = Path(sys.executable).parent / "ray"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:

    from rag.index.distributed import shutdown_ray, start_local_ray

    shutdown_ray()
    start_local_ray(num_cpus=2)
    yield
    shutdown_ray()


def _assert_same_index(a: Settings, b: Settings, embedder: Embedder, rankings: bool = True) -> None:
    _, pa = store.version_path(a.index_dir)
    _, pb = store.version_path(b.index_dir)
    da, db = store.read_data(pa), store.read_data(pb)
    key = [(c.id, c.doc_id, c.start, c.end, c.n_tokens) for c in da.chunks]
    assert key == [(c.id, c.doc_id, c.start, c.end, c.n_tokens) for c in db.chunks]
    assert np.allclose(da.chunk_vectors, db.chunk_vectors, atol=1e-5)
    assert da.sentences.doc_ids == db.sentences.doc_ids
    assert np.array_equal(da.sentences.starts, db.sentences.starts)
    assert np.array_equal(da.sentences.chunk_rows, db.sentences.chunk_rows)
    assert np.allclose(da.sentences.vectors, db.sentences.vectors, atol=2e-3)  # float16
    if not rankings:
        return
    one, two = (Assistant.open(settings=s, embedder=embedder) for s in (a, b))
    for q in QUESTIONS:
        for mode in ("dense", "hybrid"):
            ra = one.search(q, top_k=10, mode=mode).passages
            rb = two.search(q, top_k=10, mode=mode).passages
            assert [(p.chunk_id, p.start, p.end) for p in ra] == [
                (p.chunk_id, p.start, p.end) for p in rb
            ], (q, mode)


def test_local_ray_build_equals_a_local_build_also_incrementally(
    local_ray: None, tmp_path: Path, embedder: Embedder
) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    local = make_settings(seeds, tmp_path / "local")
    on_ray = make_settings(seeds, tmp_path / "ray", ray_address="local", ray_actors=2)
    build_index(local, embedder=embedder, progress=False)
    report = build_index(on_ray, progress=False)
    assert report.full_rebuild and report.chunks_embedded == report.chunks > 0
    _assert_same_index(local, on_ray, embedder)

    first = sorted(seeds.iterdir())[0]
    (seeds / "new.txt").write_text("Kestrel-9 launch\n\nThe agency launched Kestrel-9 today.\n")
    first.write_text(first.read_text() + "\nA closing line was added to this article.\n")
    (sorted(seeds.iterdir())[1]).unlink()
    build_index(local, embedder=embedder, progress=False)
    report = build_index(on_ray, progress=False)
    assert report.reason == "incremental" and report.added == ["new.txt"]
    assert report.changed == [first.name] and len(report.removed) == 1
    assert report.chunks_embedded < report.chunks  # only the new and changed ones went to Ray
    _assert_same_index(local, on_ray, embedder)


def test_a_killed_ray_worker_is_retried_or_fails_cleanly(
    local_ray: None, tmp_path: Path, embedder: Embedder
) -> None:
    seeds = tmp_path / "seeds"
    for i in range(4):  # a few more documents, so the build lasts long enough to be hit
        shutil.copytree(SEEDS, seeds / f"copy{i}")
        for f in (seeds / f"copy{i}").iterdir():  # distinct bytes: copies are not re-embedded
            f.write_text(f.read_text() + f"\n\nThis is copy number {i}.\n")
    # the default engine: Ray batches 8 documents per call where a local build takes a window
    # of 1,024 chunks, and the vectors must not depend on that
    settings = make_settings(seeds, tmp_path / "index", ray_address="local", ray_actors=1)
    outcome: dict[str, object] = {}

    def build() -> None:
        try:
            outcome["report"] = build_index(settings, progress=False)
        except IndexStoreError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=build)
    thread.start()
    killed = _kill_one_actor(deadline=time.monotonic() + 120)
    thread.join(timeout=400)
    assert not thread.is_alive()
    assert killed, "no embedding actor was found to kill"
    if "error" in outcome:  # a clean failure: one line, and no version was written
        assert "Ray build failed" in str(outcome["error"]), outcome
        assert store.current_version(settings.index_dir) is None
        assert not list((settings.index_dir / store.VERSIONS).glob("*"))
    else:  # Ray restarted the actor and retried its batch: a complete, correct index
        local = make_settings(seeds, tmp_path / "local")
        build_index(local, progress=False)
        _assert_same_index(local, settings, embedder, rankings=False)


def _kill_one_actor(deadline: float) -> bool:
    """SIGKILL one embedding actor of this test's Ray (a worker process of our raylet)."""
    import psutil

    me = os.getpid()
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            title = " ".join(proc.info["cmdline"] or [])
            if "MapWorker" not in title and "EmbedActor" not in title:
                continue
            try:
                parents = [p.pid for p in proc.parents()]
            except psutil.Error:
                continue
            if me in parents:  # ours: its raylet was started by this process
                time.sleep(1.0)  # let it start on its batch
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    continue  # it finished meanwhile
                return True
        time.sleep(0.5)
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_build_on_a_separate_ray_head_process(tmp_path: Path, embedder: Embedder) -> None:
    from rag.index.distributed import shutdown_ray

    shutdown_ray()  # a `rag index` process joins the head below as a driver
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths ≤ 107
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",  # a loopback test cluster: no token
    }
    head = subprocess.Popen(
        [str(RAY_BIN), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
         "--node-ip-address=127.0.0.1", "--include-dashboard=false",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_port(port, time.monotonic() + 120)
        seeds = tmp_path / "seeds"
        shutil.copytree(SEEDS, seeds)
        address = f"127.0.0.1:{port}"
        on_ray = make_settings(seeds, tmp_path / "ray", ray_address=address, ray_actors=1)
        # A fresh driver process: Ray Data in a process that already ran an in-process Ray
        # (the tests above) cannot start actors on another cluster (ray-project/ray#54841).
        run = subprocess.run(
            [sys.executable, "-m", "rag.cli", "index", "--seeds", str(seeds),
             "--index", str(on_ray.index_dir), "--ray", address, "--json"],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
            env={**env, "RAG_RAY_ACTORS": "1"},
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(run.stdout)
        assert report["chunks_embedded"] == report["chunks"] > 0
        local = make_settings(seeds, tmp_path / "local")
        build_index(local, embedder=embedder, progress=False)
        _assert_same_index(local, on_ray, embedder)
    finally:
        shutdown_ray()
        os.killpg(head.pid, signal.SIGTERM)  # --block: the head stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(2.0)  # the GCS answers before the raylet is up
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the Ray head did not start")


def test_unreachable_ray_address_is_one_clear_line(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    run = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", "--seeds", str(seeds),
         "--index", str(tmp_path / "index"), "--ray", f"127.0.0.1:{_free_port()}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.startswith("error: cannot reach Ray at 127.0.0.1:")
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
    assert store.current_version(tmp_path / "index") is None

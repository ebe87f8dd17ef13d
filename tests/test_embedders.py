"""Embedding backends: ONNX Runtime (fp32 and int8) against PyTorch on the real bundled model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.index.indexing import build_index
from rag.ingest.chunking import ChunkerConfig, chunk_with_sentences
from rag.ingest.loading import load_documents
from rag.settings import Settings
from tests.conftest import ROOT, SEEDS

# int8 drifts most on the shortest inputs: the one-letter query "x" measured 0.9797 (onnx: 1.0)
QUESTIONS = ["Who chairs the Arab Parliament?", "what did the minister say", "Tehran"]


@pytest.fixture(scope="module")
def engines() -> dict[str, Embedder]:
    return {b: Embedder.load(Settings(embed_backend=b)) for b in ("torch", "onnx", "onnx-int8")}


def _encode(embedder: Embedder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    docs, _warnings = load_documents(SEEDS)
    config = ChunkerConfig(max_tokens=128, overlap=1)
    texts, spans = [], []
    for d in docs:
        chunks, spans_list = chunk_with_sentences(d, embedder.counter, config)
        for c, sp in zip(chunks, spans_list, strict=True):
            texts.append(c.text)
            spans.append([(s - c.start, e - c.start) for s, e in sp])
    encoded = embedder.encode_chunks(texts, spans, batch_size=16, progress=False)
    sentences = np.concatenate(encoded.sentence_vectors)
    return encoded.vectors, sentences, embedder.encode_queries(QUESTIONS)


@pytest.mark.parametrize(("backend", "min_cosine"), [("onnx", 0.999), ("onnx-int8", 0.98)])
def test_onnx_vectors_match_torch(
    engines: dict[str, Embedder], backend: str, min_cosine: float
) -> None:
    ref, other = engines["torch"], engines[backend]
    assert (other.dim, other.max_length, other.backend) == (ref.dim, ref.max_length, backend)
    assert other.counter.count("Who chairs the Arab Parliament?") == ref.counter.count(
        "Who chairs the Arab Parliament?"
    )
    for a, b in zip(_encode(ref), _encode(other), strict=True):
        assert a.shape == b.shape and len(a) > 0
        assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
        cosine = (a * b).sum(axis=1)
        assert cosine.min() > min_cosine, (backend, cosine.min())


def test_backend_change_forces_full_rebuild_and_queries_use_the_index_backend(
    fresh_corpus: Settings, engines: dict[str, Embedder]
) -> None:
    int8 = fresh_corpus.with_overrides(embed_backend="onnx-int8")
    first = build_index(int8, embedder=engines["onnx-int8"], progress=False)
    assert first.full_rebuild
    same = build_index(int8, embedder=engines["onnx-int8"], progress=False)
    assert same.reason == "up to date"

    # asked with another backend setting, the assistant embeds questions like the index
    other = Assistant.open(settings=int8.with_overrides(embed_backend="torch"))
    assert other.embedder.backend == "onnx-int8"
    assert other.snapshot.manifest.embed_backend == "onnx-int8"
    found = other.search("Who chairs the Arab Parliament?")
    assert found.passages

    torch_settings = fresh_corpus.with_overrides(embed_backend="torch")
    changed = build_index(torch_settings, embedder=engines["torch"], progress=False)
    assert changed.full_rebuild and changed.reason == "model or chunker settings changed"
    assert changed.chunks_embedded == changed.chunks
    reopened = Assistant.open(settings=torch_settings, embedder=engines["onnx"])
    assert reopened.embedder.backend == "torch"


def _rag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_bad_backend_is_one_clear_line(tmp_path: Path) -> None:
    env_bad = _rag("index", "--index", str(tmp_path), env={"RAG_EMBED_BACKEND": "tensorflow"})
    assert env_bad.returncode == 2 and "Traceback" not in env_bad.stderr
    assert env_bad.stderr.strip().count("\n") == 0, env_bad.stderr
    assert "embed_backend" in env_bad.stderr and "onnx-int8" in env_bad.stderr

    flag_bad = _rag("--embed-backend", "tensorflow", "index", "--index", str(tmp_path))
    assert flag_bad.returncode == 2 and "Traceback" not in flag_bad.stderr
    assert "--embed-backend" in flag_bad.stderr and "onnx-int8" in flag_bad.stderr


def test_noop_index_imports_no_engine(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Title\n\nA short article about the harbour. It rained.\n")
    built = _rag(
        "--embed-backend", "onnx", "index", "--seeds", str(seeds), "--index", str(tmp_path / "i")
    )
    assert built.returncode == 0, built.stderr
    check = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from rag.index.indexing import build_index
        from rag.settings import Settings
        s = Settings(seeds_dir=Path({str(seeds)!r}), index_dir=Path({str(tmp_path / "i")!r}),
                     embed_backend="onnx")
        assert build_index(s).reason == "up to date"
        loaded = [m for m in ("torch", "onnxruntime", "sentence_transformers") if m in sys.modules]
        assert not loaded, loaded
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr


def test_query_vectors_do_not_depend_on_batch_mates(engines: dict[str, Embedder]) -> None:
    """A question gets the same vector alone or micro-batched with long texts (int8's dynamic
    activation scales are per batch, cosine ≈ 0.992 batched, so it embeds questions one by one)."""
    long_texts = ["The minister said the talks would resume next week in Geneva. " * 12] * 3
    for backend in ("torch", "onnx", "onnx-int8"):
        e = engines[backend]
        alone = e.encode_queries(QUESTIONS[:2])
        single = np.stack([e.encode_queries([q])[0] for q in QUESTIONS[:2]])
        mixed = e.encode_queries(QUESTIONS[:2] + long_texts)[:2]
        assert (alone * single).sum(axis=1).min() > 0.99999, backend
        assert (mixed * single).sum(axis=1).min() > 0.99999, backend


def test_chunk_vectors_do_not_depend_on_batch_mates(engines: dict[str, Embedder]) -> None:
    """A chunk gets the same vector in a full build (batched with many others, longest first)
    as alone in an incremental build or on a Ray actor: what makes a Ray or incremental build
    equal to a full one. int8 batched would be ≈ 0.98 at worst (per-batch activation scales)."""
    texts = [
        "The minister said the talks would resume next week in Geneva. " * 10,
        "Who chairs the Arab Parliament? Adel Al-Asoumi does.",
        "Shares fell sharply in early trading on Monday after the report. " * 4,
        "Rain.",
    ]
    spans = [[(0, len(t))] for t in texts]
    for backend in ("torch", "onnx", "onnx-int8"):
        e = engines[backend]
        together = e.encode_chunks(texts, spans, batch_size=32, progress=False)
        for i, t in enumerate(texts):
            alone = e.encode_chunks([t], [spans[i]], batch_size=32, progress=False)
            cosine = float(alone.vectors[0] @ together.vectors[i])
            assert cosine > 0.99999, (backend, i, cosine)
            sent = float(alone.sentence_vectors[0][0] @ together.sentence_vectors[i][0])
            assert sent > 0.99999, (backend, i, sent)

"""Shared fixtures: the real model, a real index over a copy of the seeds, a real Assistant."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.assistant import Assistant
from rag.embedding import Embedder
from rag.index.indexing import build_index
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DATED = ROOT / "eval" / "dated" / "articles"  # the dated corpus: several outlets, copies, dates


def make_settings(seeds_dir: Path, index_dir: Path, **kw: object) -> Settings:
    """Settings isolated from the caller's RAG_* environment except what the test passes."""
    return Settings(seeds_dir=seeds_dir, index_dir=index_dir, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder.load(Settings())


@pytest.fixture(scope="session")
def seeds_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """A built index over a private copy of the three seed articles (read-only for tests)."""
    base = tmp_path_factory.mktemp("seeds-index")
    seeds = base / "seeds"
    shutil.copytree(SEEDS, seeds)
    settings = make_settings(seeds, base / "index")
    build_index(settings, embedder=embedder, progress=False)
    return settings


@pytest.fixture(scope="session")
def assistant(seeds_settings: Settings, embedder: Embedder) -> Assistant:
    return Assistant.open(settings=seeds_settings, embedder=embedder)


@pytest.fixture(scope="session")
def dated_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """A built index of the dated corpus (eval/dated/articles; read-only for tests)."""
    settings = make_settings(DATED, tmp_path_factory.mktemp("dated") / "index")
    build_index(settings, embedder=embedder, progress=False)
    return settings


@pytest.fixture(scope="session")
def dated(dated_settings: Settings, embedder: Embedder) -> Assistant:
    return Assistant.open(settings=dated_settings, embedder=embedder)


@pytest.fixture()
def fresh_corpus(tmp_path: Path) -> Settings:
    """A writable copy of the seeds and an empty index folder, for tests that change them."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    return make_settings(seeds, tmp_path / "index")


# The retrieval, answer, citation, hot-swap and eval tests run once per dense store: FAISS
# (the default, built above) and Milvus Lite (a collection in <index>/milvus.db, in-process).
STORES = ["faiss", pytest.param("milvus", marks=pytest.mark.slow)]


@pytest.fixture(scope="session", params=STORES)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def backend_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The seeds index built with `backend` as its dense store (FAISS: the shared one)."""
    if backend == "faiss":
        return request.getfixturevalue("seeds_settings")
    embedder = request.getfixturevalue("embedder")
    base = tmp_path_factory.mktemp(f"seeds-{backend}")
    shutil.copytree(SEEDS, base / "seeds")
    settings = make_settings(base / "seeds", base / "index", store=backend)
    build_index(settings, embedder=embedder, progress=False)
    return settings


@pytest.fixture(scope="session")
def backend_assistant(backend_settings: Settings, embedder: Embedder) -> Assistant:
    return Assistant.open(settings=backend_settings, embedder=embedder)

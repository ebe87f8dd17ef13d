"""Every setting in one typed place: environment variables prefixed `RAG_`, overridable by flags.

Precedence: CLI flag (passed as keyword) > `RAG_*` environment variable > default below.

The settings are grouped by concern, one class each (`PathSettings`, `EmbeddingSettings`,
`IndexingSettings`, `ScaleSettings`, `RetrievalSettings`, `AnswerSettings`, `ReaderSettings`,
`TimeSettings`, `ServerSettings`, `LlmSettings`); `Settings` is all of them at once, flat: every
field keeps its own `RAG_<FIELD>` variable and is read as `settings.<field>`. Code that reads
one concern only can say so by taking that class as its parameter type. docs/settings.md is
generated from these classes, one table per group (docs/gen_settings.py, checked by a test).
The lists of accepted values are the `Literal` types of `rag.choices`.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.choices import (
    AnswererName,
    EmbedBackend,
    IndexType,
    Mode,
    PreferNewest,
    ReaderName,
    StoreKind,
)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class PathSettings(BaseModel):
    """Paths

    Where the articles are read and the index is written.
    """

    seeds_dir: Path = Field(Path("seeds"), description="Folder of articles (read recursively).")
    index_dir: Path = Field(Path("index"), description="Folder holding the generated index.")


class EmbeddingSettings(BaseModel):
    """Embedding and chunking

    A change of any of these forces a full rebuild.
    """

    model: str = Field(
        DEFAULT_MODEL,
        description="Embedding model: the bundled default, a local folder, or a hub name.",
    )
    embed_backend: EmbedBackend = Field(
        "onnx-int8",
        description="Embedding engine: PyTorch, ONNX Runtime, or ONNX Runtime with int8 weights.",
    )
    onnx_cache: Path = Field(
        Path("~/.cache/rag-articles/onnx"),
        description="Where the ONNX export of the model is cached (made once, offline).",
    )
    chunk_tokens: int = Field(
        128,
        ge=16,
        le=8192,
        description="Max tokens per chunk in the embedding tokenizer (capped at the model's max).",
    )
    chunk_overlap: int = Field(
        1, ge=0, le=10, description="Whole sentences repeated between chunks."
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Embedding batch size.")


class IndexingSettings(BaseModel):
    """Index builds

    The dense index's kind, threads, the build lock and the old versions kept.
    """

    index_type: IndexType = Field(
        "auto",
        description="FAISS index: exact flat, HNSW, compressed IVF-SQ8, or auto (by chunk count).",
    )
    hnsw_threshold: int = Field(
        250_000, ge=1, description="Chunk count above which index_type=auto picks HNSW."
    )
    ivf_threshold: int = Field(
        500_000,
        ge=1,
        description="Chunk count above which index_type=auto picks compressed IVF-SQ8.",
    )
    threads: int = Field(0, ge=0, description="CPU threads for torch/FAISS/BLAS (0 = all cores).")
    lock_timeout: float = Field(
        30.0, ge=0, description="Seconds a build waits for another build's lock before giving up."
    )
    keep_versions: int = Field(
        2, ge=1, description="Index versions kept on disk (current included)."
    )

    def cpu_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


class ScaleSettings(BaseModel):
    """Scale-out

    Where the dense index lives, and distributed builds ([scale.md](scale.md)).
    """

    store: StoreKind = Field(
        "faiss", description="Dense index backend: in-process FAISS, or a Milvus collection."
    )
    milvus_uri: str | None = Field(
        None,
        description="Milvus: a local file path (Milvus Lite) or http://host:19530 (a server); "
        "unset = <index_dir>/milvus.db.",
    )
    milvus_collection: str = Field(
        "rag",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,100}$",
        description="Prefix of the per-version collections and of the `<prefix>_live` alias.",
    )
    milvus_timeout: float = Field(10.0, gt=0, description="Seconds to wait for Milvus.")
    ray_address: str | None = Field(
        None, description="Embed with Ray: `local` (in-process) or a cluster address; unset = no."
    )
    ray_num_cpus: int = Field(2, ge=1, description="CPUs of the in-process Ray (`local`).")
    ray_actors: int = Field(2, ge=1, description="Embedding actors (each loads the model once).")
    ray_cpus_per_actor: float = Field(1.0, gt=0, description="CPUs reserved per actor.")
    ray_gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per actor (0 = CPU).")
    ray_timeout: float = Field(600.0, gt=0, description="Seconds a Ray build may take.")


class RetrievalSettings(BaseModel):
    """Retrieval"""

    mode: Mode = Field("hybrid", description="Default retrieval mode.")
    top_k: int = Field(5, ge=1, le=50, description="Passages returned by default.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    dense_weight: float = Field(
        0.5, ge=0, description="Weight of the dense ranking in hybrid fusion (measured)."
    )
    bm25_weight: float = Field(
        1.0, ge=0, description="Weight of the BM25 ranking in hybrid fusion."
    )
    mmr_lambda: float | None = Field(
        None, ge=0, le=1, description="MMR trade-off (1 = relevance only); unset = no MMR."
    )


class AnswerSettings(BaseModel):
    """Answers"""

    answerer: AnswererName = Field("extractive", description="Default answerer.")
    answer_sentences: int = Field(
        3, ge=1, le=10, description="Max sentences in an extractive answer."
    )
    abstain_threshold: float = Field(
        0.4,
        description="Evidence score below which the assistant says the articles don't answer.",
    )
    max_question_chars: int = Field(2000, ge=1, description="Longest question accepted.")


class ReaderSettings(BaseModel):
    """The reader

    Short answers and abstention ([reader.md](reader.md)).
    """

    reader: ReaderName = Field(
        "model",
        description="Short answers and abstention: `model`, the reader trained here "
        "(rag/reader/); `rules`, phrase-picking rules and the evidence threshold; `off`, "
        "no short answer (the evidence threshold alone decides abstention).",
    )
    reader_model: Path | None = Field(
        None,
        description="Folder of a reader model (`rag reader train` writes OUT/model); "
        "unset = the one shipped in rag/reader/model.",
    )
    reader_windows: int = Field(
        2, ge=1, le=10, description="Best sentences the reader reads per question (its budget)."
    )
    reader_context: int = Field(
        0, ge=0, le=3, description="Sentences the reader also reads on each side of each one."
    )
    reader_min_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Show the reader's short answer only when its calibrated probability of "
        "being right reaches this; unset = the model's own threshold (.6675 for the shipped "
        "reader: right − 2 × wrong). Higher shows fewer, surer short answers "
        "(docs/reader.md, *Stricter short answers*).",
    )


class TimeSettings(BaseModel):
    """Time

    The day questions are asked on, and when the newest articles answer ([time.md](time.md)).
    """

    as_of: dt.date | None = Field(
        None,
        description="The day questions are asked on, YYYY-MM-DD, unless a request gives its "
        "own `as_of`: articles dated after it are not used and relative words count from it; "
        "unset = today.",
    )
    prefer_newest: PreferNewest = Field(
        "present",
        description="When an answer comes from the newest articles: `explicit`, for questions "
        "saying now, current, latest, still, … or asking about the future; `present`, also for "
        'present-tense questions naming no period ("Who is the Speaker?"); `off`, never.',
    )


class ServerSettings(BaseModel):
    """HTTP service

    `rag serve`: the API, the web page, the answer processes ([http-api.md](http-api.md)).
    """

    host: str = Field("127.0.0.1", description="Address `rag serve` binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port `rag serve` binds.")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for POST /v1/index/rebuild (unset: loopback clients only)."
    )
    api_key: SecretStr | None = Field(
        None, description="Bearer key the OpenAI-compatible routes require (unset: open)."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins (off).")
    watch: bool = Field(False, description="Watch seeds_dir and rebuild on change.")
    debounce_ms: int = Field(500, ge=0, description="Quiet time before a watched change rebuilds.")
    batch_wait_ms: float = Field(
        2.0, ge=0, description="How long concurrent queries wait to be embedded together."
    )
    query_threads: int = Field(
        1,
        ge=0,
        description="CPU threads one question's embedding and search use in `rag serve` "
        "(0 = all cores); builds keep `threads`.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="`rag serve` processes sharing the port, each with its own model and GIL.",
    )
    answer_processes: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = Field(
        "auto",
        description="`rag serve` answers extractive questions (`/v1/ask`, `/v1/search`, "
        "`/v1/timeline`, chat, MCP) in this many processes, each with its own model, index and "
        "GIL, first come first served; 0 = in the HTTP process. auto: one per core up to 4 "
        "with `onnx-int8` and an index up to 250k chunks, else 0.",
    )
    access_log: bool = Field(
        False, description="`rag serve` logs one line per request (uvicorn's access log)."
    )
    max_body_bytes: int = Field(65536, ge=1024, description="Largest request body accepted.")
    tracemalloc_dir: Path | None = Field(
        None, description="Diagnostics: trace allocations; SIGUSR1 dumps a snapshot here."
    )


class LlmSettings(BaseModel):
    """LLM

    An optional LLM backend: any OpenAI-compatible /v1/chat/completions server
    ([llm.md](llm.md)).
    """

    llm_base_url: str | None = Field(None, description="e.g. http://localhost:11434/v1")
    llm_model: str | None = Field(None, description="Model name sent to the LLM server.")
    llm_api_key: SecretStr | None = Field(None, description="Sent as a bearer token; never logged.")
    llm_timeout: float = Field(30.0, gt=0, description="Seconds per LLM request.")
    llm_max_tokens: int = Field(512, ge=1, description="Answer token reserve.")
    llm_temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    llm_context_window: int = Field(8192, ge=512, description="LLM context size in tokens.")
    llm_retries: int = Field(2, ge=0, le=10, description="Retries on 429/5xx, with backoff.")
    llm_anchor: bool = Field(
        False,
        description="For small local models (`rag llm-server` sets it): give the LLM the "
        "reader's sentence and short answer, and constrain its output with a llama.cpp grammar "
        "to claims ending in [n] markers (or the abstention sentence).",
    )


class Settings(
    PathSettings,
    EmbeddingSettings,
    IndexingSettings,
    ScaleSettings,
    RetrievalSettings,
    AnswerSettings,
    ReaderSettings,
    TimeSettings,
    ServerSettings,
    LlmSettings,
    BaseSettings,
):
    """Every group of settings at once, read from `RAG_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", validate_default=True)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given (non-None) values replaced, validated like the originals."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).model_validate(data)


# The groups, in the order docs/settings.md shows them.
SECTIONS: tuple[type[BaseModel], ...] = tuple(
    base for base in Settings.__bases__ if base is not BaseSettings
)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit (non-None) overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})

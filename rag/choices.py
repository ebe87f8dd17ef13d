"""Every list of choices, written once: a `Literal` type, and its values as a tuple.

The settings (`rag.settings`), the request models (`rag.models`), the CLI's `click.Choice`
lists, the HTTP schemas and the generated docs all derive from these; nothing else spells the
values out. Standard library only: the no-op `rag index` (`rag.index.noop`) reads them too.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["dense", "bm25", "hybrid"]  # retrieval modes
AnswererName = Literal["extractive", "llm"]  # who writes an answer
ReaderName = Literal["model", "rules", "off"]  # short answers and abstention (RAG_READER)
EmbedBackend = Literal["torch", "onnx", "onnx-int8"]  # the embedding engine
DenseKind = Literal["flat", "hnsw", "ivf-sq8"]  # the dense index built
IndexType = Literal["auto", DenseKind]  # RAG_INDEX_TYPE: a kind, or picked by size
StoreKind = Literal["faiss", "milvus"]  # where the dense index lives
PreferNewest = Literal["present", "explicit", "off"]  # when the newest articles answer

MODES: tuple[Mode, ...] = get_args(Mode)
ANSWERERS: tuple[AnswererName, ...] = get_args(AnswererName)
READERS: tuple[ReaderName, ...] = get_args(ReaderName)
EMBED_BACKENDS: tuple[EmbedBackend, ...] = get_args(EmbedBackend)
DENSE_KINDS: tuple[DenseKind, ...] = get_args(DenseKind)
INDEX_TYPES: tuple[IndexType, ...] = get_args(IndexType)
STORES: tuple[StoreKind, ...] = get_args(StoreKind)
PREFER_NEWEST: tuple[PreferNewest, ...] = get_args(PreferNewest)

"""Index: chunks → embeddings → a versioned store (dense backend, BM25, tables, manifest), built
incrementally and atomically."""

"""HTTP service over the `rag` API."""

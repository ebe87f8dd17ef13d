"""Ingest: files → Documents (text, title, source, date) → sentences → token-exact chunks; wire
copies detected."""

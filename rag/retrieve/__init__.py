"""Retrieve: a loaded index version (Snapshot) and hybrid ranking of passages for a question."""

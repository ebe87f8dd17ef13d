"""Retrieval-augmented question answering over a folder of articles, with exact citations."""

__version__ = "0.1.0"

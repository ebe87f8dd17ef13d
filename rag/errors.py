"""Errors a user can act on. The CLI prints them as one line; the server maps them to 4xx/503."""


class RagError(Exception):
    """A problem caused by input or setup, with a message that names the fix."""


class CorpusError(RagError):
    """The seeds directory is missing or holds no usable article."""


class IndexStoreError(RagError):
    """The index is missing, corrupt, locked or built with another format or model."""


class DiskFullError(IndexStoreError):
    """The disk filled while a build wrote its new version (the previous one stays live)."""


class QuestionError(RagError):
    """The question is empty, too long or otherwise unusable."""

    def __init__(self, message: str, field: str = "question") -> None:
        super().__init__(message)
        self.field = field

"""Answer: sentences scored and cited, short answers by rules; the reader lives in rag.reader."""

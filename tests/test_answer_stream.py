"""`server.answering.AnswerStream.close()` never closes a stream a pool thread is advancing.

In CPython 3.11, `gen.close()` on a generator another thread is executing reads that thread's
frame before it checks whether it is running, and can crash the process: a client leaving
mid-answer did that to a test server (tests/test_soak_structure.py segfaulted in 2 of 3 runs).
Here a real thread advances the stream while `close()` is called.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rag.events import DeltaEvent, StreamEvent
from server.answering import AnswerStream


def test_close_leaves_a_running_stream_alone_and_closes_an_idle_one() -> None:
    inside, resume = threading.Event(), threading.Event()
    finished: list[str] = []

    def events() -> Iterator[StreamEvent]:
        try:
            inside.set()
            resume.wait(10)
            yield DeltaEvent("one")
            yield DeltaEvent("two")
        finally:
            finished.append("closed")

    stream = AnswerStream(None, events(), DeltaEvent("first"),  # type: ignore[arg-type]
                          blocking_io=False, embed_ms=0.0)
    pulled: list[StreamEvent | None] = []
    worker = threading.Thread(target=lambda: pulled.append(stream._pull()))
    worker.start()
    assert inside.wait(10)
    stream.close()  # running on the worker: left alone, no crash, no ValueError
    assert not finished
    resume.set()
    worker.join(10)
    assert pulled == [DeltaEvent("one")]
    stream.close()  # idle now: closed at once, its frame released
    assert finished == ["closed"]
    assert stream._pull() is None  # a closed stream just ends

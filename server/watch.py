"""`rag serve --watch`: rebuild the index when the articles folder changes.

Editors and copy tools touch a file several times in a row (truncate, write, rename, chmod), and
a bulk copy touches hundreds; rebuilding on every event would waste the CPU that answers
questions. Events are therefore grouped until the folder has been quiet for `debounce_ms`
(watchfiles' `step`), with an upper bound so a never-ending trickle still gets indexed.
The rebuild itself runs elsewhere (`Rebuilder`, a background thread); this coroutine only
notices bursts and asks for one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import awatch

logger = logging.getLogger(__name__)

MIN_STEP_MS = 20
MAX_GROUPING_MS = 10_000


async def watch_seeds(
    seeds_dir: Path,
    on_change: Callable[[], object],
    *,
    debounce_ms: int = 500,
    stop_event: threading.Event | None = None,
) -> None:
    """Call `on_change()` once per burst of changes under `seeds_dir`, until stopped.

    Set `stop_event` before cancelling: the watcher thread checks it between steps, whereas a
    bare cancellation waits for the thread's next timeout.
    """
    step = max(debounce_ms, MIN_STEP_MS)
    if not seeds_dir.is_dir():
        logger.warning("not watching %s: it is not a directory", seeds_dir)
        return
    logger.info("watching %s for changes (quiet time %d ms)", seeds_dir, step)
    async for changes in awatch(
        seeds_dir,
        step=step,
        debounce=max(MAX_GROUPING_MS, 4 * step),
        stop_event=stop_event,
        rust_timeout=1000,
        recursive=True,
    ):
        logger.info("%d change(s) under %s: rebuilding the index", len(changes), seeds_dir)
        try:
            on_change()
        except Exception:  # pragma: no cover - keep watching whatever the callback does
            logger.exception("could not start a rebuild")

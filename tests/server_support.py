"""Helpers shared by the server tests: a real server in a subprocess, an in-process ASGI client."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT = 90.0  # seconds for a subprocess server to load the tiny model (slow shared CI machines)
FP32_FILE = "onnx/model.onnx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll /health until 200; fail with the server log if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if client.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log()}")


@contextmanager
def live_server(
    model: Path | str,
    log_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
    ready: bool = True,
    port_from_env: bool = False,
) -> Iterator[LiveServer]:
    """``fastembed-adapter serve`` in a subprocess on 127.0.0.1 and a free port; stopped on exit."""
    port = free_port()
    full_env = {**os.environ, "FEA_THREADS": "1", **(env or {})}
    command = [python, "-m", "fastembed_adapter.cli", "serve", "--model", str(model), "--host", "127.0.0.1"]
    if port_from_env:
        full_env["PORT"] = str(port)
    else:
        command += ["--port", str(port)]
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*command, *args], stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = LiveServer(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        if ready:
            server.wait_ready()  # /health needs no API key
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- in-process --------------------------------------------------------------------------------------


@asynccontextmanager
async def app_client(app: Any, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give an httpx client bound to it (no socket)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30.0) as client:
            if wait_ready:
                await poll(lambda: app.state.host.state.value == "ready", what="model ready")
            yield client


async def poll(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Await ``condition()`` becoming true (a readiness poll, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Gate:
    """Makes the encoder's batch calls block until released, to hold requests in flight deterministically."""

    def __init__(self, poison: str | None = None, error: type[Exception] = RuntimeError) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[list[str]] = []
        self.poison = poison
        self.error = error

    def wrap(self, encoder: Any, probe_text: str) -> Any:
        real = encoder.encode

        def encode(texts: Any, *args: Any, **kwargs: Any) -> Any:
            if list(texts) == [probe_text]:
                return real(texts, *args, **kwargs)
            self.calls.append(list(texts))
            self.entered.set()
            self.release.wait(30)
            if self.poison is not None and self.poison in texts:
                raise self.error(f"poisoned batch: {self.poison!r}")
            return real(texts, *args, **kwargs)

        encoder.encode = encode
        return encoder

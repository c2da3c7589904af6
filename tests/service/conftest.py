"""A real model repository (exported with skipfold export) and helpers to serve it."""

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from export.exporter import export_run


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    """bn (folded, versions 1 and 2) and skipinit: WRN-10-1s quickly trained on `shapes`."""
    from training.config import TrainConfig
    from training.trainer import train

    root = tmp_path_factory.mktemp("service")
    repo = root / "repo"
    runs = {}
    for variant in ("bn", "skipinit"):
        config = TrainConfig(
            variant=variant,
            depth=10,
            width=1,
            epochs=1,
            lr=0.05,
            schedule="constant",
            train_limit=512,
            test_limit=128,
            standardize="per-image",
        )
        runs[variant] = root / variant
        train(config, runs[variant])
    export_run(runs["bn"], repo)
    export_run(runs["bn"], repo, fold=True, name="bn")  # version 2 (same weights)
    export_run(runs["skipinit"], repo)
    return repo


def png(array: np.ndarray, fmt: str = "PNG", **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save_options)
    return buffer.getvalue()


def sample_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`skipfold serve` in its own process, as a user starts it."""

    def __init__(self, repo: Path, *args: str, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody reads a pipe while the test runs, and a server that logs
        # every request fills one (64 KB) and then blocks on its next log line.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "skipfold", "serve", "--repo", str(repo)),
                *("--port", str(self.port), "--threads", "1", *args),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server did not become ready")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)
        output = self.output()
        self.log.close()
        return output

"""What many tests need: images, the `skipfold` command as a subprocess, a server process."""

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
from PIL import Image


def skipfold(*args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`python -m skipfold ARGS`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "skipfold", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def png(array: np.ndarray, fmt: str = "PNG", **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save_options)
    return buffer.getvalue()


def many_scan_jpeg(repeats: int, size: int = 64, max_bytes: int | None = None) -> bytes:
    """A progressive JPEG whose last scan is repeated (as often as `max_bytes` allows): libjpeg
    decodes every copy (a warning about the progression, no error), as it does the scans of a
    crafted decode bomb."""
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    data = png(pixels, "JPEG", progressive=True, quality=90)
    last_scan = data[data.rindex(b"\xff\xda") : -2]  # up to the end-of-image marker
    if max_bytes is not None:
        repeats = min(repeats, (max_bytes - len(data)) // len(last_scan))
    return data[:-2] + last_scan * repeats + data[-2:]


def sample_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`skipfold serve` in its own process, as a user starts it."""

    def __init__(
        self, repo: Path, *args: str, env: dict | None = None, python: str = sys.executable
    ) -> None:
        self.port = free_port()
        self.tls = "--ssl-certfile" in args
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody reads a pipe while the test runs, and a server that logs
        # every request fills one (64 KB) and then blocks on its next log line.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                *(python, "-m", "skipfold", "serve", "--repo", str(repo)),
                *("--port", str(self.port), "--threads", "1"),
                # gRPC off unless asked for: Triton's 8001 would clash between test servers
                *(() if "--grpc-port" in args else ("--grpc-port", "0")),
                *args,
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
                ready = httpx.get(f"{self.url}/v2/health/ready", timeout=1, verify=not self.tls)
                if ready.status_code == 200:
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

    def top_label(self, model: str, image: np.ndarray) -> str:
        """The label POST /predict gives one image (sent as a PNG body)."""
        import httpx

        response = httpx.post(
            f"{self.url}/predict?model={model}",
            content=png(image),
            headers={"Content-Type": "image/png"},
        )
        return response.json()["results"][0]["predictions"][0]["label"]


def direct_probabilities(repo: Path, name: str, version: int, images: np.ndarray) -> np.ndarray:
    """What ONNX Runtime computes for a model of the repository, called directly."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(repo / name / str(version) / "model.onnx"))
    return session.run(["probabilities"], {"images": images})[0]


_MATMUL = """
import time, numpy as np
a, b = (np.random.default_rng(i).standard_normal((1024, 1024)).astype(np.float32) for i in (0, 1))
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(12))
print(2 * 1024**3 / best / 1e9)
"""


def float32_matmul_gflops(threads: int) -> float:
    """This machine's float32 matrix-multiply rate on `threads` threads, by NumPy's BLAS (not
    ONNX Runtime's kernels, which the bench's roof uses): the independent peak a model's
    GFLOP/s cannot exceed by much. A fresh process, so the thread limit takes, and without
    OPENBLAS_CORETYPE: a machine image that pins it (Haswell, seen on an AVX-512 EPYC) halves
    OpenBLAS's rate there (129 against 236 GFLOP/s), and the reference must be the CPU's own."""
    limits = {
        k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"} | limits
    result = subprocess.run(
        [sys.executable, "-c", _MATMUL], capture_output=True, text=True, timeout=120,
        env=env, check=True,
    )  # fmt: skip
    return float(result.stdout)

"""Hostile payloads against a real `skipfold serve` process, on loopback and bounded in time:
decode bombs beside ordinary clients, a burst of images at the pixel limit, and requests
generated from the OpenAPI spec. (Hostile connections: test_hostile_clients.py.)

Marked `hostile` (and `e2e`): `pytest -m 'not hostile'` leaves them out.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers import Server, many_scan_jpeg, png, sample_images

pytestmark = [pytest.mark.e2e, pytest.mark.hostile]


@pytest.fixture(scope="module")
def server(strict_server):
    return strict_server


def percentile_99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))]


def probe_latencies(client: httpx.Client, image: bytes, seconds: float) -> dict[str, list]:
    """/healthz and /predict in turn, one at a time, for `seconds`."""
    latencies: dict[str, list] = {"healthz": [], "predict": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        latencies["healthz"].append(time.monotonic() - started)
        started = time.monotonic()
        response = client.post("/predict", content=image, headers={"Content-Type": "image/png"})
        assert response.status_code == 200
        latencies["predict"].append(time.monotonic() - started)
    return latencies


# One attacker: while the file `armed` exists, a bomb, its answer, a quarter of a second, again.
# Scheduled only when a core is idle: on this machine the attackers share the server's two cores,
# where a real attacker would bring its own.
BOMBER = """
import json, os, sys, time, httpx
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
url, path, armed, stop = sys.argv[1:5]
data = open(path, "rb").read()
answers = []
with httpx.Client(timeout=30) as client:
    while not os.path.exists(stop):
        if not os.path.exists(armed):
            time.sleep(0.01)
            continue
        started = time.monotonic()
        response = client.post(url, content=data, headers={"Content-Type": "image/jpeg"})
        answers.append([response.status_code, time.monotonic() - started, response.json()["error"]])
        time.sleep(0.25)
print(json.dumps(answers))
"""


def test_decode_bombs_are_refused_fast_and_do_not_stall_other_clients(
    server, tmp_path, speed_factor
):
    bombs = {
        # 9 MB of repeated scans, each decoded in full by libjpeg without the scan limit
        "scans": many_scan_jpeg(repeats=1_000_000, size=256, max_bytes=9_000_000),
        # 4096 x 4096 pixels in 0.1 MB: over the pixel limit from the header alone
        "pixels": png(np.zeros((4096, 4096, 3), np.uint8), "JPEG", progressive=True),
    }
    for name, data in bombs.items():
        (tmp_path / name).write_bytes(data)
    armed, stop = tmp_path / "armed", tmp_path / "stop"
    # four bombers, each in its own process (a client's own GIL is not the server's delay)
    bombers = [
        subprocess.Popen(
            [sys.executable, "-c", BOMBER, f"{server.url}/predict", tmp_path / kind, armed, stop],
            stdout=subprocess.PIPE,
            text=True,
        )
        for kind in ("scans", "pixels", "scans", "pixels")
    ]
    image = png(sample_images(1)[0])
    idle: dict[str, list] = {"healthz": [], "predict": []}
    attacked: dict[str, list] = {"healthz": [], "predict": []}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            probe_latencies(client, image, 1.0)  # warm, and the bombers started
            for _ in range(4):  # idle and attacked in turn: drift of the machine hits both
                for endpoint, values in probe_latencies(client, image, 1.0).items():
                    idle[endpoint] += values
                armed.touch()
                time.sleep(0.1)
                for endpoint, values in probe_latencies(client, image, 1.0).items():
                    attacked[endpoint] += values
                armed.unlink()
                time.sleep(0.3)  # the bombs in flight answered
    finally:
        stop.touch()
        answers = [answer for b in bombers for answer in json.loads(b.communicate(timeout=60)[0])]
    assert {status for status, _, _ in answers} == {413}
    assert max(seconds for _, seconds, _ in answers) < 2.0 * speed_factor
    assert any("JPEG of more than 100 scans" in error for _, _, error in answers)
    assert any("4096x4096 = 16,777,216 pixels" in error for _, _, error in answers)
    for endpoint in ("healthz", "predict"):
        during, before = percentile_99(attacked[endpoint]), percentile_99(idle[endpoint])
        print(f"{endpoint}: p99 {1000 * before:.2f} ms idle, {1000 * during:.2f} ms under attack")
        assert during < 3 * before, endpoint


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_memory_stays_bounded_under_a_burst_of_images_at_the_pixel_limit(repo):
    server = Server(repo)  # the default pixel limit: 2048 x 2048 for the 32 x 32 models
    try:
        server.wait_ready()
        side = 2048
        ramp = np.linspace(0, 255, side, dtype=np.uint8)
        image = png(np.stack([np.tile(ramp, (side, 1))] * 3, axis=-1), "JPEG", quality=90)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            warm = client.post("/predict", content=image, headers={"Content-Type": "image/jpeg"})
            assert warm.status_code == 200, warm.text
        before = rss_mb(server.process.pid)
        peak = before
        statuses = []

        def send() -> None:
            response = httpx.post(
                f"{server.url}/predict",
                content=image,
                headers={"Content-Type": "image/jpeg"},
                timeout=60,
            )
            statuses.append(response.status_code)

        threads = [threading.Thread(target=send) for _ in range(16)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, rss_mb(server.process.pid))
            time.sleep(0.01)
        time.sleep(10)
        after = rss_mb(server.process.pid)
    finally:
        server.stop()
    print(f"RSS {before:.0f} MB before, peak {peak:.0f} MB, {after:.0f} MB 10 s after")
    assert statuses == [200] * 16
    assert peak < 600, f"peak RSS {peak:.0f} MB"
    assert after < 1.25 * before, f"RSS {before:.0f} MB before, {after:.0f} MB 10 s after"


def test_schemathesis_finds_no_server_error(server):
    """Generated requests for every operation of the OpenAPI spec, the v2 infer body among
    them, valid and invalid: none may get a 500."""
    cli = Path(sys.executable).with_name("schemathesis")
    assert cli.exists(), "schemathesis is missing: the [test] extra installs it"
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "/v2/models/{name}/infer" in result.stdout
    assert "Traceback" not in server.output()

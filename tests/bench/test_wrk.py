"""wrk driven for one-connection latency: its pooled percentiles, and real runs against
`skipfold serve`."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from skipfold.bench import wrk
from tests.helpers import Server, free_port


def test_pooled_percentiles_agree_with_the_samples_they_summarize():
    rng = np.random.default_rng(0)
    runs = [
        rng.lognormal(np.log(300 + 50 * i), 0.3, size=n) for i, n in enumerate((900, 2500, 400))
    ]
    pooled = wrk.WrkLatencies()
    for samples in runs:
        pooled.quantiles_us.append(np.percentile(samples, range(1, 100)))
        pooled.requests.append(len(samples))
    everything = np.concatenate(runs)
    for q in (10, 50, 90):
        expected = np.percentile(everything, q) / 1000
        # within one percentile step of the pooled samples
        low, high = np.percentile(everything, [q - 1, q + 1]) / 1000
        assert low <= pooled.percentile(q) <= high, (q, pooled.percentile(q), expected)


# under CI (which installs it) a missing wrk fails these tests instead of skipping them
needs_wrk = pytest.mark.skipif(
    wrk.installed() is None and not os.environ.get("CI"), reason="wrk is not installed"
)


@needs_wrk
@pytest.mark.e2e
def test_wrk_times_predict_and_counts_what_fails(repo):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, "PNG")
    server = Server(repo)
    server.wait_ready()
    try:
        predict = wrk.Wrk(
            wrk.installed(),
            f"{server.url}/predict?model=bn",
            "POST",
            buffer.getvalue(),
            "image/png",
        )
        missing = wrk.Wrk(wrk.installed(), f"{server.url}/predict?model=nonesuch", "POST", b"x")
        predict.run(1)
        missing.run(1)
    finally:
        server.stop()
        predict.close()
        missing.close()
    ok = predict.latencies
    assert ok.requests[0] > 10 and ok.errors == 0
    assert 0 < ok.percentile(50) <= ok.percentile(90) < 1000
    # no answer about an unknown model is a 200, and wrk counts each as an error
    assert missing.latencies.errors == missing.latencies.requests[0] > 0


@needs_wrk
def test_an_unreachable_server_is_one_clear_error():
    client = wrk.Wrk(wrk.installed(), f"http://127.0.0.1:{free_port()}/v2/health/live")
    with pytest.raises(ConnectionError, match=r"^wrk http://127\.0\.0\.1:\d+/v2/health/live: "):
        client.run(1)

"""The app in-process on the small ONNX models (FastAPI's TestClient runs the lifespan)."""

import pytest
from fastapi.testclient import TestClient

from skipfold.service.app import create_app
from skipfold.service.settings import Settings


@pytest.fixture(scope="module")
def client(repo):
    settings = Settings(repository=repo, intra_op_threads=1, models="bn:1:2,skipinit")
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="package")
def strict_server(repo):
    """`skipfold serve` with short read timeouts (1 s for the headers, 1.5 s for the body), as
    the hostile-client tests attack it."""
    from tests.helpers import Server

    server = Server(repo, "--header-timeout", "1", "--body-timeout", "1.5")
    server.wait_ready()
    yield server
    server.stop()

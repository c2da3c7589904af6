"""Hostile connections against a real `skipfold serve` process, on loopback and bounded in
time: slow and half-sent requests, many idle connections, malformed bodies in bulk (hostile
payloads: test_hostile_payloads.py). Each test asserts
what a user of the server cares about: the other clients are still answered, nothing is a 500,
and the attacker's connections do not stay open.

Marked `hostile` (and `e2e`): `pytest -m 'not hostile'` leaves them out.
"""

import json
import resource
import socket
import time

import httpx
import pytest

from tests.helpers import Server

pytestmark = [pytest.mark.e2e, pytest.mark.hostile]


@pytest.fixture(scope="module")
def server(strict_server):
    return strict_server


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read off a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_half_sent_request_line_gets_408_and_is_closed_at_the_header_timeout(
    server, speed_factor
):
    with connect(server) as sock:
        sock.sendall(b"GET /v2/health/li")
        started = time.monotonic()
        answer = read_all(sock)  # returns once the server closes the connection
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"waiting for the request headers" in answer
    assert 0.9 < waited < 3 * speed_factor  # the 1 s timeout, and the server's reaction


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(server, speed_factor):
    with connect(server) as sock:
        started = time.monotonic()
        answer = read_all(sock)
        assert 0.9 < time.monotonic() - started < 3 * speed_factor
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_sent_a_byte_at_a_time_is_cut_at_the_body_timeout(server, speed_factor):
    with connect(server) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        started = time.monotonic()
        sock.settimeout(0.2)
        answer = b""
        while time.monotonic() - started < 5 * speed_factor:
            try:
                sock.sendall(b"\x89")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"waiting for the request body" in answer
    assert 1.4 < waited < 3.5 * speed_factor


def test_a_kept_alive_connection_still_serves_requests_after_the_timeouts(server):
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"live":true}')
            # idle on the same connection for longer than the header timeout (1 s): an idle
            # connection is under the keep-alive timeout (5 s), not the header one
            time.sleep(1.5)


def test_new_clients_are_answered_while_1000_slow_connections_are_held(repo, speed_factor):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the test itself needs 1,200 open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    server = Server(repo, "--header-timeout", "5")
    slow: list[socket.socket] = []
    try:
        server.wait_ready()
        opened = time.monotonic()
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-")
            slow.append(sock)
        latencies = []
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(20):
                started = time.monotonic()
                response = client.get("/healthz")
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200
                bad = client.post("/v2/models/bn/infer", content=b'{"inputs": 5}')
                assert bad.status_code == 400
        assert max(latencies) < 1.0 * speed_factor
        # and every slow connection is answered 408 and closed once its 5 s are up
        for sock in slow:
            assert read_all(sock).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - opened < 5 + 5 * speed_factor  # the timeout, then the work
    finally:
        for sock in slow:
            sock.close()
        output = server.stop()
    assert "Traceback" not in output


def test_bulk_malformed_requests_are_never_a_500(server):
    bodies = [
        b'{"inputs": [{"name": "images", "shape": [1, 32, 32, 3], "datatype": "UINT8", '
        b'"data": [' + b",".join([b"1e400"] * 3072) + b"]}]}",
        b'{"id": ' + b"9" * 5000 + b', "inputs": []}',
        b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"parameters": {' + b",".join(b'"k%d": []' % i for i in range(200_000)) + b"}}",
        json.dumps({"inputs": [], "outputs": 5}).encode(),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for body in bodies:
            response = client.post("/v2/models/bn/infer", content=body)
            assert response.status_code == 400, response.text[:300]
            assert len(response.content) < 2000  # a short message, not the errors of every item
    assert "Traceback" not in server.output()

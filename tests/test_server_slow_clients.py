"""Slow and idle clients against the real server: read deadlines (408) and the connection cap (503).

Each test opens raw sockets on loopback to a ``serve`` subprocess with short limits and checks
what the server sends and when it closes; on uvicorn alone every one of these connections
stays open for as long as the client likes.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from server_support import live_server

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
SLACK = 2.5  # seconds past a deadline a loaded 2-core CI machine may take to close
REQUEST = b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


@pytest.fixture(scope="module")
def server(prepared_base, tmp_path_factory):
    args = ("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT), "--max-connections", "64")
    with live_server(prepared_base("bert"), tmp_path_factory.mktemp("logs"), *args) as live:
        yield live


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(0.2)
    return sock


def read_until_closed(sock: socket.socket, deadline: float, dribble: bytes = b"") -> tuple[bytes, float]:
    """Send ``dribble`` a byte every 0.2 s while reading; return what arrived and when the server closed."""
    received, start, sent = b"", time.monotonic(), 0
    while time.monotonic() - start < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if sent < len(dribble):
                try:
                    sock.sendall(dribble[sent : sent + 1])
                except OSError:
                    return received, time.monotonic() - start
                sent += 1
            continue
        except ConnectionResetError:
            return received, time.monotonic() - start
        if not chunk:
            return received, time.monotonic() - start
        received += chunk
    raise AssertionError(f"the server kept the connection open for {deadline} s; received {received!r}")


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_dribbled_headers_get_408_and_close_while_others_are_served(server):
    dribble = b"POST /embed HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    socks = [connect(server.port) for _ in range(24)]
    start = time.monotonic()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:  # a well-behaved client meanwhile
        assert client.post("/embed", json={"inputs": "hello"}).status_code == 200
    outcomes = [read_until_closed(sock, HEADER_TIMEOUT + SLACK + (time.monotonic() - start), dribble) for sock in socks]
    for received, _ in outcomes:
        status, body = status_and_body(received)
        assert status == 408 and body["error"]["type"] == "request_timeout"
        assert "headers did not arrive within 1 s" in body["error"]["message"]
    assert time.monotonic() - start < HEADER_TIMEOUT + SLACK
    for sock in socks:
        sock.close()


def test_a_silent_connection_is_closed_after_the_header_timeout(server):
    with connect(server.port) as sock:
        received, seconds = read_until_closed(sock, HEADER_TIMEOUT + SLACK)
    assert status_and_body(received)[0] == 408
    assert HEADER_TIMEOUT * 0.9 <= seconds <= HEADER_TIMEOUT + SLACK


def test_a_dribbled_body_gets_408_after_the_body_timeout(server):
    body = json.dumps({"inputs": "a slow body " * 20}).encode()
    with connect(server.port) as sock:
        sock.sendall(REQUEST % len(body) + body[:5])
        received, seconds = read_until_closed(sock, BODY_TIMEOUT + SLACK, body[5:])
    status, answer = status_and_body(received)
    assert status == 408 and "body did not arrive within 1.5 s" in answer["error"]["message"]
    assert BODY_TIMEOUT * 0.9 <= seconds <= BODY_TIMEOUT + SLACK


def test_a_keep_alive_connection_gets_the_header_deadline_again_for_its_next_request(server):
    body = json.dumps({"inputs": "first"}).encode()
    with connect(server.port) as sock:
        sock.sendall(REQUEST % len(body) + body)
        first, deadline = b"", time.monotonic() + 30
        while b'"embedding' not in first and b"]]" not in first and time.monotonic() < deadline:
            try:
                first += sock.recv(65536)
            except TimeoutError:
                continue
        assert first.startswith(b"HTTP/1.1 200"), first
        # the next request dribbles its headers (each byte arrives before uvicorn's keep-alive timer)
        received, seconds = read_until_closed(sock, HEADER_TIMEOUT + SLACK, b"POST /embed HTTP/1.1\r\n" + b"X" * 100)
    assert status_and_body(received)[0] == 408
    assert seconds <= HEADER_TIMEOUT + SLACK


def test_complete_requests_are_unaffected_and_closes_are_counted(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for _ in range(3):  # keep-alive: three requests on one connection, each well inside the limits
            assert client.post("/embed", json={"inputs": ["one", "two"]}).status_code == 200
        metrics = client.get("/metrics").text
    counted = {
        line.split("reason=")[1].split("}")[0].strip('"'): float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("fastembed_adapter_http_connections_closed_total{")
    }
    assert counted.get("header_timeout", 0) >= 24 and counted.get("body_timeout", 0) >= 1


def test_connections_over_the_cap_get_503_and_close(prepared_base, tmp_path):
    with live_server(prepared_base("bert"), tmp_path, "--max-connections", "3", "--header-timeout", "4") as live:
        held = [connect(live.port) for _ in range(3)]
        time.sleep(0.3)  # the server has accepted them
        with connect(live.port) as extra:
            received, seconds = read_until_closed(extra, 5)
        status, body = status_and_body(received)
        assert status == 503 and body["error"]["type"] == "overloaded" and seconds < 2
        assert b"retry-after: 1" in received.lower()
        for sock in held:
            sock.close()
        time.sleep(0.3)
        with httpx.Client(base_url=live.base_url, timeout=30) as client:  # capacity is back
            assert client.post("/embed", json={"inputs": "hello"}).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [("header_timeout", 0), ("body_timeout", -1.0), ("max_connections", 0), ("max_connections", 2.5)],
)
def test_bad_limits_are_refused(field, value):
    from fastembed_adapter.errors import InvalidInputError
    from fastembed_adapter.server import ServerSettings

    with pytest.raises(InvalidInputError, match=field):
        ServerSettings(model="m", **{field: value})

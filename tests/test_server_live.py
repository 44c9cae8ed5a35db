"""The real server: ``fastembed-adapter serve`` in a subprocess on 127.0.0.1, driven over HTTP with httpx."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import time

import httpx
import numpy as np
import pytest

from fastembed_adapter import OnnxSentenceEncoder
from server_support import live_server

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["The quick brown fox.", "How do I reset my password?", "Numbers like 42 appear in reports."]
LONG_TEXT = " ".join(["tokenizers split words into smaller pieces"] * 20)
# INT8 (per-token) in the server vs INT8 in process: the batch composition may differ slightly.
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def server(prepared_base, tmp_path_factory):
    """One server for the module, configured from the environment only (PORT, FEA_*)."""
    env = {"FEA_API_KEY": KEY, "FEA_MAX_INPUTS": "8", "FEA_MAX_BODY_BYTES": "20000", "FEA_MODEL_NAME": "tiny-bert"}
    with live_server(prepared_base("bert"), tmp_path_factory.mktemp("logs"), env=env, port_from_env=True) as live:
        yield live


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30.0) as client:
        yield client


def cosine_rows(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_health_info_models_metrics(server, client):
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ready"}  # no key needed
    info = client.get("/info").json()
    assert info["model"] == "tiny-bert" and info["dimension"] == 32 and info["limits"]["max_inputs"] == 8
    assert info["quantization"]["dtype"] == "int8"
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny-bert"
    metrics = client.get("/metrics").text
    assert "fastembed_adapter_http_requests_total" in metrics and "fastembed_adapter_queue_depth" in metrics
    assert httpx.get(f"{server.base_url}/info").status_code == 401


def test_openai_client_shaped_request(server, client, prepared_base):
    """What the openai SDK sends by default (base64), decoded the way it decodes it."""
    response = client.post(
        "/v1/embeddings",
        json={"input": TEXTS, "model": "text-embedding-3-small", "encoding_format": "base64"},
        headers={"User-Agent": "OpenAI/Python 1.99.0", "X-Stainless-Lang": "python", "X-Request-ID": "req-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-1"
    body = response.json()
    assert body["object"] == "list" and body["model"] == "tiny-bert"
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    rows = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in body["data"]]
    reference = OnnxSentenceEncoder(prepared_base("bert"), threads=1, metrics=False).encode(TEXTS)
    assert cosine_rows(rows, reference).min() >= MIN_COSINE
    floats = client.post("/v1/embeddings", json={"input": TEXTS[0], "model": "x"}).json()
    assert len(floats["data"][0]["embedding"]) == 32


def test_tei_embed(client):
    response = client.post("/embed", json={"inputs": TEXTS, "normalize": True, "truncate": False})
    vectors = np.array(response.json())
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("path", "content", "status"),
    [
        ("/v1/embeddings", b"{oops", 422),
        ("/v1/embeddings", b'{"input": {"a": 1}}', 422),
        ("/v1/embeddings", b'{"input": []}', 422),
        ("/embed", json.dumps({"inputs": ["x"] * 9}).encode(), 413),
        ("/embed", json.dumps({"inputs": ["y" * 30000]}).encode(), 413),
        ("/embed", json.dumps({"inputs": [LONG_TEXT], "truncate": False}).encode(), 413),
        ("/nope", b"{}", 404),
    ],
)
def test_errors_over_http(client, path, content, status):
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == status and body["error"]["message"]
    assert body["request_id"] == response.headers["x-request-id"]


def test_concurrent_requests_share_micro_batches(server, client):
    def batches() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("fastembed_adapter_microbatch_requests_count"):
                return float(line.split()[-1])
        raise AssertionError("no micro-batch metric")

    async def burst(n: int) -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=60.0) as aclient:
            texts = [f"{text} #{i}" for i, text in enumerate(TEXTS * 8)]
            calls = [aclient.post("/embed", json={"inputs": texts[i % 20 : i % 20 + 4]}) for i in range(n)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    before = batches()
    assert asyncio.run(burst(32)) == [200] * 32
    assert batches() - before < 32  # some requests shared a batch


# -- servers of their own ------------------------------------------------------------------------------


def test_queue_full_gives_429_over_http(prepared_base, tmp_path):
    """One slot: while a big request runs, the others are turned away at once with Retry-After."""
    big = {"inputs": [f"{LONG_TEXT} {i}" for i in range(64)], "truncate": True}

    async def burst(base_url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as aclient:
            return list(await asyncio.gather(*[aclient.post("/embed", json=big) for _ in range(12)]))

    with live_server(prepared_base("bert"), tmp_path, "--max-queue", "1", "--max-inputs", "64") as live:
        for _ in range(3):  # bounded retries: a burst that happened to serialise proves nothing
            responses = asyncio.run(burst(live.base_url))
            rejected = [r for r in responses if r.status_code == 429]
            if rejected:
                break
        assert rejected, "no request was refused with one queue slot"
        assert {r.status_code for r in responses} <= {200, 429}
        assert rejected[0].headers["retry-after"] == "1"
        assert rejected[0].json()["error"]["type"] == "overloaded"


def test_sigterm_drains_in_flight_requests_and_exits_0(prepared_base, tmp_path):
    body = json.dumps({"inputs": TEXTS}).encode()
    head = (
        f"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with live_server(prepared_base("bert"), tmp_path, "--drain-timeout", "20") as live:
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=30)
        try:
            sock.sendall(head + body[:10])  # the request is in flight: half its body is still to come

            def in_progress() -> float:
                for line in httpx.get(f"{live.base_url}/metrics").text.splitlines():
                    if line.startswith('fastembed_adapter_http_requests_in_progress{endpoint="/embed"}'):
                        return float(line.split()[-1])
                return 0.0

            deadline = time.monotonic() + 30
            while in_progress() < 1:
                assert time.monotonic() < deadline, "the request never reached the app"
                time.sleep(0.02)
            live.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while True:  # new connections are refused once the listener is closed
                try:
                    httpx.get(f"{live.base_url}/health", timeout=1)
                except httpx.TransportError:
                    break
                assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
                time.sleep(0.02)
            sock.sendall(body[10:])
            response = b""
            while not response.endswith(b"]]"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                response += chunk
        finally:
            sock.close()
        status_line, _, rest = response.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", response[:300]
        payload = rest.split(b"\r\n\r\n", 1)[1]
        assert np.array(json.loads(payload)).shape == (3, 32)
        assert live.process.wait(timeout=30) == 0, live.log()
        log = live.log()
        assert "draining" in log and "Finished server process" in log


def test_a_model_that_fails_to_load_exits_1(prepared_base, tmp_path):
    with live_server(prepared_base("bert"), tmp_path, "--file-name", "onnx/missing.onnx", ready=False) as live:
        assert live.process.wait(timeout=60) == 1
        lines = [json.loads(line) for line in live.log().splitlines() if line.startswith("{")]
        assert any(line["level"] == "error" and "missing.onnx" in line["message"] for line in lines)

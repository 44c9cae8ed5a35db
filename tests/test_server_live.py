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
from tiny import MAX_SEQ_LENGTH, TinySpec

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


def test_openai_client_shaped_request(server, client, reference):
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
    assert cosine_rows(rows, reference.encode(TEXTS)).min() >= MIN_COSINE
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


# -- the real clients: huggingface_hub's InferenceClient (TEI) and the openai SDK ----------------------


def served(client, endpoint: str, status: int = 200) -> float:
    """The server's request counter for ``endpoint`` and ``status``."""
    prefix = f'fastembed_adapter_http_requests_total{{endpoint="{endpoint}",status="{status}"}}'
    lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


@pytest.fixture(scope="module")
def reference(prepared_base):
    """The same folder and (INT8) file as the server, in process."""
    return OnnxSentenceEncoder(prepared_base("bert"), threads=1, metrics=False)


def test_huggingface_hub_inference_client(server, client, reference, tiny_model):
    """``InferenceClient(model=URL)`` posts feature-extraction and sentence-similarity to ``POST /``."""
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    before = served(client, "/")

    hub = InferenceClient(model=server.base_url, token=KEY, timeout=30)
    expected = reference.encode(TEXTS)
    vector = hub.feature_extraction(TEXTS[0])
    assert vector.dtype == np.float32 and vector.shape == (1, 32)
    assert cosine_rows(vector, expected[:1]).min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)  # normalize defaults to true

    # normalize=False: TEI's vector before normalisation = encode() of the model saved without Normalize
    _, raw_folder = tiny_model(TinySpec(normalize=False))
    raw_expected = OnnxSentenceEncoder(raw_folder, threads=1, metrics=False).encode(TEXTS[:1])
    raw = hub.feature_extraction(TEXTS[0], normalize=False)
    assert cosine_rows(raw, raw_expected).min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(raw), np.linalg.norm(raw_expected), rtol=1e-2)
    assert abs(np.linalg.norm(raw) - 1.0) > 0.01

    short = hub.feature_extraction(TEXTS[0], dimensions=8)
    assert short.shape == (1, 8) and abs(np.linalg.norm(short) - 1.0) < 1e-5
    assert hub.feature_extraction(LONG_TEXT).shape == (1, 32)  # truncated by default, as TEI
    with pytest.raises(HfHubHTTPError) as refused:
        hub.feature_extraction(LONG_TEXT, truncate=False)
    assert refused.value.response.status_code == 413 and str(MAX_SEQ_LENGTH) in refused.value.response.text

    scores = hub.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:])
    assert len(scores) == len(TEXTS) - 1 and all(isinstance(score, float) for score in scores)
    np.testing.assert_allclose(scores, cosine_rows(np.repeat(expected[:1], 2, axis=0), expected[1:]), atol=2e-3)
    with pytest.raises(HfHubHTTPError) as empty:
        hub.sentence_similarity(TEXTS[0], other_sentences=[])
    assert empty.value.response.status_code == 422 and "empty list" in empty.value.response.text

    with pytest.raises(HfHubHTTPError) as unauthorized:
        InferenceClient(model=server.base_url, token="wrong", timeout=30).feature_extraction("x")
    assert unauthorized.value.response.status_code == 401
    assert served(client, "/") - before == 5  # every successful call above went to POST /


def test_openai_client(server, client, reference):
    import openai

    before = served(client, "/v1/embeddings"), served(client, "/embeddings")

    sdk = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=KEY, max_retries=0, timeout=30)
    expected = reference.encode(TEXTS)
    response = sdk.embeddings.create(input=TEXTS, model="text-embedding-3-small")  # the SDK asks for base64
    assert response.model == "tiny-bert" and [item.index for item in response.data] == [0, 1, 2]
    assert response.usage.prompt_tokens == response.usage.total_tokens > 0
    vectors = [item.embedding for item in response.data]
    assert cosine_rows(vectors, expected).min() >= MIN_COSINE
    floats = sdk.embeddings.create(input=TEXTS, model="m", encoding_format="float")
    np.testing.assert_allclose([item.embedding for item in floats.data], vectors, atol=1e-6)
    (short,) = sdk.embeddings.create(input=TEXTS[0], model="m", dimensions=8).data
    assert len(short.embedding) == 8 and abs(np.linalg.norm(short.embedding) - 1.0) < 1e-5
    long = sdk.embeddings.create(input=LONG_TEXT, model="m")  # truncated by default
    assert long.usage.prompt_tokens == MAX_SEQ_LENGTH

    # TEI's alias: base_url without /v1 posts to /embeddings
    alias = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=30)
    same = alias.embeddings.create(input=TEXTS, model="m")
    np.testing.assert_allclose([item.embedding for item in same.data], vectors, atol=1e-6)

    with pytest.raises(openai.UnprocessableEntityError, match="empty list"):
        sdk.embeddings.create(input=[], model="m")
    with pytest.raises(openai.APIStatusError, match="at most 8") as too_many:
        sdk.embeddings.create(input=["x"] * 9, model="m")
    assert too_many.value.status_code == 413
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0).embeddings.create(
            input="x", model="m"
        )
    assert (served(client, "/v1/embeddings") - before[0], served(client, "/embeddings") - before[1]) == (4, 1)


def test_tei_routes_over_http(client, reference):
    tokens = client.post("/tokenize", json={"inputs": [TEXTS[0], "Café"]}).json()
    assert [token["special"] for token in tokens[0]][:1] == [True] and tokens[1][-1]["text"] == "[SEP]"
    cafe = [token for token in tokens[1] if not token["special"]]
    assert cafe[-1]["stop"] == len("Café".encode()) == 5  # byte offsets, as TEI
    token_vectors = client.post("/embed_all", json={"inputs": TEXTS[0]}).json()
    assert np.array(token_vectors).shape == (1, len(tokens[0]), 32)
    similarity = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}}
    np.testing.assert_allclose(
        client.post("/similarity", json=similarity).json(), client.post("/", json=similarity).json()
    )
    embedded = client.post("/invocations", json={"inputs": TEXTS}).json()
    assert cosine_rows(embedded, reference.encode(TEXTS)).min() >= MIN_COSINE
    assert httpx.get(f"{client.base_url}/").json() == {"status": "ready"}  # TEI's health routes need no key
    assert httpx.get(f"{client.base_url}/ping").status_code == 200


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


@pytest.mark.parametrize(
    ("args", "env"), [(("--no-auto-truncate",), {}), ((), {"FEA_AUTO_TRUNCATE": "false"})], ids=["flag", "env"]
)
def test_no_auto_truncate_is_the_strict_mode(prepared_base, tmp_path, args, env):
    with (
        live_server(prepared_base("bert"), tmp_path, *args, env=env) as live,
        httpx.Client(base_url=live.base_url, timeout=30.0) as http,
    ):
        assert http.get("/info").json()["limits"]["auto_truncate"] is False
        refused = http.post("/embed", json={"inputs": [LONG_TEXT]})
        assert refused.status_code == 413 and "--no-auto-truncate" in refused.json()["error"]["message"]
        assert http.post("/v1/embeddings", json={"input": LONG_TEXT}).status_code == 413
        assert http.post("/embed", json={"inputs": [LONG_TEXT], "truncate": True}).status_code == 200


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
    with live_server(prepared_base("bert"), tmp_path, "--drain-timeout", "20", "--drain-grace", "2") as live:
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
            signalled, health, served = time.monotonic(), [], []
            deadline = signalled + 30
            while True:  # the grace period: /health 503 and still serving; then connections are refused
                try:
                    health.append((time.monotonic() - signalled, httpx.get(f"{live.base_url}/health", timeout=1)))
                    if not served:
                        served.append(httpx.post(f"{live.base_url}/embed", json={"inputs": "during the grace"}))
                except httpx.TransportError:
                    break
                assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
                time.sleep(0.05)
            refused_after = time.monotonic() - signalled
            assert health and {r.status_code for _, r in health} == {503}, [(t, r.status_code) for t, r in health]
            assert health[0][1].json()["status"] == "draining"
            assert served[0].status_code == 200  # a load balancer's last requests are still answered
            assert 1.5 <= refused_after <= 10, refused_after  # --drain-grace 2, then the listener closes
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

"""The service in process (httpx over ASGI, no socket): routing, the error table, batching, auth, logs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tokenizers import Tokenizer

from fastembed_adapter import InferenceError, InvalidInputError, ModelNotFoundError, OnnxSentenceEncoder
from fastembed_adapter.server import ServerSettings, create_app
from fastembed_adapter.server.engine import PROBE_TEXT
from fastembed_adapter.server.errors import (
    ERROR_TABLE,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    RequestValidationError,
    UnauthorizedError,
    status_of,
)
from fastembed_adapter.server.logs import JsonFormatter
from server_support import FP32_FILE, Gate, app_client, poll
from tiny import MAX_SEQ_LENGTH

TEXTS = ["The quick brown fox.", "How do I reset my password?", "a", "Numbers like 42 appear in reports."]
LONG_TEXT = " ".join(["tokenizers split words into smaller pieces"] * 20)
MATCH = 1e-5  # FP32 file, same texts: batch composition may only move the last float bits


@pytest.fixture
def folder(prepared_base):
    return prepared_base("bert")


def settings(folder, **overrides) -> ServerSettings:
    return ServerSettings(model=str(folder), file_name=FP32_FILE, threads=1, **overrides)


@pytest.fixture
def reference(folder):
    encoder = OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1, metrics=False)
    return lambda texts: encoder.encode(texts, show_progress_bar=False)


def run(coro):
    return asyncio.run(coro)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert body["error"]["code"] == response.status_code
    assert body["request_id"] == response.headers["x-request-id"]
    return body["error"]


# -- embeddings ----------------------------------------------------------------------------------------


def test_openai_embeddings_shape_usage_and_values(folder, reference):
    async def go():
        async with app_client(create_app(settings(folder))) as client:
            return await client.post("/v1/embeddings", json={"input": TEXTS, "model": "text-embedding-3-small"})

    response = run(go())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == folder.name
    assert [item["index"] for item in body["data"]] == list(range(len(TEXTS)))
    assert all(item["object"] == "embedding" for item in body["data"])
    got = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, reference(TEXTS), atol=MATCH)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokens = sum(len(tokenizer.encode(text).ids) for text in TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_openai_base64_dimensions_and_single_string(folder, reference):
    async def go():
        async with app_client(create_app(settings(folder))) as client:
            b64 = await client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64"})
            short = await client.post("/v1/embeddings", json={"input": TEXTS[0], "dimensions": 8})
            return b64, short

    b64, short = run(go())
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64.json()["data"]])
    np.testing.assert_allclose(decoded, reference(TEXTS), atol=MATCH)
    (row,) = short.json()["data"]
    vector = np.array(row["embedding"])
    assert vector.shape == (8,)
    assert abs(np.linalg.norm(vector) - 1) < 1e-5  # the model normalises, so truncated vectors are re-normalised
    expected = reference([TEXTS[0]])[0, :8]
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=MATCH)


def test_tei_embed_single_string_and_normalize(folder, reference):
    async def go():
        async with app_client(create_app(settings(folder))) as client:
            single = await client.post("/embed", json={"inputs": TEXTS[1]})
            many = await client.post("/embed", json={"inputs": TEXTS, "normalize": False, "dimensions": 4})
            return single, many

    single, many = run(go())
    assert single.status_code == 200 and len(single.json()) == 1  # TEI always answers a list of vectors
    np.testing.assert_allclose(single.json()[0], reference([TEXTS[1]])[0], atol=MATCH)
    assert np.array(many.json()).shape == (len(TEXTS), 4)


def test_long_texts_are_truncated_by_default_unless_the_request_says_no(folder):
    """As sentence-transformers and TEI (auto_truncate defaults to true); ``truncate: false`` still refuses."""
    assert ServerSettings(model="m").auto_truncate is True

    async def go():
        async with app_client(create_app(settings(folder))) as client:
            return (
                await client.post("/embed", json={"inputs": ["ok", LONG_TEXT]}),
                await client.post("/v1/embeddings", json={"input": [LONG_TEXT]}),
                await client.post("/embed", json={"inputs": ["ok", LONG_TEXT], "truncate": False}),
            )

    tei, openai, refused = run(go())
    assert tei.status_code == 200 and np.array(tei.json()).shape == (2, 32)
    assert openai.status_code == 200 and openai.json()["usage"]["prompt_tokens"] == MAX_SEQ_LENGTH
    assert refused.status_code == 413
    message = error_of(refused)["message"]
    assert "Input 1" in message and str(MAX_SEQ_LENGTH) in message and "truncate" in message


def test_no_auto_truncate_refuses_long_texts_unless_the_request_asks(folder):
    async def go():
        async with app_client(create_app(settings(folder, auto_truncate=False))) as client:
            return (
                await client.post("/embed", json={"inputs": ["ok", LONG_TEXT]}),
                await client.post("/v1/embeddings", json={"input": [LONG_TEXT]}),
                await client.post("/embed", json={"inputs": [LONG_TEXT], "truncate": True}),
                (await client.get("/info")).json(),
            )

    tei, openai, asked, info = run(go())
    assert tei.status_code == 413 and "Input 1" in error_of(tei)["message"]
    assert "--no-auto-truncate" in error_of(tei)["message"]
    assert openai.status_code == 413  # OpenAI's API has no truncate field: the server setting decides
    assert asked.status_code == 200
    assert info["limits"]["auto_truncate"] is False


def test_auto_truncate_setting_and_usage_counts_truncated_tokens(folder):
    async def go():
        async with app_client(create_app(settings(folder, auto_truncate=True))) as client:
            return await client.post("/v1/embeddings", json={"input": [LONG_TEXT]})

    response = run(go())
    assert response.status_code == 200
    assert response.json()["usage"]["prompt_tokens"] == MAX_SEQ_LENGTH


# -- the error table -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "status", "needle"),
    [
        ("/v1/embeddings", b"{not json", 422, "not valid JSON"),
        ("/v1/embeddings", b"[1, 2]", 422, "JSON object"),
        ("/v1/embeddings", b'{"model": "m"}', 422, "'input' is required"),
        ("/v1/embeddings", b'{"input": 5}', 422, "got int"),
        ("/v1/embeddings", b'{"input": ["ok", 7]}', 422, "'input[1]' is int"),
        ("/v1/embeddings", b'{"input": [[101, 2023]]}', 422, "Token-id arrays"),
        ("/v1/embeddings", b'{"input": []}', 422, "empty list"),
        ("/v1/embeddings", b'{"input": ""}', 422, "empty string"),
        ("/v1/embeddings", b'{"input": "x", "encoding_format": "int8"}', 422, "encoding_format"),
        ("/v1/embeddings", b'{"input": "x", "dimensions": 0}', 422, "positive integer"),
        ("/v1/embeddings", b'{"input": "x", "dimensions": 4096}', 422, "ask for 1..32"),
        ("/v1/embeddings", b'{"input": "x", "model": 3}', 422, "'model' must be a str"),
        ("/embed", b'{"inputs": "x", "normalize": "yes"}', 422, "'normalize' must be a bool"),
        ("/embed", b'{"inputs": "x", "truncate": 1}', 422, "'truncate' must be a bool"),
        ("/embed", b'{"inputs": "x", "prompt_name": "nope"}', 422, "configured prompts dictionary"),
        ("/v1/embeddings", b'{"input": "a\\ud800b"}', 422, "lone surrogate U+D800"),  # was a 500
        ("/embed", b'{"inputs": ["ok", "\\udfff"]}', 422, "inputs[1] holds a lone surrogate U+DFFF"),
        ("/embed", b'{"inputs": "x", "truncation_direction": "Left"}', 422, "only 'Right'"),
        ("/embed", json.dumps({"inputs": ["x"] * 9}).encode(), 413, "at most 8"),
        ("/embed", json.dumps({"inputs": "y" * 3000}).encode(), 413, "larger than 2000 bytes"),
    ],
)
def test_request_errors(folder, path, content, status, needle):
    async def go():
        async with app_client(create_app(settings(folder, max_inputs=8, max_body_bytes=2000))) as client:
            return await client.post(path, content=content, headers={"content-type": "application/json"})

    response = run(go())
    assert response.status_code == status, response.text
    assert needle in error_of(response)["message"]


def test_streamed_body_over_the_limit_is_413(folder):
    async def chunks():
        for _ in range(10):
            yield b" " * 500  # no Content-Length: the limit is enforced while reading

    async def go():
        async with app_client(create_app(settings(folder, max_body_bytes=2000))) as client:
            return await client.post("/embed", content=chunks())

    response = run(go())
    assert response.status_code == 413 and error_of(response)["type"] == "payload_too_large"


def test_routing_errors_are_json(folder):
    async def go():
        async with app_client(create_app(settings(folder))) as client:
            return await client.get("/nope"), await client.get("/v1/embeddings"), await client.post("/health")

    missing, wrong_method, post_health = run(go())
    assert missing.status_code == 404 and error_of(missing)["type"] == "not_found"
    assert wrong_method.status_code == 405 and error_of(wrong_method)["type"] == "method_not_allowed"
    assert post_health.status_code == 405


def test_error_table_covers_every_class():
    expected = {
        PayloadTooLargeError("x"): 413,
        RequestValidationError("x"): 422,
        InvalidInputError("x"): 422,
        UnauthorizedError("x"): 401,
        OverloadedError("x"): 429,
        NotReadyError("x"): 503,
        ModelNotFoundError("x"): 503,
        InferenceError("x"): 500,
        KeyError("x"): 500,
    }
    for exc, status in expected.items():
        assert status_of(exc).status == status, exc
    classes = [cls for cls, _ in ERROR_TABLE]
    for index, cls in enumerate(classes):  # most specific first, or a subclass would be shadowed
        assert not any(issubclass(cls, earlier) for earlier in classes[:index]), cls


# -- lifecycle: loading, failure, draining -----------------------------------------------------------


def test_503_while_loading_then_ready(folder):
    import threading

    release = threading.Event()

    def slow_factory():
        release.wait(30)
        return OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1, metrics=False)

    async def go():
        app = create_app(settings(folder), encoder_factory=slow_factory)
        async with app_client(app, wait_ready=False) as client:
            try:
                health = await client.get("/health")
                embed = await client.post("/v1/embeddings", json={"input": "x"})
                info = await client.get("/info")
                models = await client.get("/v1/models")
            finally:
                release.set()
            await poll(lambda: app.state.host.state.value == "ready")
            return health, embed, info, models, await client.get("/health")

    health, embed, info, models, later = run(go())
    assert health.status_code == 503 and health.json()["status"] == "loading"
    assert embed.status_code == 503 and embed.headers["retry-after"] == "5"
    assert "loading" in error_of(embed)["message"]
    assert info.status_code == 503
    assert models.status_code == 200 and models.json()["data"][0]["id"] == folder.name
    assert later.status_code == 200 and later.json() == {"status": "ready"}


def test_failed_load_reports_503_with_the_cause(folder, tmp_path):
    async def go():
        app = create_app(settings(tmp_path / "missing"))
        async with app_client(app, wait_ready=False) as client:
            await poll(lambda: app.state.host.state.value == "failed")
            return await client.get("/health"), await client.post("/embed", json={"inputs": "x"})

    health, embed = run(go())
    assert health.status_code == 503 and health.json()["status"] == "failed"
    assert "ModelNotFoundError" in health.json()["error"]
    assert embed.status_code == 503 and "failed to load" in error_of(embed)["message"]


def test_draining_reports_503_but_finishes_requests(folder):
    async def go():
        app = create_app(settings(folder))
        async with app_client(app) as client:
            app.state.host.begin_drain()
            return await client.get("/health"), await client.post("/embed", json={"inputs": "still served"})

    health, embed = run(go())
    assert health.status_code == 503 and health.json()["status"] == "draining"
    assert embed.status_code == 200


# -- micro-batching, backpressure, isolation -------------------------------------------------------------


def gated_app(folder, gate: Gate, **overrides):
    registry = CollectorRegistry()

    def factory():
        encoder = OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1, registry=registry)
        return gate.wrap(encoder, PROBE_TEXT)

    return create_app(settings(folder, **overrides), registry=registry, encoder_factory=factory)


def test_concurrent_requests_merge_into_one_batch_in_order(folder, reference):
    gate = Gate()
    groups = [TEXTS[:2], [TEXTS[2]], TEXTS[1:], ["one more text", "and another"]]

    async def go():
        app = gated_app(folder, gate)
        host = app.state.host
        async with app_client(app) as client:
            first = asyncio.create_task(client.post("/embed", json={"inputs": ["holds the worker"]}))
            await poll(gate.entered.is_set, what="first batch running")
            rest = [asyncio.create_task(client.post("/embed", json={"inputs": group})) for group in groups]
            await poll(lambda: host.batcher.outstanding == 1 + len(groups), what="requests queued")
            gate.release.set()
            responses = await asyncio.gather(first, *rest)
            metrics = (await client.get("/metrics")).text
            return responses, metrics

    responses, metrics = run(go())
    assert all(r.status_code == 200 for r in responses)
    assert gate.calls == [["holds the worker"], [text for group in groups for text in group]]
    for group, response in zip(groups, responses[1:], strict=True):
        np.testing.assert_allclose(np.array(response.json()), reference(group), atol=MATCH)
    assert "fastembed_adapter_microbatch_requests_count 2.0" in metrics
    assert "fastembed_adapter_microbatch_requests_sum 5.0" in metrics


def test_batch_limits_split_the_queue(folder):
    gate = Gate()

    async def go():
        app = gated_app(folder, gate, max_batch_texts=3)
        host = app.state.host
        async with app_client(app) as client:
            first = asyncio.create_task(client.post("/embed", json={"inputs": ["x"]}))
            await poll(gate.entered.is_set)
            rest = [asyncio.create_task(client.post("/embed", json={"inputs": ["a", "b"]})) for _ in range(3)]
            await poll(lambda: host.batcher.outstanding == 4)
            gate.release.set()
            return await asyncio.gather(first, *rest)

    responses = run(go())
    assert all(r.status_code == 200 for r in responses)
    assert [len(call) for call in gate.calls] == [1, 2, 2, 2]  # 2 + 2 would exceed max_batch_texts=3


def test_queue_full_is_429_with_retry_after(folder):
    gate = Gate()

    async def go():
        app = gated_app(folder, gate, max_queue=2)
        host = app.state.host
        async with app_client(app) as client:
            first = asyncio.create_task(client.post("/v1/embeddings", json={"input": "a"}))
            await poll(gate.entered.is_set)
            second = asyncio.create_task(client.post("/v1/embeddings", json={"input": "b"}))
            await poll(lambda: host.batcher.outstanding == 2)
            third = await client.post("/v1/embeddings", json={"input": "c"})
            gate.release.set()
            return third, await first, await second, (await client.get("/metrics")).text

    third, first, second, metrics = run(go())
    assert third.status_code == 429 and third.headers["retry-after"] == "1"
    assert error_of(third)["type"] == "overloaded" and "--max-queue" in error_of(third)["message"]
    assert first.status_code == 200 and second.status_code == 200
    assert 'fastembed_adapter_rejected_total{reason="queue_full"} 1.0' in metrics


@pytest.mark.parametrize(
    ("error", "status", "kind"), [(InferenceError, 500, "inference_error"), (KeyError, 500, "internal_error")]
)
def test_a_failing_request_does_not_fail_its_batch_mates(folder, reference, error, status, kind):
    gate = Gate(poison="POISON", error=error)

    async def go():
        app = gated_app(folder, gate)
        host = app.state.host
        async with app_client(app) as client:
            first = asyncio.create_task(client.post("/embed", json={"inputs": ["holds the worker"]}))
            await poll(gate.entered.is_set)
            bad = asyncio.create_task(client.post("/embed", json={"inputs": ["fine", "POISON"]}))
            good = asyncio.create_task(client.post("/embed", json={"inputs": TEXTS}))
            await poll(lambda: host.batcher.outstanding == 3)
            gate.release.set()
            responses = await asyncio.gather(first, bad, good)
            after = await client.post("/embed", json={"inputs": ["the service still works"]})
            return responses, after

    (first, bad, good), after = run(go())
    assert first.status_code == 200 and after.status_code == 200
    assert bad.status_code == status and error_of(bad)["type"] == kind
    if kind == "internal_error":
        assert "POISON" not in bad.text  # unexpected errors do not leak their message
    np.testing.assert_allclose(np.array(good.json()), reference(TEXTS), atol=MATCH)
    assert gate.calls[1] == ["fine", "POISON", *TEXTS]  # merged, failed, then retried one by one
    assert gate.calls[2:] == [["fine", "POISON"], TEXTS, ["the service still works"]]


# -- info, models, metrics ----------------------------------------------------------------------------


def test_info_models_metrics(folder):
    async def go():
        async with app_client(create_app(settings(folder, model_name="tiny"))) as client:
            await client.post("/embed", json={"inputs": TEXTS})
            return await client.get("/info"), await client.get("/v1/models"), await client.get("/metrics")

    info, models, metrics = run(go())
    body = info.json()
    assert body["model"] == "tiny" and body["dimension"] == 32 and body["max_seq_length"] == MAX_SEQ_LENGTH
    assert body["quantization"]["dtype"] == "float32" and body["file"] == FP32_FILE
    assert body["versions"]["fastembed-adapter"] and body["versions"]["onnxruntime"]
    assert body["limits"]["max_inputs"] == 512
    assert models.json() == {
        "object": "list",
        "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "local"}],
    }
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for needle in (
        'fastembed_adapter_inference_seconds_count{model="tiny"}',  # the encoder's stage timings
        'fastembed_adapter_tokenize_seconds_bucket{le="1e-05",model="tiny"}',
        'fastembed_adapter_http_requests_total{endpoint="/embed",status="200"} 1.0',
        'fastembed_adapter_http_request_duration_seconds_count{endpoint="/embed"} 1.0',
        "fastembed_adapter_queue_depth 0.0",
        "fastembed_adapter_microbatch_texts_sum 4.0",
    ):
        assert needle in text, needle


def test_int8_info_names_the_recipe(folder):
    async def go():
        app = create_app(ServerSettings(model=str(folder), threads=1))
        async with app_client(app) as client:
            return (await client.get("/info")).json()

    quantization = run(go())["quantization"]
    assert quantization["dtype"] == "int8" and quantization["target"] and quantization["recipe"]


# -- auth, request ids, access log --------------------------------------------------------------------


def test_api_key(folder):
    async def go():
        async with app_client(create_app(settings(folder, api_key="s3cret"))) as client:
            results = {
                "health": await client.get("/health"),
                "none": await client.post("/embed", json={"inputs": "x"}),
                "wrong": await client.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer nope"}),
                "basic": await client.get("/info", headers={"Authorization": "Basic s3cret"}),
                "metrics": await client.get("/metrics"),
                "right": await client.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer s3cret"}),
            }
            return results

    results = run(go())
    assert results["health"].status_code == 200
    for name in ("none", "wrong", "basic", "metrics"):
        assert results[name].status_code == 401, name
        assert results[name].headers["www-authenticate"] == "Bearer"
        assert error_of(results[name])["type"] == "unauthorized"
    assert results["right"].status_code == 200


def test_request_ids_and_one_access_log_line_per_request(folder, caplog):
    async def go():
        async with app_client(create_app(settings(folder))) as client:
            caplog.clear()
            given = await client.post("/embed", json={"inputs": TEXTS}, headers={"X-Request-ID": "abc-123"})
            bad = await client.post("/embed", json={"inputs": []}, headers={"X-Request-ID": "not ok\x7f"})
            return given, bad

    with caplog.at_level(logging.INFO, logger="fastembed_adapter.server.access"):
        given, bad = run(go())
    assert given.headers["x-request-id"] == "abc-123"
    generated = bad.headers["x-request-id"]
    assert len(generated) == 32 and generated != "abc-123"
    records = [r for r in caplog.records if r.name == "fastembed_adapter.server.access"]
    assert [r.fields["request_id"] for r in records] == ["abc-123", generated]
    ok, failed = (r.fields for r in records)
    assert ok["status"] == 200 and ok["texts"] == len(TEXTS) and ok["tokens"] > 0 and ok["duration_ms"] > 0
    assert failed["status"] == 422 and failed["error"] == "RequestValidationError"
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "abc-123" and line["path"] == "/embed" and line["level"] == "info"


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 70000),
        ("max_queue", 0),
        ("max_batch_wait_ms", -1),
        ("log_format", "xml"),
        ("api_key", " "),
        ("threads", 0),
    ],
)
def test_settings_are_validated(field, value):
    with pytest.raises(InvalidInputError, match=field):
        ServerSettings(model="m", **{field: value})


def test_settings_repr_hides_the_key():
    assert "s3cret" not in repr(ServerSettings(model="m", api_key="s3cret"))

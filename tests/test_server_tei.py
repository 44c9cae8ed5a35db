"""text-embeddings-inference's routes in process: ``/embed`` normalize, ``/embed_all``, ``/similarity``,
``/tokenize``, the aliases (``POST /``, ``/invocations``, ``/embeddings``, ``GET /``, ``/ping``) and their errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.server import ServerSettings, create_app
from fastembed_adapter.server.engine import PROBE_TEXT
from fastembed_adapter.server.outputs import Outputs
from fastembed_adapter.server.routes import API_PATHS, PUBLIC_PATHS, ROUTES
from fastembed_adapter.server.schemas import Output
from server_support import FP32_FILE, Gate, app_client, poll
from tiny import DENSE_OUT, HIDDEN, MAX_SEQ_LENGTH, TinySpec

TEXTS = ["The quick brown fox.", "How do I reset my password?", "a", "Numbers like 42 appear in reports."]
LONG_TEXT = " ".join(["tokenizers split words into smaller pieces"] * 20)
UNICODE_TEXT = "Café déjà vu: naïve façade!"
MATCH = 1e-5  # FP32 file, same texts: batch composition may only move the last float bits
PROMPTS = {"query": "query: ", "document": "passage: "}


def settings(folder, **overrides) -> ServerSettings:
    return ServerSettings(model=str(folder), file_name=FP32_FILE, threads=1, **overrides)


def encoder_of(folder) -> OnnxSentenceEncoder:
    return OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1, metrics=False)


def run(coro):
    return asyncio.run(coro)


async def calls(folder, requests, **overrides):
    """``[(method, path, json body)]`` against one in-process app; the responses in order."""
    async with app_client(create_app(settings(folder, **overrides))) as client:
        return [await client.request(method, path, json=body) for method, path, body in requests]


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response) -> dict:
    body = response.json()
    assert body["error"]["code"] == response.status_code
    assert body["request_id"] == response.headers["x-request-id"]
    return body["error"]


@pytest.fixture
def folder(prepared_base):
    return prepared_base("bert")


@pytest.fixture(scope="module")
def tiny_model(make_st_model, prepared_base, tmp_path_factory):
    """Factory: an ONNX folder for a spec: its sentence-transformers folder (module weights kept, the
    transformer's dropped) plus the ``onnx/`` files prepared for the same transformer weights."""
    root = tmp_path_factory.mktemp("server-variants")
    done = {}

    def get(spec: TinySpec) -> tuple[Path, Path]:
        if spec.name not in done:
            source = make_st_model(spec)
            out = root / spec.name

            def transformer_weights(folder, names):
                return [name for name in names if Path(folder) == source and name.endswith((".safetensors", ".bin"))]

            shutil.copytree(source, out, ignore=transformer_weights)
            shutil.copytree(prepared_base(spec.arch) / "onnx", out / "onnx")
            done[spec.name] = (source, out)
        return done[spec.name]

    return get


# -- /embed normalize: TEI returns the vector before normalisation for normalize=false ----------------


@pytest.mark.parametrize(
    "spec",
    [
        TinySpec(),  # mean pooling + Normalize
        TinySpec(dense="tanh", layer_norm=True),  # Dense and LayerNorm run, only Normalize is left out
        TinySpec(prompts=PROMPTS, include_prompt=False),  # pooling reuses encode()'s prompt-free mask
    ],
    ids=lambda spec: spec.name,
)
def test_embed_normalize_false_is_the_vector_before_the_final_normalize(tiny_model, spec):
    """Reference: ``encode()`` of the same model saved without its Normalize module."""
    _, onnx_folder = tiny_model(spec)
    _, raw_folder = tiny_model(dataclasses.replace(spec, normalize=False))
    prompt = {"prompt_name": "query"} if spec.prompts else {}
    raw = encoder_of(raw_folder).encode(TEXTS, show_progress_bar=False, **prompt)
    unit = encoder_of(onnx_folder).encode(TEXTS, show_progress_bar=False, **prompt)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)  # the test can tell them apart

    responses = run(
        calls(
            onnx_folder,
            [
                ("POST", "/embed", {"inputs": TEXTS, "normalize": False, **prompt}),
                ("POST", "/embed", {"inputs": TEXTS, **prompt}),  # normalize defaults to true
                ("POST", "/embed", {"inputs": TEXTS, "normalize": False, "dimensions": 4, **prompt}),
                ("POST", "/embed", {"inputs": TEXTS, "normalize": True, "dimensions": 4, **prompt}),
                ("POST", "/v1/embeddings", {"input": TEXTS}),
            ],
        )
    )
    without, default, raw_cut, unit_cut, openai = (ok(r) for r in responses)
    np.testing.assert_allclose(without, raw, atol=MATCH)
    np.testing.assert_allclose(default, unit, atol=MATCH)
    np.testing.assert_allclose(raw_cut, raw[:, :4], atol=MATCH)  # cut, not re-normalised (as TEI)
    np.testing.assert_allclose(unit_cut, raw[:, :4] / np.linalg.norm(raw[:, :4], axis=1, keepdims=True), atol=MATCH)
    plain = encoder_of(onnx_folder).encode(TEXTS, show_progress_bar=False)
    np.testing.assert_allclose([row["embedding"] for row in openai["data"]], plain, atol=MATCH)  # encode() as is


def test_embed_normalize_on_a_model_without_normalize(tiny_model):
    _, raw_folder = tiny_model(TinySpec(normalize=False))
    raw = encoder_of(raw_folder).encode(TEXTS, show_progress_bar=False)
    requests = [("POST", "/embed", {"inputs": TEXTS}), ("POST", "/embed", {"inputs": TEXTS, "normalize": False})]
    normalized, plain = (ok(r) for r in run(calls(raw_folder, requests)))
    np.testing.assert_allclose(normalized, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=MATCH)
    np.testing.assert_allclose(plain, raw, atol=MATCH)


def test_one_micro_batch_runs_one_encode_call_per_output(tiny_model, monkeypatch):
    """Queued together, requests for the normalized and the unnormalized vectors share a micro-batch:
    one encode call per kind of output, each request gets its own rows."""
    _, onnx_folder = tiny_model(TinySpec(dense="identity"))
    _, raw_folder = tiny_model(TinySpec(dense="identity", normalize=False))
    raw = encoder_of(raw_folder).encode(TEXTS, show_progress_bar=False)
    gate = Gate()
    computed = []
    compute = Outputs.compute

    def spy(self, texts, key):
        computed.append((key.output, list(texts)))
        return compute(self, texts, key)

    monkeypatch.setattr(Outputs, "compute", spy)
    bodies = [
        {"inputs": TEXTS[:2], "normalize": False},
        {"inputs": TEXTS[2:]},
        {"inputs": TEXTS[2:], "normalize": False},
    ]

    async def go():
        app = create_app(settings(onnx_folder), encoder_factory=lambda: gate.wrap(encoder_of(onnx_folder), PROBE_TEXT))
        async with app_client(app) as client:
            first = asyncio.create_task(client.post("/embed", json={"inputs": ["holds the worker"]}))
            await poll(gate.entered.is_set, what="first batch running")
            rest = [asyncio.create_task(client.post("/embed", json=body)) for body in bodies]
            await poll(lambda: app.state.host.batcher.outstanding == 1 + len(bodies), what="requests queued")
            gate.release.set()
            return await asyncio.gather(first, *rest)

    _, first, second, third = (ok(r) for r in run(go()))
    assert (
        computed
        == [
            (Output.SENTENCE, ["holds the worker"]),
            (Output.UNNORMALIZED, TEXTS[:2] + TEXTS[2:]),  # the first and the third request, in one call
            (Output.SENTENCE, TEXTS[2:]),
        ]
    )
    assert np.array(first).shape == (2, DENSE_OUT)
    np.testing.assert_allclose(first, raw[:2], atol=MATCH)
    np.testing.assert_allclose(second, raw[2:] / np.linalg.norm(raw[2:], axis=1, keepdims=True), atol=MATCH)
    np.testing.assert_allclose(third, raw[2:], atol=MATCH)


@pytest.mark.parametrize(("path", "body"), [("/embed", {}), ("/v1/embeddings", {}), ("/embed_all", {})])
def test_a_request_is_tokenized_once(folder, path, body):
    """The server counts tokens (truncation check, usage) and encodes: one tokenization of each text."""
    encoded = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def encode_batch_fast(self, texts, add_special_tokens=True):
            encoded.extend(texts)
            return self.inner.encode_batch_fast(texts, add_special_tokens=add_special_tokens)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    def factory():
        encoder = encoder_of(folder)
        tokenizer = encoder.tokenizer
        tokenizer._clones[None] = Counting(tokenizer._truncating(None))
        tokenizer.tokenizer = Counting(tokenizer.tokenizer)
        return encoder

    texts = [*TEXTS, LONG_TEXT]
    key = "input" if path.startswith("/v1") else "inputs"

    async def go():
        async with app_client(create_app(settings(folder), encoder_factory=factory)) as client:
            encoded.clear()
            return await client.post(path, json={key: texts, **body})

    ok(run(go()))
    assert sorted(encoded) == sorted(texts)


# -- /embed_all ------------------------------------------------------------------------------------


def test_embed_all_returns_every_token_vector(folder):
    encoder = encoder_of(folder)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    reference = encoder.encode(TEXTS, output_value="token_embeddings", show_progress_bar=False)
    responses = run(
        calls(
            folder,
            [
                ("POST", "/embed_all", {"inputs": TEXTS}),
                ("POST", "/embed_all", {"inputs": TEXTS[1]}),
                ("POST", "/embed_all", {"inputs": [LONG_TEXT]}),
                ("POST", "/embed_all", {"inputs": [LONG_TEXT], "truncate": False}),
            ],
        )
    )
    many, single, long_ok = (ok(r) for r in responses[:3])
    assert len(many) == len(TEXTS)
    for text, rows, expected in zip(TEXTS, many, reference, strict=True):
        assert np.array(rows).shape == (len(tokenizer.encode(text).ids), HIDDEN)
        np.testing.assert_allclose(rows, expected, atol=MATCH)
    assert len(single) == 1
    np.testing.assert_allclose(single[0], reference[1], atol=MATCH)
    assert np.array(long_ok).shape == (1, MAX_SEQ_LENGTH, HIDDEN)  # truncated, as the server truncates by default
    assert responses[3].status_code == 413


def test_embed_all_drops_the_padding_of_left_padded_batches(folder):
    """sentence-transformers keeps leading pad rows in token embeddings; TEI (no padding) has none."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def left_padded():
        encoder = encoder_of(folder)
        encoder.tokenizer.padding_side = "left"
        return encoder

    async def go():
        app = create_app(settings(folder), encoder_factory=left_padded)
        async with app_client(app) as client:
            return await client.post("/embed_all", json={"inputs": TEXTS})

    rows = ok(run(go()))
    lengths = [len(tokenizer.encode(text).ids) for text in TEXTS]
    assert [len(row) for row in rows] == lengths
    longest = int(np.argmax(lengths))  # not padded in its batch: the same as encoding it alone
    alone = encoder_of(folder).encode(TEXTS[longest], output_value="token_embeddings", show_progress_bar=False)
    np.testing.assert_allclose(rows[longest], alone, atol=MATCH)


# -- /similarity and POST / -----------------------------------------------------------------------


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (b @ a) / np.linalg.norm(a) / np.linalg.norm(b, axis=-1)


def test_similarity_and_the_root_routes(folder):
    vectors = encoder_of(folder).encode(TEXTS, show_progress_bar=False)
    expected = cosine(vectors[0], vectors[1:])
    similarity = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}}
    with_parameters = {**similarity, "parameters": {"truncate": True, "truncation_direction": "right"}}
    embed = {"inputs": TEXTS, "normalize": False}
    responses = run(
        calls(
            folder,
            [
                ("POST", "/similarity", similarity),
                ("POST", "/similarity", with_parameters),
                ("POST", "/", similarity),  # huggingface_hub's sentence_similarity posts here
                ("POST", "/invocations", similarity),
                ("POST", "/", embed),  # and feature_extraction here
                ("POST", "/invocations", embed),
                ("POST", "/embed", embed),
                ("POST", "/similarity", {"inputs": {"source_sentence": TEXTS[0], "sentences": [TEXTS[0]]}}),
            ],
        )
    )
    scores, scores_parameters, root, invocations, root_embed, invocations_embed, embedded, itself = (
        ok(r) for r in responses
    )
    for got in (scores, scores_parameters, root, invocations):
        assert isinstance(got, list) and all(isinstance(score, float) for score in got)
        np.testing.assert_allclose(got, expected, atol=MATCH)
    np.testing.assert_allclose(root_embed, embedded, atol=MATCH)
    np.testing.assert_allclose(invocations_embed, embedded, atol=MATCH)
    np.testing.assert_allclose(itself, [1.0], atol=MATCH)


def test_similarity_with_a_prompt(tiny_model):
    _, prompted = tiny_model(TinySpec(prompts=PROMPTS))
    vectors = encoder_of(prompted).encode(TEXTS, prompt_name="query", show_progress_bar=False)
    body = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}, "parameters": {"prompt_name": "query"}}
    (response,) = run(calls(prompted, [("POST", "/similarity", body)]))
    np.testing.assert_allclose(ok(response), cosine(vectors[0], vectors[1:]), atol=MATCH)


# -- /tokenize ---------------------------------------------------------------------------------------


def tei_reference(tokenizer: Tokenizer, text: str, add_special_tokens: bool = True) -> list[dict]:
    """What TEI (Rust, byte offsets) answers for ``text``, built from the char offsets of the Python binding."""
    encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    rows = []
    for token_id, token, (start, stop), special in zip(
        encoding.ids, encoding.tokens, encoding.offsets, encoding.special_tokens_mask, strict=True
    ):
        if special:
            rows.append({"id": token_id, "text": token, "special": True, "start": None, "stop": None})
        else:
            first, last = len(text[:start].encode()), len(text[:stop].encode())
            piece = text.encode()[first:last].decode()
            rows.append({"id": token_id, "text": piece, "special": False, "start": first, "stop": last})
    return rows


def test_tokenize_matches_tei_shape_and_byte_offsets(folder):
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    responses = run(
        calls(
            folder,
            [
                ("POST", "/tokenize", {"inputs": [TEXTS[0], UNICODE_TEXT]}),
                ("POST", "/tokenize", {"inputs": UNICODE_TEXT, "add_special_tokens": False}),
                ("POST", "/tokenize", {"inputs": LONG_TEXT}),
            ],
        )
    )
    many, plain, long = (ok(r) for r in responses)
    assert many == [tei_reference(tokenizer, TEXTS[0]), tei_reference(tokenizer, UNICODE_TEXT)]
    first = many[0][0]
    assert first == {
        "id": tokenizer.token_to_id("[CLS]"),
        "text": "[CLS]",
        "special": True,
        "start": None,
        "stop": None,
    }
    assert many[0][-1]["text"] == "[SEP]" and many[0][-1]["special"] is True
    deja = next(token for token in many[1] if token["text"].startswith("d"))
    assert deja["start"] == len("Café ".encode()) == 6  # UTF-8 bytes, not characters (5), as TEI
    assert plain == [tei_reference(tokenizer, UNICODE_TEXT, add_special_tokens=False)]
    assert not any(token["special"] for token in plain[0])
    assert len(long[0]) > MAX_SEQ_LENGTH  # tokenize never truncates (as TEI)


def test_tokenize_prepends_the_prompt(tiny_model):
    _, prompted = tiny_model(TinySpec(prompts=PROMPTS))
    tokenizer = Tokenizer.from_file(str(prompted / "tokenizer.json"))

    def with_default_prompt():
        return OnnxSentenceEncoder(
            prompted, file_name=FP32_FILE, threads=1, metrics=False, default_prompt_name="document"
        )

    async def go():
        app = create_app(settings(prompted), encoder_factory=with_default_prompt)
        async with app_client(app) as client:
            return (
                await client.post("/tokenize", json={"inputs": TEXTS[0], "prompt_name": "query"}),
                await client.post("/tokenize", json={"inputs": TEXTS[0]}),  # the default prompt, as embedding uses
            )

    query, default = (ok(r) for r in run(go()))
    assert query == [tei_reference(tokenizer, "query: " + TEXTS[0])]
    assert default == [tei_reference(tokenizer, "passage: " + TEXTS[0])]
    assert query[0][1]["start"] == 0 and query[0][0]["special"]  # offsets index the prompted text


# -- aliases, health, auth, metrics ------------------------------------------------------------------


def test_aliases_health_and_auth(folder):
    async def go():
        async with app_client(create_app(settings(folder, api_key="s3cret"))) as client:
            key = {"Authorization": "Bearer s3cret"}
            return {
                "get_root": await client.get("/"),
                "ping": await client.get("/ping"),
                "head_root": await client.head("/"),
                "post_root": await client.post("/", json={"inputs": "x"}),
                "post_health": await client.post("/health", json={}),
                "embeddings": await client.post("/embeddings", json={"input": TEXTS}, headers=key),
                "v1": await client.post("/v1/embeddings", json={"input": TEXTS}, headers=key),
                "tokenize": await client.post("/tokenize", json={"inputs": "x"}),
                "metrics": await client.get("/metrics", headers=key),
            }

    got = run(go())
    for name in ("get_root", "ping"):
        assert got[name].status_code == 200 and got[name].json() == {"status": "ready"}, name
    assert got["head_root"].status_code == 200
    for name in ("post_root", "post_health", "tokenize"):  # only reading the health checks is public
        assert got[name].status_code == 401, name
    alias, v1 = ok(got["embeddings"]), ok(got["v1"])
    assert alias["data"] == v1["data"] and alias["usage"] == v1["usage"]
    text = got["metrics"].text
    for endpoint in ("/", "/ping", "/embeddings"):
        assert f'fastembed_adapter_http_requests_total{{endpoint="{endpoint}",' in text, endpoint


def test_colbert_routes_refuse_a_sentence_embedding_model(folder):
    responses = run(
        calls(
            folder,
            [
                ("POST", "/embed_multi", {"inputs": ["a"]}),
                ("POST", "/rerank", {"query": "q", "texts": ["a"]}),
                ("POST", "/rerank", {"query": 5, "texts": ["a"]}),
            ],
        )
    )
    assert [r.status_code for r in responses] == [400, 400, 422]
    assert error_of(responses[0])["type"] == "wrong_model_kind"
    assert "need a ColBERT model" in error_of(responses[1])["message"]


def test_the_route_table_lists_every_tei_route():
    table = {(route.path, method) for route in ROUTES for method in route.methods or ()}
    for path in (
        "/",
        "/invocations",
        "/embed",
        "/embed_all",
        "/similarity",
        "/tokenize",
        "/embeddings",
        "/v1/embeddings",
        "/embed_multi",
        "/rerank",
    ):
        assert (path, "POST") in table, path
    for path in ("/", "/health", "/ping", "/info", "/metrics", "/v1/models"):
        assert (path, "GET") in table, path
    assert {route.path for route in ROUTES} == API_PATHS
    assert {"/health", "/", "/ping", "/openapi.json", "/docs"} == PUBLIC_PATHS


def test_not_ready_applies_to_the_new_routes(tmp_path):
    async def go():
        app = create_app(settings(tmp_path / "missing"))
        async with app_client(app, wait_ready=False) as client:
            await poll(lambda: app.state.host.state.value == "failed")
            return [
                await client.post(path, json=body)
                for path, body in (
                    ("/embed_all", {"inputs": "x"}),
                    ("/similarity", {"inputs": {"source_sentence": "x", "sentences": ["y"]}}),
                    ("/tokenize", {"inputs": "x"}),
                    ("/", {"inputs": "x"}),
                )
            ]

    for response in run(go()):
        assert response.status_code == 503 and "failed to load" in error_of(response)["message"]


# -- errors: the one table ----------------------------------------------------------------------------


SIM = "/similarity"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        (SIM, {"inputs": "x"}, 422, "must be an object"),
        (SIM, {}, 422, "got nothing"),
        (SIM, {"inputs": {"sentences": ["a"]}}, 422, "'inputs.source_sentence' must be a non-empty string"),
        (SIM, {"inputs": {"source_sentence": "", "sentences": ["a"]}}, 422, "got an empty string"),
        (SIM, {"inputs": {"source_sentence": 3, "sentences": ["a"]}}, 422, "got int"),
        (SIM, {"inputs": {"source_sentence": "a"}}, 422, "'inputs.sentences' must be a list"),
        (SIM, {"inputs": {"source_sentence": "a", "sentences": "b"}}, 422, "got str"),
        (SIM, {"inputs": {"source_sentence": "a", "sentences": []}}, 422, "empty list"),
        (SIM, {"inputs": {"source_sentence": "a", "sentences": ["b", 7]}}, 422, "'inputs.sentences[1]' is int"),
        (SIM, {"inputs": {"source_sentence": "a", "sentences": ["b", ""]}}, 422, "'inputs.sentences[1]' is an empty"),
        (SIM, {"inputs": {"source_sentence": "a", "sentences": ["b"] * 8}}, 413, "at most 8"),
        (SIM, {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": [1]}, 422, "'parameters' must be"),
        (
            SIM,
            {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"truncate": "yes"}},
            422,
            "'parameters.truncate' must be a bool",
        ),
        (
            SIM,
            {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"prompt_name": "nope"}},
            422,
            "configured prompts dictionary",
        ),
        (
            SIM,
            {"inputs": {"source_sentence": LONG_TEXT, "sentences": ["b"]}, "parameters": {"truncate": False}},
            413,
            "Input 0",
        ),
        ("/embed_all", {"inputs": []}, 422, "empty list"),
        ("/embed_all", {"inputs": ["x"] * 9}, 413, "at most 8"),
        ("/embed_all", {"inputs": ["x", None]}, 422, "'inputs[1]' is NoneType"),
        ("/embed_all", {"inputs": "x", "truncation_direction": "Left"}, 422, "only 'Right'"),
        ("/embed_all", {"inputs": "x", "truncate": "no"}, 422, "'truncate' must be a bool"),
        ("/embed", {"inputs": {"a": 1}}, 422, "must be a string or a list of strings, got dict"),
        ("/embed", {"inputs": "x", "normalize": 0}, 422, "'normalize' must be a bool"),
        ("/tokenize", {"inputs": 5}, 422, "got int"),
        ("/tokenize", {"inputs": ""}, 422, "empty string"),
        ("/tokenize", {"inputs": ["x"] * 9}, 413, "at most 8"),
        ("/tokenize", {"inputs": "x", "add_special_tokens": "no"}, 422, "'add_special_tokens' must be a bool"),
        ("/tokenize", {"inputs": "x", "prompt_name": "nope"}, 422, "configured prompts dictionary"),
        ("/", {"inputs": 3}, 422, "'inputs' must be a string or a list of strings"),
        ("/", {"inputs": {"source_sentence": "a"}}, 422, "'inputs.sentences'"),
        ("/invocations", {"inputs": []}, 422, "empty list"),
        ("/embeddings", {"input": [[101, 2023]]}, 422, "Token-id arrays"),
    ],
)
def test_request_errors(folder, path, body, status, needle):
    (response,) = run(calls(folder, [("POST", path, body)], max_inputs=8))
    assert response.status_code == status, response.text
    error = error_of(response)
    assert needle in error["message"], error["message"]
    assert error["type"] == ("payload_too_large" if status == 413 else "invalid_request")


@pytest.mark.parametrize("path", ["/similarity", "/tokenize", "/embed_all", "/", "/invocations"])
def test_bad_json_and_oversized_bodies(folder, path):
    async def go():
        async with app_client(create_app(settings(folder, max_body_bytes=2000))) as client:
            headers = {"content-type": "application/json"}
            return (
                await client.post(path, content=b"{oops", headers=headers),
                await client.post(path, content=json.dumps({"inputs": "y" * 3000}).encode(), headers=headers),
                await client.put(path, json={}),
            )

    bad, big, wrong_method = run(go())
    assert bad.status_code == 422 and "not valid JSON" in error_of(bad)["message"]
    assert big.status_code == 413 and "--max-body-bytes" in error_of(big)["message"]
    assert wrong_method.status_code == 405 and error_of(wrong_method)["type"] == "method_not_allowed"

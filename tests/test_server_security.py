"""Hostile input the service must refuse cleanly: API keys compared byte for byte, keys no client could
send refused at start-up, JSON bodies that break Python's parser answered with a 422 instead of a 500."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import pytest

from cli_support import run_in_process
from fastembed_adapter import InvalidInputError
from fastembed_adapter.server import ServerSettings, create_app
from fastembed_adapter.server.errors import RequestValidationError
from fastembed_adapter.server.routes import PUBLIC_PATHS, ROUTES
from fastembed_adapter.server.schemas import MAX_JSON_DEPTH, parse_json
from server_support import FP32_FILE, app_client

KEY = "ключ🔑x"  # not latin-1: the old comparison turned it into b"?????x"
DEEP = 100_000  # levels: far past the interpreter's recursion limit, yet a 200 kB body
DIGITS = 5_000  # past Python's 4300-digit int string limit


@pytest.fixture
def folder(prepared_base):
    return prepared_base("bert")


def settings(folder, **overrides) -> ServerSettings:
    return ServerSettings(model=str(folder), file_name=FP32_FILE, threads=1, **overrides)


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == response.status_code
    assert body["request_id"] == response.headers["x-request-id"]
    return body["error"]


# -- the API key is compared as bytes ---------------------------------------------------------------


def _embed_with(folder, api_key: str | None, authorizations: dict[str, bytes]) -> dict[str, httpx.Response]:
    async def go():
        async with app_client(create_app(settings(folder, api_key=api_key))) as client:
            return {
                name: await client.post("/embed", json={"inputs": "x"}, headers={"Authorization": value})
                for name, value in authorizations.items()
            }

    return asyncio.run(go())


def test_a_non_latin1_key_matches_exactly_its_utf8_bytes(folder):
    utf8 = KEY.encode("utf-8")
    results = _embed_with(
        folder,
        KEY,
        {
            "utf8": b"Bearer " + utf8,
            "lowercase scheme": b"bearer " + utf8,
            "replaced": b"Bearer ?????x",  # what encode("latin-1", "replace") made of the key
            "invalid utf8": b"Bearer \xff\xfe\x80x",
            "truncated utf8": b"Bearer " + utf8[:-2],  # ends inside the key's last multi-byte character
            "latin-1 text": b"Bearer " + KEY.encode("utf-8").decode("latin-1").encode("utf-8"),  # mojibake
            "utf-16": b"Bearer " + KEY.encode("utf-16-le"),
        },
    )
    for name in ("utf8", "lowercase scheme"):
        assert results[name].status_code == 200, (name, results[name].text)
        assert len(results[name].json()) == 1
    for name in ("replaced", "invalid utf8", "truncated utf8", "latin-1 text", "utf-16"):
        response = results[name]
        assert response.status_code == 401, (name, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert error_of(response)["type"] == "unauthorized"


def test_a_header_that_is_not_utf8_is_refused_never_a_500(folder):
    results = _embed_with(
        folder,
        "s3cret",
        {
            "right": b"Bearer s3cret",
            "key then bad byte": b"Bearer s3cret\xff",
            "bad bytes": b"Bearer \xc3\x28\xa0\xa1",
            "bad scheme": b"\xffearer s3cret",
        },
    )
    assert results["right"].status_code == 200
    for name in ("key then bad byte", "bad bytes", "bad scheme"):
        assert results[name].status_code == 401, (name, results[name].text)
        assert error_of(results[name])["type"] == "unauthorized"


def test_without_a_key_a_non_utf8_authorization_header_is_ignored(folder):
    results = _embed_with(folder, None, {"bad bytes": b"Bearer \xff\xfe"})
    assert results["bad bytes"].status_code == 200, results["bad bytes"].text


# -- keys no client could send are refused at start-up -------------------------------------------------


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("", "api_key is empty"),
        (" \t ", "api_key is empty"),
        ("secret-key ", "starts or ends with whitespace"),
        (" secret-key", "starts or ends with whitespace"),
        ("secret-key\n", "starts or ends with whitespace"),
        ("\tsecret-key", "starts or ends with whitespace"),
        ("secret-key\r\n", "starts or ends with whitespace"),
        ("secret\nkey", "control character U+000A at position 6"),
        ("secret\rkey", "control character U+000D"),
        ("secret\tkey", "control character U+0009"),
        ("secret-key\x00", "control character U+0000 at position 10"),
        ("secret\x7fkey", "control character U+007F"),
        ("secret\x85key", "control character U+0085"),
        ("secret\udcffkey", "lone surrogate U+DCFF"),  # how os.environ decodes a FEA_API_KEY that is not UTF-8
    ],
)
def test_an_unmatchable_key_is_refused(key, needle):
    with pytest.raises(InvalidInputError, match="api_key") as caught:
        ServerSettings(model="m", api_key=key)
    message = str(caught.value)
    assert needle in message
    assert "secret" not in message  # the message never shows the key


def test_a_key_that_is_not_a_string_is_refused():
    with pytest.raises(InvalidInputError, match="api_key must be a string, got bytes"):
        ServerSettings(model="m", api_key=b"s3cret")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [KEY, "s3cret", "with inner spaces", "ümlaut-ß", "x"])
def test_a_matchable_key_is_accepted(key):
    assert ServerSettings(model="m", api_key=key).api_key == key


@pytest.mark.parametrize(
    ("key", "needle"), [("secret-key ", "api_key starts or ends with whitespace"), ("", "api_key is empty")]
)
def test_serve_refuses_an_unmatchable_fea_api_key(capsys, monkeypatch, key, needle):
    """A usage error (exit 2) before the server starts; set but empty is refused, not "no authentication"."""
    import fastembed_adapter.server

    started: list[ServerSettings] = []
    monkeypatch.setattr(fastembed_adapter.server, "run", lambda settings: started.append(settings) or 0)
    monkeypatch.setenv("FEA_API_KEY", key)
    code, _, err = run_in_process(capsys, "serve", "--model", "x")
    assert started == []
    assert code == 2
    assert needle in err
    assert (not key or "secret-key" not in err) and "Traceback" not in err


# -- JSON bodies Python's parser cannot build are a 422 ---------------------------------------------------

_NESTED = b"[" * DEEP + b"]" * DEEP
_BIG_INT = b"9" * DIGITS
_DEPTH_MESSAGE = f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
_DIGITS_MESSAGE = f"holds an integer with more than {sys.get_int_max_str_digits()} digits"


def _bodies(field: str) -> list[tuple[str, bytes, str]]:
    """``(name, body, expected message)`` of the hostile bodies for a route whose texts are in ``field``."""
    name = field.encode()
    return [
        ("nested top level", _NESTED, _DEPTH_MESSAGE),
        ("nested texts", b'{"' + name + b'": ' + _NESTED + b"}", _DEPTH_MESSAGE),
        ("nested unknown field", b'{"' + name + b'": "x", "extra": ' + _NESTED + b"}", _DEPTH_MESSAGE),
        ("nested 500 levels", b'{"' + name + b'": ' + b"[" * 500 + b"]" * 500 + b"}", _DEPTH_MESSAGE),
        ("big int top level", _BIG_INT, _DIGITS_MESSAGE),
        ("big int in texts", b'{"' + name + b'": ["x", ' + _BIG_INT + b"]}", _DIGITS_MESSAGE),
        ("big int dimensions", b'{"' + name + b'": "x", "dimensions": ' + _BIG_INT + b"}", _DIGITS_MESSAGE),
        ("big negative int", b'{"' + name + b'": "x", "extra": -' + _BIG_INT + b"}", _DIGITS_MESSAGE),
        ("lone surrogate", b'{"' + name + b'": "a\\ud800b"}', "lone surrogate U+D800"),
        ("lone surrogate in list", b'{"' + name + b'": ["ok", "\\udfff"]}', "lone surrogate U+DFFF"),
    ]


@pytest.mark.parametrize(("path", "field"), [("/v1/embeddings", "input"), ("/embed", "inputs")])
def test_bodies_that_break_the_parser_are_422(folder, path, field):
    bodies = _bodies(field)
    assert all(len(body) < 2 * 1024 * 1024 for _, body, _ in bodies)  # under the default body limit

    async def go():
        async with app_client(create_app(settings(folder))) as client:
            sent = [
                await client.post(path, content=body, headers={"content-type": "application/json"})
                for _, body, _ in bodies
            ]
            ok = await client.post(path, json={field: "x"})  # the service is still fine afterwards
            return sent, ok

    sent, ok = asyncio.run(go())
    for (name, _, needle), response in zip(bodies, sent, strict=True):
        assert response.status_code == 422, (name, response.text[:300])
        error = error_of(response)
        assert error["type"] == "invalid_request", name
        assert needle in error["message"], (name, error["message"])
    assert ok.status_code == 200


def _nested(levels: int) -> bytes:
    """An object (level 1) whose ``extra`` field nests ``levels - 1`` lists."""
    return json.dumps({"input": "x", "extra": json.loads("[" * (levels - 1) + "]" * (levels - 1))}).encode()


def test_depth_limit_boundary():
    assert parse_json(_nested(MAX_JSON_DEPTH))["input"] == "x"
    with pytest.raises(RequestValidationError, match=_DEPTH_MESSAGE):
        parse_json(_nested(MAX_JSON_DEPTH + 1))
    objects = b'{"a": ' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH
    assert parse_json(objects)["a"]
    with pytest.raises(RequestValidationError, match=_DEPTH_MESSAGE):
        parse_json(b'{"a": ' + objects + b"}")


def test_many_brackets_in_strings_or_wide_lists_are_not_depth():
    wide = {"input": ["[[[{{{" * 20] * 300, "extra": [[1, [2]], {"b": [3]}] * 100}
    assert parse_json(json.dumps(wide).encode()) == wide


def test_the_longest_allowed_integer_still_parses():
    limit = sys.get_int_max_str_digits()
    assert parse_json(b'{"n": ' + b"7" * limit + b"}")["n"] == int("7" * limit)


# -- the API key guards every route but the health checks, unknown paths and methods included --------

_ROUTE_CALLS = sorted({(method, route.path) for route in ROUTES for method in route.methods - {"HEAD"}})
_OTHER_CALLS = [("GET", "/nope"), ("POST", "/v2/embeddings"), ("DELETE", "/embed"), ("GET", "/embed"), ("PUT", "/info")]


def test_every_route_needs_the_key(folder):
    """Without the key: 401 everywhere but the public health routes (a 404/405 does not reveal a route)."""

    async def go():
        async with app_client(create_app(settings(folder, api_key="s3cret"))) as client:
            out = {}
            for method, path in [*_ROUTE_CALLS, *_OTHER_CALLS]:
                body = {"json": {"inputs": "x"}} if method in ("POST", "PUT") else {}
                out[method, path] = (
                    await client.request(method, path, **body),
                    await client.request(method, path, headers={"Authorization": "Bearer wrong"}, **body),
                    await client.request(method, path, headers={"Authorization": "Bearer s3cret"}, **body),
                )
            return out

    results = asyncio.run(go())
    assert len(results) >= 20
    for (method, path), (missing, wrong, right) in results.items():
        if path in PUBLIC_PATHS and method == "GET":
            assert missing.status_code == wrong.status_code == right.status_code == 200, path
            continue
        for response in (missing, wrong):
            assert response.status_code == 401, (method, path, response.status_code)
            assert error_of(response)["type"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        assert right.status_code != 401, (method, path)
    assert results["GET", "/nope"][2].status_code == 404 and results["DELETE", "/embed"][2].status_code == 405
    assert results["GET", "/metrics"][2].status_code == results["GET", "/info"][2].status_code == 200


def test_a_whole_float_is_an_integer_and_a_fraction_is_not(folder):
    """JSON Schema's integer: ``dimensions: 8.0`` is 8 (generated clients send it); 8.5 is a 422 naming it."""

    async def go():
        async with app_client(create_app(settings(folder))) as client:
            whole = await client.post("/v1/embeddings", json={"input": "x", "dimensions": 8.0})
            fraction = await client.post("/v1/embeddings", json={"input": "x", "dimensions": 8.5})
            return whole, fraction

    whole, fraction = asyncio.run(go())
    assert whole.status_code == 200 and len(whole.json()["data"][0]["embedding"]) == 8
    assert fraction.status_code == 422
    assert error_of(fraction)["message"] == "'dimensions' must be an int, got float (8.5)."

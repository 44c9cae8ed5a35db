"""``/openapi.json`` and ``/docs``: the schema is valid OpenAPI 3.1 and covers every route, a live server
answers schemathesis' generated requests as the schema says (no 5xx), and ``/docs`` renders in a
real headless Chromium.

Per operation, schemathesis sends its coverage cases (boundaries, missing fields, wrong types,
wrong methods) and ``MAX_EXAMPLES`` generated requests, valid and invalid, to a server without an
API key. Every answer must be documented (status, content type, headers, body schema) and no 5xx;
an invalid body must be refused with a 4xx. A server with an API key must refuse every non-public
operation without it (the documented 401) and answer as documented with it. Both servers' own
request counters must show no 5xx afterwards. The schema schemathesis reads is ``OPENAPI`` itself;
``test_schema_and_docs_are_served`` proves the servers serve exactly that.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser

import httpx
import jsonschema_rs
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from fastembed_adapter.server.docs import docs_html
from fastembed_adapter.server.openapi import OPENAPI
from fastembed_adapter.server.routes import PUBLIC_PATHS, ROUTES
from server_support import live_server

KEY = "openapi-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_EXAMPLES = 20  # generated cases per operation, on top of schemathesis' coverage cases
KEYED_EXAMPLES = 5
SEED = 20250101
# Small limits, so that generated requests also meet the 413 paths; no 503 grace period on SIGTERM.
LIMITS = {"FEA_MAX_INPUTS": "6", "FEA_MAX_BODY_BYTES": "4096", "FEA_MODEL_NAME": "tiny-bert", "FEA_DRAIN_GRACE": "0"}
COLBERT_PATHS = {"/embed_multi", "/rerank"}
CONFORMANCE = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.allow_header_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # no example database in the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
CHROMIUM_TIMEOUT = 60.0
STATUSES: Counter[tuple[str, int]] = Counter()  # (server, status) of every generated request sent
BEFORE: dict[str, Counter[str]] = {}  # each server's answers by status once ready (the 503s of /health while loading)


def _config(mode: str, coverage: bool, security: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # security: generate (and, negative, leave out) the Authorization header
            "generation": {"mode": mode, "with-security-parameters": security},
            "phases": {"coverage": {"enabled": coverage}, "examples": {"enabled": False}},
            # an invalid body may be refused for its size before its types are looked at
            "checks": {"negative_data_rejection": {"expected-statuses": ["400", "413", "422"]}},
        }
    )


def _schema(mode: str, coverage: bool, security: bool):
    """The document as schemathesis loads it (the live servers serve exactly this, see below)."""
    return schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI), config=_config(mode, coverage, security))


# Built at import: schemathesis' fixture-based (lazy) loader does not run on pytest 9.2 (Node._nodeid is gone).
# The open server checks no key, so leaving out the Authorization header is not an invalid request there.
OPEN_SCHEMA = _schema("all", coverage=True, security=False)
KEYED_SCHEMA = _schema("positive", coverage=False, security=True)


def _answered(server) -> Counter[str]:
    """The server's own count of its answers, by status (``/metrics``)."""
    metrics = httpx.get(f"{server.base_url}/metrics", headers=AUTH, timeout=30.0).text
    counts: Counter[str] = Counter()
    for status, count in re.findall(r'_http_requests_total\{endpoint="[^"]*",status="(\d+)"\} (\S+)', metrics):
        counts[status] += int(float(count))
    return counts


def _operations() -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in OPENAPI["paths"].items() for method in item}


# -- the document -----------------------------------------------------------------------------------


def test_schema_is_valid_openapi_31():
    schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI)).validate()  # the OpenAPI 3.1 meta-schema
    dialect = "https://json-schema.org/draft/2020-12/schema"
    for name, schema in OPENAPI["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid({"$schema": dialect, **schema}), name
    assert json.loads(json.dumps(OPENAPI)) == OPENAPI  # plain JSON data


def test_schema_covers_every_route():
    routes = {(route.path, method) for route in ROUTES for method in route.methods or () if method != "HEAD"}
    assert _operations() == routes
    public = {path for path, item in OPENAPI["paths"].items() if item.get("get", {}).get("security") == []}
    assert public == PUBLIC_PATHS
    for path, method in _operations():
        responses = OPENAPI["paths"][path][method.lower()]["responses"]
        assert ("401" in responses) == (path not in PUBLIC_PATHS or method != "GET"), (method, path)
        assert {"200", "408", "500", "503"} <= set(responses), (method, path)
        if method == "POST":
            assert {"400", "413", "422"} <= set(responses), path


def test_error_responses_reference_one_error_component():
    errors = OPENAPI["components"]["responses"]
    for name, response in errors.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name
    for item in OPENAPI["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status not in ("200", "503") or "$ref" in response:
                    assert response["$ref"].removeprefix("#/components/responses/") in errors


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.links += [value or "" for name, value in attrs if name in ("href", "src")]


def test_docs_page_is_self_contained():
    page = _Page()
    page.feed(docs_html())
    assert page.tags["script"] == page.tags["link"] == page.tags["img"] == 0
    assert page.links and all(link.startswith(("#", "/")) and not link.startswith("//") for link in page.links)
    anchors = set(re.findall(r'id="([^"]+)"', docs_html()))
    assert all(link[1:] in anchors for link in page.links if link.startswith("#"))


# -- a live server without an API key ------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_server(prepared_base, tmp_path_factory):
    with live_server(prepared_base("bert"), tmp_path_factory.mktemp("openapi-open"), env=LIMITS) as live:
        BEFORE["open"] = _answered(live)
        yield live


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


@OPEN_SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_open_server_answers_as_documented(case, open_server, http):
    """Valid and invalid generated requests: documented answers only, invalid bodies refused (4xx)."""
    response = case.call_and_validate(
        base_url=open_server.base_url, session=http, checks=[*CONFORMANCE, checks.negative_data_rejection]
    )
    STATUSES["open", response.status_code] += 1
    if case.path in COLBERT_PATHS and case.method == "POST":  # a dense model: never an answer, 400 for a valid body
        assert response.status_code in (400, 413, 422), response.text


def test_schema_and_docs_are_served(open_server):
    with httpx.Client(base_url=open_server.base_url, timeout=30.0) as client:
        schema = client.get("/openapi.json")
        assert schema.status_code == 200 and schema.headers["content-type"] == "application/json"
        assert schema.json() == OPENAPI
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.text == docs_html()


def test_wrong_method_is_405_naming_the_allowed_ones(open_server):
    response = httpx.put(f"{open_server.base_url}/embed", timeout=30.0)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["type"] == "method_not_allowed"
    assert httpx.delete(f"{open_server.base_url}/", timeout=30.0).headers["allow"] == "GET, HEAD, POST"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not on PATH; CI must install it (Debian: apt-get install chromium)")
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")
    return found


def test_docs_render_in_headless_chromium(open_server, tmp_path):
    command = [
        _chromium(),
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        f"{open_server.base_url}/docs",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<h1>fastembed-adapter" in dom and "</html>" in dom
    for path, method in _operations():  # every operation, as the browser laid it out
        assert f'<span class="method">{method.lower()}</span> <span class="path">{path}</span>' in dom, (method, path)


# -- a live server with an API key ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server(prepared_base, tmp_path_factory):
    env = {**LIMITS, "FEA_API_KEY": KEY}
    with live_server(prepared_base("bert"), tmp_path_factory.mktemp("openapi-keyed"), env=env) as live:
        BEFORE["keyed"] = _answered(live)
        yield live


@KEYED_SCHEMA.parametrize()
@settings(FUZZ_SETTINGS, max_examples=KEYED_EXAMPLES)
def test_keyed_server_refuses_requests_without_the_key(case, keyed_server, http):
    """No key (or a generated, wrong one): 401 as documented on every operation but the public ones."""
    response = case.call(base_url=keyed_server.base_url, session=http)
    STATUSES["keyed", response.status_code] += 1
    public = case.path in PUBLIC_PATHS and case.method == "GET"
    assert (response.status_code == 401) != public, (case.method, case.path, response.status_code)
    case.validate_response(response, checks=CONFORMANCE)


@KEYED_SCHEMA.parametrize()
@settings(FUZZ_SETTINGS, max_examples=KEYED_EXAMPLES)
def test_keyed_server_accepts_the_key(case, keyed_server, http):
    """With the key, answers as documented; schemathesis' ``ignored_auth`` re-sends without it and a wrong one."""
    response = case.call_and_validate(
        base_url=keyed_server.base_url, session=http, headers=AUTH, checks=[*CONFORMANCE, checks.ignored_auth]
    )
    STATUSES["keyed", response.status_code] += 1
    assert response.status_code != 401


@pytest.mark.parametrize("name", ["open", "keyed"])
def test_servers_counted_no_server_errors(name, request):
    """The servers' own counters agree: not one 5xx answer to anything sent since they were ready."""
    answered = _answered(request.getfixturevalue(f"{name}_server")) - BEFORE[name]
    generated = {status: count for (server, status), count in STATUSES.items() if server == name}
    request.node.user_properties += [(f"{name}_answered", dict(answered)), (f"{name}_generated", generated)]
    assert not [status for status in answered if status.startswith("5")], answered
    assert not [status for status in generated if status >= 500], generated

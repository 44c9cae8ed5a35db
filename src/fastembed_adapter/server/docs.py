"""``GET /docs``: :data:`.openapi.OPENAPI` as one self-contained HTML page.

Rendered on the server from the document itself, so the page cannot drift from
``/openapi.json``: per operation its method, path, summary, request fields and responses, then
the schemas the responses name. No JavaScript, no stylesheet or font from elsewhere: it works
offline and behind any proxy.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .openapi import OPENAPI

__all__ = ["docs_html", "docs_page"]

_CODE = re.compile(r"`([^`]+)`")
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
code,.path{font-family:ui-monospace,monospace}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f5f5f5}
section{border-top:1px solid #ccc;padding-top:.5rem}.method{font-weight:bold;text-transform:uppercase}
.tag{color:#666}
"""


def _text(value: str) -> str:
    """Escaped text with Markdown-style `code` spans."""
    return _CODE.sub(r"<code>\1</code>", html.escape(value))


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` (``#/components/...``) followed."""
    while "$ref" in node:
        target: Any = OPENAPI
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def _type(schema: dict[str, Any]) -> str:
    """A schema as a short phrase: ``non-empty string``, ``array of number``, a link to a component."""
    name = _ref_name(schema)
    if name is not None:
        return f'<a href="#{_anchor("schema", name)}">{html.escape(name)}</a>'
    if "const" in schema:
        return f"<code>{html.escape(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{html.escape(json.dumps(value))}</code>" for value in schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_type(option) for option in schema[key])
    kinds = schema.get("type", "any")
    phrases = [_kind(kind, schema) for kind in (kinds if isinstance(kinds, list) else [kinds])]
    notes = [f"≥ {schema['minimum']}"] if "minimum" in schema else []
    notes += [f"pattern <code>{html.escape(schema['pattern'])}</code>"] if "pattern" in schema else []
    return " or ".join(phrases) + (f" ({', '.join(notes)})" if notes else "")


def _kind(kind: str, schema: dict[str, Any]) -> str:
    if kind == "array":
        items = _type(schema.get("items", {}))
        if "maxItems" in schema and schema["maxItems"] == schema.get("minItems"):
            return f"array of {schema['maxItems']} {items}"
        return f"{'non-empty ' if schema.get('minItems') else ''}array of {items}"
    if kind == "string" and schema.get("minLength"):
        return "non-empty string"
    return html.escape(kind)


def _fields(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Table rows of an object schema's properties, nested objects as ``outer.inner``."""
    schema = _resolve(schema)
    required = set(schema.get("required", []))
    for name, field in schema.get("properties", {}).items():
        resolved = _resolve(field)
        cells = (
            f"<code>{html.escape(prefix + name)}</code>",
            _type(field),
            "yes" if name in required else "",
            _text(resolved.get("description", "")),
        )
        yield "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
        if "properties" in resolved:
            yield from _fields(resolved, f"{prefix}{name}.")


def _table(schema: dict[str, Any]) -> str:
    rows = "".join(_fields(schema))
    if not rows:
        return f"<p>{_type(schema)}</p>"
    return f"<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>{rows}</table>"


def _request(operation: dict[str, Any]) -> str:
    if "requestBody" not in operation:
        return ""
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    options = schema.get("oneOf", [schema])
    parts = [f"<h4>Request body (JSON{', one of' if len(options) > 1 else ''})</h4>"]
    for option in options:
        name = _ref_name(option)
        parts.append(f"<p>{_type(option)}: {_text(_resolve(option).get('description', ''))}</p>" if name else "")
        parts.append(_table(option))
    return "".join(parts)


def _responses(operation: dict[str, Any]) -> str:
    rows = []
    for status, response in operation["responses"].items():
        resolved = _resolve(response)
        bodies = ", ".join(
            f"{_type(media['schema'])} (<code>{html.escape(kind)}</code>)"
            for kind, media in resolved.get("content", {}).items()
        )
        rows.append(f"<tr><td>{status}</td><td>{bodies}</td><td>{_text(resolved['description'])}</td></tr>")
    return "<h4>Responses</h4><table><tr><th>status</th><th>body</th><th>when</th></tr>" + "".join(rows) + "</table>"


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _section(path: str, method: str, operation: dict[str, Any]) -> str:
    auth = "no API key needed" if operation.get("security") == [] else "API key when the server has one"
    return (
        f'<section id="{_anchor("op", operation["operationId"])}">'
        f'<h3><span class="method">{method}</span> <span class="path">{html.escape(path)}</span></h3>'
        f'<p>{_text(operation["summary"])} <span class="tag">{html.escape(operation["tags"][0])}; {auth}</span></p>'
        f"{_request(operation)}{_responses(operation)}</section>"
    )


def _schemas() -> str:
    parts = []
    for name, schema in OPENAPI["components"]["schemas"].items():
        description = _text(schema.get("description", ""))
        parts.append(f'<section id="{_anchor("schema", name)}"><h3>{html.escape(name)}</h3><p>{description}</p>')
        parts.append(_table(schema) + "</section>")
    return "".join(parts)


@functools.cache
def docs_html() -> str:
    """The page (built on first use, then reused)."""
    info = OPENAPI["info"]
    title = html.escape(f"{info['title']} {info['version']}")
    index = "".join(
        f'<li><a href="#{_anchor("op", op["operationId"])}"><span class="method">{method}</span> '
        f'<span class="path">{html.escape(path)}</span></a> {_text(op["summary"])}</li>'
        for path, method, op in _operations()
    )
    sections = "".join(_section(path, method, op) for path, method, op in _operations())
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} API</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head><body>'
        f"<header><h1>{title}</h1><p>{_text(info['description'])}</p>"
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p></header>'
        f"<nav><h2>Endpoints</h2><ul>{index}</ul></nav><main><h2>Operations</h2>{sections}"
        f"<h2>Schemas</h2>{_schemas()}</main></body></html>"
    )


async def docs_page(request: Request) -> Response:
    """``GET /docs``: :func:`docs_html`."""
    return HTMLResponse(docs_html())

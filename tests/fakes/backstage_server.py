"""A loopback Backstage catalog for tests: `GET /api/catalog/entities/by-query` as the catalog
backend documents it (docs/features/software-catalog/api, parseQueryEntitiesParams.ts).

What it enforces, as Backstage does: a bearer token (`Authorization: Bearer <token>`; missing
or wrong: 401; `token=None` serves anyone, as a guest-enabled instance); `filter` parameters,
each a comma-separated set of conditions `key` (exists) or `key=value` that must all hold
(AND), several `filter` parameters matching when any set holds (OR), keys and values
compared without case, arrays of strings matching `path=item` and `path.item=true`;
`limit` read from every request (20 when absent); cursor pagination through an opaque
`pageInfo.nextCursor` that carries the filter and the first page's `totalItems`.
Backstage ignores `filter` beside a `cursor`; this fake answers 400 instead, so a client
that re-sends it is caught.

Entities are served as the catalog serves them after stitching: `metadata.namespace` and
`uid` filled in, and `relations` computed from `spec.owner`, `spec.system`,
`spec.dependsOn` and `spec.dependencyOf` (a forward relation on the entity, the reverse one
on its target when the target is in the catalog), target refs lower-cased.

Faults on demand, by page number (1 = the request without a cursor): `fail(page, status)`
answers that page's next `times` requests with an error status (and headers, e.g.
Retry-After), `truncate(page)` cuts its JSON in half, `loop(page)` makes its nextCursor
the cursor that fetched it, `empty(page)` answers it with no items but a nextCursor.
Every request is recorded (path, query pairs, headers, page, status)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from fakes.loopback import JSONHandler, ServedApi

PREFIX = "/api/catalog"


def load_entities(folder: Path) -> list[dict[str, Any]]:
    """The Backstage entities of every YAML file under `folder`, as descriptor files hold
    them (what a catalog would ingest from those files)."""
    found: list[dict[str, Any]] = []
    for path in sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and str(document.get("apiVersion", "")).startswith(
                "backstage.io/"
            ):
                found.append(document)
    return found


def _ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind}:{namespace}/{name}".lower()


def _parse_ref(text: str, namespace: str, kind: str | None) -> str:
    """Backstage's parseEntityRef; a ref that needs a kind and has none fails processing in
    Backstage, so it fails here: test data must be a catalog Backstage would accept."""
    colon, slash = text.find(":"), text.find("/")
    if slash != -1 and slash < colon:
        colon = -1
    ref_kind = text[:colon] if colon != -1 else kind
    ref_namespace = text[colon + 1 : slash] if slash != -1 else namespace
    name = text[max(colon + 1, slash + 1) :]
    if not ref_kind or not ref_namespace or not name:
        raise ValueError(f"Backstage would refuse the entity ref {text!r}")
    return _ref(ref_kind, ref_namespace, name)


def stitch(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entities as the catalog API returns them (see the module docstring)."""
    out = [json.loads(json.dumps(e)) for e in entities]
    by_ref: dict[str, dict[str, Any]] = {}
    for entity in out:
        metadata = entity.setdefault("metadata", {})
        metadata.setdefault("namespace", "default")
        ref = _ref(entity["kind"], metadata["namespace"], metadata["name"])
        metadata["uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, ref))
        metadata["etag"] = metadata["uid"][:8]
        metadata.setdefault("annotations", {})["backstage.io/managed-by-location"] = (
            "url:https://git.example.com/shop/catalog-info.yaml"
        )
        entity["relations"] = []
        by_ref[ref] = entity
    pairs = {
        "owner": ("group", "ownedBy", "ownerOf"),
        "system": ("system", "partOf", "hasPart"),
        "dependsOn": (None, "dependsOn", "dependencyOf"),
        "dependencyOf": (None, "dependencyOf", "dependsOn"),
    }
    for entity in out:
        namespace = entity["metadata"]["namespace"]
        source = _ref(entity["kind"], namespace, entity["metadata"]["name"])
        spec = entity.get("spec") or {}
        for field, (kind, forward, reverse) in pairs.items():
            values = spec.get(field)
            if values is None or entity["kind"].lower() in ("location", "group", "user"):
                continue
            for text in values if isinstance(values, list) else [values]:
                target = _parse_ref(text, namespace, kind)
                entity["relations"].append({"type": forward, "targetRef": target})
                if target in by_ref:
                    by_ref[target]["relations"].append({"type": reverse, "targetRef": source})
    return out


def _pairs(value: Any, prefix: str) -> Iterator[tuple[str, str]]:
    """The (key, value) pairs a filter condition matches, as the catalog's search table holds
    them: dotted paths, lower-cased."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _pairs(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                yield from _pairs(item, prefix)
            else:
                yield prefix.lower(), str(item).lower()
                yield f"{prefix}.{item}".lower(), "true"
    elif value is not None:
        yield prefix.lower(), str(value).lower()


def _searchable(entity: dict[str, Any]) -> set[tuple[str, str]]:
    found = set(_pairs({k: v for k, v in entity.items() if k != "relations"}, ""))
    for relation in entity.get("relations", []):
        found.add((f"relations.{relation['type']}".lower(), relation["targetRef"].lower()))
    return found


def matches(entity: dict[str, Any], filters: list[str]) -> bool:
    """Backstage's filter semantics: any filter set, all conditions of a set."""
    if not filters:
        return True
    pairs = _searchable(entity)
    keys = {key for key, _ in pairs}
    for one in filters:
        conditions = [c.strip() for c in one.split(",") if c.strip()]
        held = True
        for condition in conditions:
            key, sep, value = condition.partition("=")
            key, value = key.strip().lower(), value.strip().lower()
            if not ((key, value) in pairs if sep else key in keys):
                held = False
                break
        if held:
            return True
    return False


class BackstageServer(ServedApi):
    def __init__(
        self,
        entities: list[dict[str, Any]],
        token: str | None = "bs-token-42",
        default_limit: int = 20,
        max_limit: int | None = None,
    ) -> None:
        self.entities = sorted(stitch(entities), key=lambda e: e["metadata"]["uid"])
        self.token = token
        self.default_limit = default_limit
        # A server may answer fewer items than asked (a proxy's or a deployment's cap): the
        # client must follow nextCursor rather than trust its own limit.
        self.max_limit = max_limit
        super().__init__()

    @property
    def url(self) -> str:
        """What a user configures: the Backstage base URL (the catalog is under /api/catalog)."""
        return super().url

    # ------------------------------------------------------------------ faults

    def _add(self, page: int, what: str, times: int, **details: Any) -> None:
        with self._lock:
            self.faults.append({"page": page, "what": what, "times": times, **details})

    def fail(
        self, page: int, status: int, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        self._add(page, "status", times, status=status, headers=headers or {})

    def truncate(self, page: int, times: int = 1) -> None:
        self._add(page, "truncate", times)

    def loop(self, page: int) -> None:
        if page < 2:
            raise ValueError("page 1 has no cursor to give back")
        self._add(page, "loop", 1_000)

    def empty(self, page: int) -> None:
        self._add(page, "empty", 1_000)

    def _take(self, page: int) -> dict[str, Any] | None:
        with self._lock:
            for fault in self.faults:
                if fault["page"] == page and fault["times"] > 0:
                    fault["times"] -= 1
                    return fault
        return None

    def pages(self) -> list[int]:
        """Page numbers of the requests answered 200, in order."""
        return [r["page"] for r in self.requests if r.get("status") == 200]

    # ------------------------------------------------------------------ the API

    @staticmethod
    def _cursor(state: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()

    def _query(self, query: list[tuple[str, str]]) -> tuple[int, Any, dict[str, str]]:
        """(status, payload, headers) of one by-query request."""
        values: dict[str, list[str]] = {}
        for key, value in query:
            values.setdefault(key, []).append(value)
        try:
            limit = int(values.get("limit", [self.default_limit])[-1])
            if self.max_limit is not None:
                limit = min(limit, self.max_limit)
        except ValueError:
            return 400, _error(400, "InputError", "Invalid limit, not an integer"), {}
        cursor_text = values.get("cursor", [None])[-1]
        if cursor_text is not None:
            if "filter" in values or "orderField" in values or "fullTextFilterTerm" in values:
                return (
                    400,
                    _error(400, "InputError", "this fake refuses filter beside a cursor"),
                    {},
                )
            try:
                state = json.loads(base64.urlsafe_b64decode(cursor_text.encode()))
            except ValueError:
                return 400, _error(400, "InputError", "Malformed cursor"), {}
        else:
            filters = values.get("filter", [])
            total = sum(matches(e, filters) for e in self.entities)
            state = {"filter": filters, "offset": 0, "total": total, "page": 1}
        chosen = [e for e in self.entities if matches(e, state["filter"])]
        offset, page = state["offset"], state["page"]
        items = chosen[offset : offset + limit]
        info: dict[str, str] = {}
        if offset + limit < len(chosen):
            nxt = {**state, "offset": offset + limit, "page": page + 1}
            info["nextCursor"] = self._cursor(nxt)
        if page > 1:
            info["prevCursor"] = self._cursor(
                {**state, "offset": max(0, offset - limit), "page": page - 1}
            )
        return 200, {"items": items, "totalItems": state["total"], "pageInfo": info}, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qsl(parts.query, keep_blank_values=True)
                record: dict[str, Any] = {
                    "method": "GET",
                    "path": parts.path,
                    "query": query,
                    "headers": dict(self.headers),
                    "page": None,
                }
                with server._lock:
                    server.requests.append(record)
                if server.token is not None and self.headers.get("Authorization") != (
                    f"Bearer {server.token}"
                ):
                    self._answer(record, 401, _error(401, "AuthenticationError", "Unauthorized"))
                    return
                if parts.path != f"{PREFIX}/entities/by-query":
                    self._answer(record, 404, _error(404, "NotFoundError", "Not Found"))
                    return
                status, payload, headers = server._query(query)
                if status != 200:
                    self._answer(record, status, payload, headers)
                    return
                cursor = dict(query).get("cursor")
                page = json.loads(base64.urlsafe_b64decode(cursor))["page"] if cursor else 1
                record["page"] = page
                fault = server._take(page)
                if fault and fault["what"] == "status":
                    self._answer(
                        record,
                        fault["status"],
                        _error(fault["status"], "Error", "injected"),
                        fault["headers"],
                    )
                    return
                if fault and fault["what"] == "loop":
                    payload["pageInfo"]["nextCursor"] = cursor
                if fault and fault["what"] == "empty":
                    payload["items"] = []
                    payload["pageInfo"].setdefault("nextCursor", server._cursor({"page": 0}))
                data = json.dumps(payload).encode()
                if fault and fault["what"] == "truncate":
                    data = data[: len(data) // 2]
                record["status"] = 200
                self._send_bytes(200, data)

            def _answer(
                self, record: dict, status: int, payload: Any, headers: dict | None = None
            ) -> None:
                record["status"] = status
                self._send(status, payload, headers)

        return Handler


def _error(status: int, name: str, message: str) -> dict[str, Any]:
    """Backstage's error body (serializeError)."""
    return {
        "error": {"name": name, "message": message},
        "response": {"statusCode": status},
    }


@contextmanager
def backstage_server(entities: list[dict[str, Any]], **options: Any) -> Iterator[BackstageServer]:
    server = BackstageServer(entities, **options).start()
    try:
        yield server
    finally:
        server.stop()

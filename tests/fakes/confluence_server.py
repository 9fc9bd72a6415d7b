"""A loopback Confluence for tests: the REST endpoints whatif.confluence uses, for Data Center
(`flavour="dc"`: REST v1 at the root) and Cloud (`flavour="cloud"`: REST v2 pages under
/wiki/api/v2, v1 attachments under /wiki/rest/api), with in-memory spaces, pages and
attachments.

What a real Confluence enforces and the client must cope with: HTTP Basic (user, token) or
Bearer (token) auth (anything else: 401); an update's version number must be the current one
+ 1 (else 409); one page of a title per space and one attachment of a name per page (else
400 "already exists" / "same file name"); uploads need `X-Atlassian-Token: no-check` (else
403). Faults on demand: `fail(status, method, path)` answers the next matching request with
`status` (e.g. one 409 on the next update, a 401, a 500 with Retry-After), and
`concurrent_edit()` makes someone else save the page just before the next update, so the
client meets a genuine 409. Every request is recorded (method, path, query, headers, body).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from requests_toolbelt.multipart.decoder import MultipartDecoder

from fakes.loopback import JSONHandler, LoopbackServer


class ConfluenceServer:
    def __init__(
        self,
        flavour: str = "dc",
        user: str = "publisher@example.com",
        token: str = "tok-SECRET-42",
        spaces: tuple[str, ...] = ("OPS",),
    ) -> None:
        if flavour not in ("dc", "cloud"):
            raise ValueError(flavour)
        self.flavour = flavour
        self.user = user
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.spaces: dict[str, dict[str, Any]] = {}
        self.pages: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[str, Any]] = {}
        self._edits_pending = 0
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        for key in spaces:
            self.add_space(key)
        self._server = LoopbackServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )  # a short poll: shutdown() returns at once instead of after 0.5 s

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """What a user configures: the site root (Cloud's REST lives under /wiki)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def prefix(self) -> str:
        return "/wiki" if self.flavour == "cloud" else ""

    def start(self) -> ConfluenceServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ test helpers

    def add_space(self, key: str) -> dict[str, Any]:
        """A space with its home page."""
        with self._lock:
            space = {"id": str(next(self._ids)), "key": key, "name": f"{key} space"}
            self.spaces[key] = space
        home = self.add_page(key, f"{key} Home", "<p>home</p>")
        space["homepage_id"] = home["id"]
        return space

    def add_page(
        self, space: str, title: str, body: str = "<p/>", parent_id: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            page = {
                "id": str(next(self._ids)),
                "space": space,
                "title": title,
                "body": body,
                "version": 1,
                "parent_id": parent_id,
                "status": "current",
            }
            self.pages[page["id"]] = page
            return page

    def page(self, title: str, space: str = "OPS") -> dict[str, Any] | None:
        """The stored page (id, space, title, body, version, parent_id) of that title."""
        matches = [p for p in self.pages.values() if p["title"] == title and p["space"] == space]
        assert len(matches) <= 1, f"duplicate pages titled {title!r}"
        return matches[0] if matches else None

    def pages_titled(self, title: str) -> list[dict[str, Any]]:
        return [p for p in self.pages.values() if p["title"] == title]

    def attachments_of(self, page_id: str) -> dict[str, dict[str, Any]]:
        """File name -> stored attachment (id, title, data, media_type, version)."""
        return {a["title"]: a for a in self.attachments.values() if a["page_id"] == page_id}

    def edit_page(self, page_id: str, body: str = "<p>edited by a person</p>") -> None:
        """Someone saves the page in the editor: a new version."""
        with self._lock:
            page = self.pages[page_id]
            page["body"], page["version"] = body, page["version"] + 1

    def fail(
        self,
        status: int,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        payload: Any = None,
    ) -> None:
        """Answer the next `times` requests of `method` whose path contains `path` with
        `status` (before auth and everything else): an error document saying `message`, or
        `payload` as it is."""
        with self._lock:
            self.faults.append(
                {
                    "status": status,
                    "method": method,
                    "path": path,
                    "times": times,
                    "headers": headers or {},
                    "message": message or f"injected HTTP {status}",
                    "payload": payload,
                }
            )

    def concurrent_edit(self, times: int = 1) -> None:
        """Before each of the next `times` page updates, someone else saves the page."""
        with self._lock:
            self._edits_pending += times

    def calls(self, method: str | None = None, contains: str = "") -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if (method is None or r["method"] == method) and contains in r["path"]
        ]

    # ------------------------------------------------------------------ the API

    def _take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault["times"] > 0
                    and fault["method"] in (None, method)
                    and (fault["path"] is None or fault["path"] in path)
                ):
                    fault["times"] -= 1
                    return fault
        return None

    def _authorised(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return user == self.user and secret == self.token
        return scheme.lower() == "bearer" and value == self.token

    def _page_v1(self, page: dict[str, Any], base: str) -> dict[str, Any]:
        ancestors = []
        parent = page["parent_id"]
        while parent:
            ancestors.insert(0, {"id": parent, "type": "page"})
            parent = self.pages[parent]["parent_id"]
        return {
            "id": page["id"],
            "type": "page",
            "status": page["status"],
            "title": page["title"],
            "space": {"key": page["space"], "id": int(self.spaces[page["space"]]["id"])},
            "version": {"number": page["version"]},
            "ancestors": ancestors,
            "body": {"storage": {"value": page["body"], "representation": "storage"}},
            "_links": {
                "base": base,
                "webui": f"/pages/viewpage.action?pageId={page['id']}",
                "self": f"{base}/rest/api/content/{page['id']}",
            },
        }

    def _page_v2(self, page: dict[str, Any], base: str) -> dict[str, Any]:
        return {
            "id": page["id"],
            "status": page["status"],
            "title": page["title"],
            "spaceId": self.spaces[page["space"]]["id"],
            "parentId": page["parent_id"],
            "parentType": "page" if page["parent_id"] else None,
            "version": {"number": page["version"], "message": "", "minorEdit": False},
            "_links": {
                "base": base,
                "webui": f"/spaces/{page['space']}/pages/{page['id']}",
            },
        }

    def _attachment(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": item["id"],
            "type": "attachment",
            "status": "current",
            "title": item["title"],
            "version": {"number": item["version"]},
            "metadata": {"mediaType": item["media_type"], "comment": item["comment"]},
            "extensions": {"mediaType": item["media_type"], "fileSize": len(item["data"])},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session uses it
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stalls

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                path, query = parts.path, parse_qs(parts.query)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = {
                    "method": method,
                    "path": path,
                    "query": {k: v[0] for k, v in query.items()},
                    "headers": dict(self.headers),
                    "body": raw,
                }
                with server._lock:
                    server.requests.append(record)
                fault = server._take_fault(method, path)
                if fault:
                    record["fault"] = fault["status"]
                    if fault["payload"] is not None:
                        self._send(fault["status"], fault["payload"], fault["headers"])
                        return
                    self._error(fault["status"], fault["message"], fault["headers"])
                    return
                if not server._authorised(self.headers.get("Authorization")):
                    self._error(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="x"'})
                    return
                base = server.url + server.prefix
                if not path.startswith(server.prefix + "/"):
                    self._error(404, "no such endpoint")
                    return
                route = path[len(server.prefix) :]
                try:
                    with server._lock:
                        answer = self._route(method, route, record["query"], raw, base)
                except _Problem as problem:
                    self._error(problem.status, problem.message)
                    return
                self._send(200, answer)

            def _route(
                self, method: str, route: str, query: dict[str, str], raw: bytes, base: str
            ) -> Any:
                segments = route.strip("/").split("/")
                if segments[:2] == ["rest", "api"]:
                    return self._v1(method, segments[2:], query, raw, base)
                if server.flavour == "cloud" and segments[:2] == ["api", "v2"]:
                    return self._v2(method, segments[2:], query, raw, base)
                raise _Problem(404, "no such endpoint")

            # -- REST v1 (Data Center pages; attachments on both)

            def _v1(
                self, method: str, rest: list[str], query: dict[str, str], raw: bytes, base: str
            ) -> Any:
                if rest[:1] == ["space"] and len(rest) == 2 and method == "GET":
                    space = server.spaces.get(rest[1])
                    if not space:
                        raise _Problem(404, f"No space with key : {rest[1]}")
                    return {"key": space["key"], "name": space["name"], "id": int(space["id"])}
                if rest[:1] != ["content"]:
                    raise _Problem(404, "no such endpoint")
                if len(rest) >= 3 and rest[2] == "child":
                    return self._attachments(method, rest, query, raw)
                if server.flavour == "cloud":
                    raise _Problem(404, "this fake serves Cloud pages through v2 only")
                if len(rest) == 1 and method == "GET":
                    found = [
                        p
                        for p in server.pages.values()
                        if p["space"] == query.get("spaceKey")
                        and p["title"] == query.get("title")
                        and p["status"] == "current"
                    ]
                    return {
                        "results": [server._page_v1(p, base) for p in found],
                        "size": len(found),
                    }
                if len(rest) == 1 and method == "POST":
                    data = json.loads(raw)
                    key = data["space"]["key"]
                    if key not in server.spaces:
                        raise _Problem(404, f"No space with key : {key}")
                    parent = (data.get("ancestors") or [{}])[-1].get("id")
                    if parent is not None and str(parent) not in server.pages:
                        raise _Problem(404, f"Could not find parent page {parent}")
                    page = self._create(key, data["title"], data["body"]["storage"]["value"])
                    page["parent_id"] = str(parent) if parent else None
                    return server._page_v1(page, base)
                page = self._page(rest[1])
                if len(rest) == 2 and method == "GET":
                    return server._page_v1(page, base)
                if len(rest) == 2 and method == "PUT":
                    data = json.loads(raw)
                    self._update(page, data["title"], data["body"]["storage"]["value"], data)
                    return server._page_v1(page, base)
                raise _Problem(405, "method not allowed")

            def _attachments(
                self, method: str, rest: list[str], query: dict[str, str], raw: bytes
            ) -> Any:
                page = self._page(rest[1])
                if rest[3:4] != ["attachment"]:
                    raise _Problem(404, "no such endpoint")
                if method == "GET" and len(rest) == 4:
                    items = [
                        server._attachment(a)
                        for a in server.attachments.values()
                        if a["page_id"] == page["id"]
                        and ("filename" not in query or a["title"] == query["filename"])
                    ]
                    start, limit = int(query.get("start", 0)), int(query.get("limit", 25))
                    chosen = items[start : start + limit]
                    links = {}
                    if start + limit < len(items):
                        links["next"] = (
                            f"/rest/api/content/{page['id']}/child/attachment"
                            f"?limit={limit}&start={start + limit}"
                        )
                    return {"results": chosen, "size": len(chosen), "_links": links}
                if method != "POST":
                    raise _Problem(405, "method not allowed")
                if self.headers.get("X-Atlassian-Token") != "no-check":
                    raise _Problem(403, "XSRF check failed")
                name, data, media_type, comment = self._upload(raw)
                if len(rest) == 4:
                    if name in server.attachments_of(page["id"]):
                        raise _Problem(
                            400,
                            "Cannot add a new attachment with same file name as an existing "
                            "attachment: " + name,
                        )
                    item = {
                        "id": f"att{next(server._ids)}",
                        "page_id": page["id"],
                        "title": name,
                        "data": data,
                        "media_type": media_type,
                        "comment": comment,
                        "version": 1,
                    }
                    server.attachments[item["id"]] = item
                    return {"results": [server._attachment(item)], "size": 1}
                if len(rest) == 6 and rest[5] == "data":
                    item = server.attachments.get(rest[4])
                    if not item or item["page_id"] != page["id"]:
                        raise _Problem(404, f"No attachment {rest[4]}")
                    item.update(data=data, media_type=media_type, comment=comment)
                    item["version"] += 1
                    if name != item["title"]:
                        item["title"] = name
                    return server._attachment(item)
                raise _Problem(404, "no such endpoint")

            def _upload(self, raw: bytes) -> tuple[str, bytes, str, str]:
                decoder = MultipartDecoder(raw, self.headers["Content-Type"])
                name, data, media_type, comment = None, b"", "application/octet-stream", ""
                for part in decoder.parts:
                    disposition = part.headers.get(b"Content-Disposition", b"").decode()
                    if 'name="file"' in disposition:
                        name = disposition.split('filename="', 1)[1].rsplit('"', 1)[0]
                        data = part.content
                        media_type = part.headers.get(b"Content-Type", b"").decode() or media_type
                    elif 'name="comment"' in disposition:
                        comment = part.text
                if not name:
                    raise _Problem(400, "no file part")
                return name, data, media_type, comment

            # -- REST v2 (Cloud pages and spaces)

            def _v2(
                self, method: str, rest: list[str], query: dict[str, str], raw: bytes, base: str
            ) -> Any:
                if rest == ["spaces"] and method == "GET":
                    keys = set(query.get("keys", "").split(","))
                    found = [s for k, s in server.spaces.items() if k in keys]
                    return {
                        "results": [
                            {
                                "id": s["id"],
                                "key": s["key"],
                                "name": s["name"],
                                "homepageId": s["homepage_id"],
                            }
                            for s in found
                        ],
                        "_links": {"base": base},
                    }
                if rest[:1] != ["pages"]:
                    raise _Problem(404, "no such endpoint")
                if len(rest) == 1 and method == "GET":
                    space = self._space_by_id(query.get("space-id", ""))
                    found = [
                        p
                        for p in server.pages.values()
                        if p["space"] == space["key"]
                        and ("title" not in query or p["title"] == query["title"])
                        and p["status"] == query.get("status", "current")
                    ]
                    return {
                        "results": [server._page_v2(p, base) for p in found],
                        "_links": {"base": base},
                    }
                if len(rest) == 1 and method == "POST":
                    data = json.loads(raw)
                    space = self._space_by_id(str(data["spaceId"]))
                    parent = data.get("parentId")
                    if parent is not None and str(parent) not in server.pages:
                        raise _Problem(404, f"Parent page {parent} not found")
                    body = data["body"]
                    if body.get("representation") != "storage":
                        raise _Problem(400, "this fake takes storage bodies only")
                    page = self._create(space["key"], data["title"], body["value"])
                    page["parent_id"] = str(parent) if parent else space["homepage_id"]
                    return server._page_v2(page, base)
                page = self._page(rest[1])
                if len(rest) == 2 and method == "GET":
                    return server._page_v2(page, base)
                if len(rest) == 2 and method == "PUT":
                    data = json.loads(raw)
                    if data.get("status") != "current":
                        raise _Problem(400, "status is required")
                    self._update(page, data["title"], data["body"]["value"], data)
                    return server._page_v2(page, base)
                raise _Problem(405, "method not allowed")

            def _space_by_id(self, space_id: str) -> dict[str, Any]:
                for space in server.spaces.values():
                    if space["id"] == space_id:
                        return space
                raise _Problem(404, f"Space {space_id} not found")

            # -- shared rules

            def _page(self, page_id: str) -> dict[str, Any]:
                page = server.pages.get(page_id)
                if not page:
                    raise _Problem(404, f"No content found with id: {page_id}")
                return page

            def _create(self, space: str, title: str, body: str) -> dict[str, Any]:
                if any(p["space"] == space and p["title"] == title for p in server.pages.values()):
                    raise _Problem(400, "A page with this title already exists")
                page = {
                    "id": str(next(server._ids)),
                    "space": space,
                    "title": title,
                    "body": body,
                    "version": 1,
                    "parent_id": None,
                    "status": "current",
                }
                server.pages[page["id"]] = page
                return page

            def _update(
                self, page: dict[str, Any], title: str, body: str, data: dict[str, Any]
            ) -> None:
                if server._edits_pending:
                    server._edits_pending -= 1
                    page["version"] += 1  # someone saved it just before us
                number = int(data["version"]["number"])
                if number != page["version"] + 1:
                    raise _Problem(
                        409,
                        "Version must be incremented on update. Current version is: "
                        f"{page['version']}",
                    )
                page.update(title=title, body=body, version=number)

            # -- answers

            def _error(self, status: int, message: str, headers: dict | None = None) -> None:
                payload = {"statusCode": status, "message": message}
                if server.flavour == "cloud":
                    payload = {"errors": [{"status": status, "title": message}]}
                self._send(status, payload, headers)

        return Handler


class _Problem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@contextmanager
def confluence_server(**options: Any) -> Iterator[ConfluenceServer]:
    server = ConfluenceServer(**options).start()
    try:
        yield server
    finally:
        server.stop()

"""Confluence: publish a run's report as one page per run, on Cloud and on Data Center.

The page title names the run (history end date and event), so publishing again finds the
page by title and updates it (a new version) instead of creating a duplicate, and every
attachment is matched by file name and updated in place (a new attachment version).

Data Center / Server speaks REST v1 (`/rest/api/content`). Cloud pages go through REST v2
(`/wiki/api/v2/pages`: v1 page creation is being retired there) and attachments through the
v1 endpoints under `/wiki/rest/api` (v2 has no upload). Only `requests` is used:
atlassian-python-api's Cloud class cannot create pages, and one client for both flavours
keeps the retry, timeout and error handling in one place.

The body is Confluence storage format rendered from resources/templates/confluence.xml.j2
with autoescaping on, so no incident or LLM text can become markup or a macro.
"""

from __future__ import annotations

import dataclasses
import logging
import mimetypes
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jinja2
from pydantic import ValidationError

from whatif import resources
from whatif.errors import UserError
from whatif.formatting import percent
from whatif.llm import TRANSIENT_STATUS, RetryPolicy, retry_after_seconds
from whatif.schemas import ScenariosDoc

log = logging.getLogger(__name__)

TEMPLATE = "confluence.xml.j2"
TIMEOUT_S = 30.0  # read timeout of every request; connecting gets at most 10 s
CONFLICT_RETRIES = 3  # re-reads after a 409 (someone saved the page meanwhile)
DEFAULT_RETRY = RetryPolicy(retries=3, base_s=1.0, cap_s=30.0, max_retry_after_s=120.0)
MAX_TITLE = 255  # Confluence's limit
RISK_MATRIX = "risk-matrix.svg"
IMAGE_SUFFIXES = {".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp"}
VERSION_MESSAGE = "Published by whatif"
# Characters XML 1.0 forbids even as character references (most C0 controls, lone surrogates).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SEVERITY_COLOURS = {"SEV1": "Red", "SEV2": "Yellow", "SEV3": "Blue", "SEV4": "Green"}


class ConfluenceError(UserError):
    """Publishing failed for good (after retries): one line naming the Confluence URL,
    never the credentials. A UserError, so the CLI prints it without a traceback."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


@dataclasses.dataclass
class ConfluenceTarget:
    """Where to publish. `user` given: HTTP Basic (Cloud: account email + API token; Data
    Center: user + password or token); no user: Bearer `token` (a Data Center personal access
    token). `cloud` None: decided from the URL (`*.atlassian.net` is Cloud)."""

    url: str
    space: str
    parent_id: str | None
    user: str | None
    token: str = dataclasses.field(repr=False)
    cloud: bool | None = None

    def __post_init__(self) -> None:
        self.url = self.url.strip().rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(
                f"Confluence URL {_safe_url(self.url)!r} is not an http(s) URL",
                hint="e.g. https://example.atlassian.net or https://confluence.example.com",
            )
        if not self.space.strip():
            raise UserError("no Confluence space key given")
        if self.parent_id is not None:
            self.parent_id = str(self.parent_id).strip() or None

    @property
    def is_cloud(self) -> bool:
        if self.cloud is not None:
            return self.cloud
        host = (urlsplit(self.url).hostname or "").lower()
        return host.endswith(".atlassian.net") or host == "api.atlassian.com"

    @property
    def site(self) -> str:
        """The base the REST paths hang off: Cloud's lives under /wiki."""
        if self.is_cloud and not self.url.endswith("/wiki"):
            return f"{self.url}/wiki"
        return self.url


# ---------------------------------------------------------------------------- the page body


def page_title(doc: dict[str, Any]) -> str:
    """`What-if scenarios – <YYYY-MM-DD>[ – <event name>]`.

    The date is that of doc["as_of"], the end of the incident history the run read (not the
    day it ran): the same history and event always name the same page, so a re-run updates
    it, and runs of another date or event get their own page."""
    try:
        as_of = datetime.fromisoformat(str(doc["as_of"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise UserError(
            f"scenarios document has no valid as_of date ({doc.get('as_of')!r})"
        ) from None
    title = f"What-if scenarios – {as_of.date().isoformat()}"
    event = (doc.get("event") or {}).get("name")
    name = " ".join(_NOT_XML.sub("", str(event)).split()) if event else ""
    if name:
        title += f" – {name}"
    return title[:MAX_TITLE]


def templates_dir() -> Path:
    """The package's templates, or WHATIF_TEMPLATES_DIR (a deployment that keeps its own)."""
    return resources.folder("templates")


def render_storage(doc: dict[str, Any], attachments: list[str]) -> str:
    """The page body in Confluence storage format: summary table, the images among
    `attachments` (risk matrix first, each `blast-radius-<scenario id>.<ext>` under its
    scenario, other images after the summary), links to the other attachments, then every
    scenario's tabletop pack. Every value is escaped text."""
    try:
        data = ScenariosDoc.model_validate(doc).model_dump()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise UserError(f"not a valid scenarios document: {where}: {first['msg']}") from None
    names = list(dict.fromkeys(attachments))
    images = [name for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    blast_radius: dict[str, str] = {}
    for scenario in data["scenarios"]:
        match = next((n for n in images if Path(n).stem == f"blast-radius-{scenario['id']}"), None)
        if match:
            blast_radius[scenario["id"]] = match
    claimed = {RISK_MATRIX, *blast_radius.values()}
    directory = templates_dir()
    try:
        template = _environment(directory).get_template(TEMPLATE)
    except jinja2.TemplateNotFound:
        raise UserError(
            f"Confluence page template {TEMPLATE} not found in {directory}",
            hint="set WHATIF_TEMPLATES_DIR to the folder that holds it",
        ) from None
    return template.render(
        doc=data,
        scenarios=data["scenarios"],
        risk_matrix=RISK_MATRIX if RISK_MATRIX in images else None,
        blast_radius=blast_radius,
        figures=[name for name in images if name not in claimed],
        files=[name for name in names if name not in images],
    )


def _xml_text(value: Any) -> Any:
    """What every {{ ... }} prints, before autoescaping: text without the characters XML
    cannot carry at all (a stray control character would make Confluence reject the page)."""
    if isinstance(value, jinja2.filters.Markup):
        return value
    return _NOT_XML.sub("", value) if isinstance(value, str) else value


def _environment(directory: Path) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,  # storage format is XML: & < > " ' all become entities
        finalize=_xml_text,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["pct"] = percent
    environment.filters["num"] = lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2g}"
    environment.filters["g"] = lambda v: f"{v:g}"
    environment.filters["colour"] = lambda severity: _SEVERITY_COLOURS.get(severity, "Grey")
    environment.filters["paragraphs"] = lambda text: [
        " ".join(part.split()) for part in re.split(r"\n\s*\n", str(text)) if part.strip()
    ]
    return environment


# ---------------------------------------------------------------------------- publishing


def publish_page(
    target: ConfluenceTarget,
    title: str,
    body: str,
    attachments: dict[str, bytes],
    session: Any = None,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Create the page titled `title` in the target space (under parent_id, else at the
    space's top level; Cloud: under the space home page) or update it, then create or update
    each attachment by file name. Returns {"id", "version", "url", "created"}.

    Every publish writes a new page version, even when the body did not change: Confluence
    normalises stored bodies, so comparing them is unreliable, and a version per publish
    keeps the page history a log of the runs. An existing page stays where it is (it is not
    moved back under parent_id). `session`: a requests.Session to use (proxies, tests)."""
    title = " ".join(title.split())
    if not title or len(title) > MAX_TITLE:
        raise UserError(f"a Confluence page title needs 1 to {MAX_TITLE} characters")
    for name in attachments:
        if not name or name != Path(name).name or "\\" in name or _NOT_XML.search(name):
            raise UserError(f"attachment name {name!r} must be a plain file name")
    client = _Client(target, session, retry, sleep)
    try:
        pages: _Pages = _CloudPages(client) if target.is_cloud else _DataCenterPages(client)
        page, created = _create_or_update(pages, title, body)
        if attachments:
            _put_attachments(client, page["id"], attachments, fresh=created)
    finally:
        client.close()
    log.info(
        "%s Confluence page %s version %d (%d attachments): %s",
        "created" if created else "updated",
        page["id"],
        page["version"],
        len(attachments),
        page["url"],
    )
    return {**page, "created": created}


def _create_or_update(pages: _Pages, title: str, body: str) -> tuple[dict[str, Any], bool]:
    found = pages.find(title)
    if found is None:
        pages.check_destination()
        response = pages.create(title, body)
        if response.status_code not in (400, 409) or "already exists" not in response.text.lower():
            pages.client.check(response, "create the page")
            return pages.summary(response.json()), True
        # Another publisher created it meanwhile: update theirs instead of failing.
        found = pages.find(title)
        if found is None:
            raise ConfluenceError(
                f"Confluence at {pages.client.safe_url} already has a page titled {title!r} "
                f"in space {pages.client.target.space} that this user cannot read",
                hint="it may be archived, a draft or restricted; rename or remove it",
            )
    page_id, version = found
    for attempt in range(CONFLICT_RETRIES + 1):
        response = pages.update(page_id, title, body, version + 1)
        if response.status_code != 409:
            pages.client.check(response, f"update page {page_id}")
            return pages.summary(response.json()), False
        if attempt == CONFLICT_RETRIES:
            break
        log.info("Confluence page %s changed meanwhile (HTTP 409): re-reading it", page_id)
        version = pages.current_version(page_id)
    raise ConfluenceError(
        f"Confluence at {pages.client.safe_url}: page {page_id} kept changing while we updated "
        f"it (HTTP 409, {CONFLICT_RETRIES + 1} tries)",
        status=409,
        hint="publish again when nobody is editing it",
    )


def _put_attachments(
    client: _Client, page_id: str, attachments: dict[str, bytes], fresh: bool
) -> None:
    """Each file by name: a new attachment, or a new version of the one already there (a
    re-run never adds a second attachment of the same name)."""
    base = f"{client.target.site}/rest/api/content/{page_id}/child/attachment"
    existing = {} if fresh else _attachment_ids(client, base)
    for name, data in attachments.items():
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        files = {"file": (name, data, media_type)}
        form = {"minorEdit": "true", "comment": VERSION_MESSAGE}
        if name not in existing:
            response = client.request("POST", base, files=files, data=form, xsrf=True)
            if response.status_code != 400 or "same file name" not in response.text.lower():
                client.check(response, f"attach {name}")
                continue
            existing = _attachment_ids(client, base)  # someone attached it meanwhile
            if name not in existing:
                client.check(response, f"attach {name}")
        response = client.request(
            "POST", f"{base}/{existing[name]}/data", files=files, data=form, xsrf=True
        )
        client.check(response, f"update attachment {name}")


def _attachment_ids(client: _Client, base: str) -> dict[str, str]:
    """File name -> attachment id of every attachment of the page (following pages)."""
    ids: dict[str, str] = {}
    url: str | None = base
    params: dict[str, Any] | None = {"limit": 200}
    for _ in range(100):  # 20,000 attachments: enough, and bounded
        if url is None:
            break
        response = client.request("GET", url, params=params)
        client.check(response, "list the page's attachments")
        answer = response.json()
        for item in answer.get("results", []):
            ids.setdefault(item["title"], str(item["id"]))
        following = (answer.get("_links") or {}).get("next")
        url, params = (client.absolute(following), None) if following else (None, None)
    return ids


class _Client:
    """HTTP to one Confluence: auth, timeouts, retries of 429/5xx/network errors with
    backoff (Retry-After honoured), and errors that name the URL but never the token."""

    def __init__(
        self,
        target: ConfluenceTarget,
        session: Any,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        import requests

        self.target = target
        self.safe_url = _safe_url(target.url)
        self.retry = retry
        self.sleep = sleep
        self.session = session if session is not None else requests.Session()
        self._own_session = session is None

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def absolute(self, link: str) -> str:
        """A `_links.next` (relative to the site, context path or /wiki included)."""
        return link if "://" in link else f"{self.target.site}{link}"

    def request(self, method: str, url: str, *, xsrf: bool = False, **kwargs: Any) -> Any:
        import requests

        headers = {"Accept": "application/json"}
        if xsrf:
            headers["X-Atlassian-Token"] = "no-check"  # uploads are refused without it
        auth = None
        if self.target.user:
            auth = (self.target.user, self.target.token)
        else:
            headers["Authorization"] = f"Bearer {self.target.token}"
        for attempt in range(self.retry.retries + 1):
            retry_after = None
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=headers,
                    auth=auth,
                    timeout=(min(10.0, TIMEOUT_S), TIMEOUT_S),
                    **kwargs,
                )
            except requests.Timeout:
                reason = f"no answer within {TIMEOUT_S:g} s"
            except requests.ConnectionError:
                reason = "cannot connect"
            else:
                if response.status_code not in TRANSIENT_STATUS:
                    return response
                reason = f"HTTP {response.status_code}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            wait = self.retry.wait(attempt, retry_after)
            if attempt == self.retry.retries or wait is None:
                raise ConfluenceError(
                    f"Confluence at {self.safe_url}: {reason} on {method} {urlsplit(url).path} "
                    f"({attempt + 1} tries)",
                    hint="check that Confluence is up and reachable, then publish again",
                )
            log.info("Confluence %s %s: %s; retrying in %.1f s", method, url, reason, wait)
            self.sleep(wait)
        raise AssertionError("unreachable")

    def check(self, response: Any, doing: str) -> None:
        """Raise a one-line ConfluenceError for a failed answer."""
        status = response.status_code
        if status < 400:
            return
        space = self.target.space
        if status == 401:
            denied = "AUTHENTICATION_DENIED" in response.headers.get("X-Seraph-LoginReason", "")
            raise ConfluenceError(
                f"Confluence at {self.safe_url} rejected the credentials (HTTP 401) trying to "
                f"{doing}",
                status=status,
                hint="check the user and token (Cloud: account email + API token; Data Center: "
                "user + password, or a personal access token and no user)"
                + (
                    "; too many failed logins: log in once in a browser (CAPTCHA)" if denied else ""
                ),
            )
        if status == 403:
            raise ConfluenceError(
                f"Confluence at {self.safe_url} denied permission (HTTP 403) to {doing}",
                status=status,
                hint=f"check that the user may view space {space} and add and edit its pages "
                "and attachments",
            )
        raise ConfluenceError(
            f"Confluence at {self.safe_url}: HTTP {status} trying to {doing}"
            + (f": {detail}" if (detail := self._detail(response)) else ""),
            status=status,
        )

    def _detail(self, response: Any) -> str:
        """The server's own short reason (v1 `message`, v2 `errors[].title/detail`)."""
        try:
            answer = response.json()
        except ValueError:
            return ""
        if not isinstance(answer, dict):
            return ""
        errors = answer.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = str(errors[0].get("detail") or errors[0].get("title") or "")
        else:
            text = str(answer.get("message") or "")
        text = " ".join(text.split())
        if self.target.token:
            text = text.replace(self.target.token, "***")
        return text[:200]


class _Pages:
    """Page operations of one REST flavour; `find` gives (id, version) or None."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.target = client.target

    def find(self, title: str) -> tuple[str, int] | None:
        raise NotImplementedError

    def check_destination(self) -> None:
        """Before creating: say clearly if the space or the parent page is missing."""
        raise NotImplementedError

    def create(self, title: str, body: str) -> Any:
        raise NotImplementedError

    def update(self, page_id: str, title: str, body: str, version: int) -> Any:
        raise NotImplementedError

    def current_version(self, page_id: str) -> int:
        raise NotImplementedError

    def summary(self, page: dict[str, Any]) -> dict[str, Any]:
        """{"id", "version", "url"} of a page as the server answered it."""
        page_id = str(page["id"])
        links = page.get("_links") or {}
        if links.get("webui"):
            url = f"{links.get('base') or self.target.site}{links['webui']}"
        else:
            url = f"{self.target.site}/pages/viewpage.action?pageId={page_id}"
        return {"id": page_id, "version": int(page["version"]["number"]), "url": url}

    def _space_missing(self) -> ConfluenceError:
        return ConfluenceError(
            f"Confluence at {self.client.safe_url}: space {self.target.space!r} not found",
            status=404,
            hint="check the space key (not its name) and that the user may view the space",
        )

    def _parent_missing(self) -> ConfluenceError:
        return ConfluenceError(
            f"Confluence at {self.client.safe_url}: parent page {self.target.parent_id} not found",
            status=404,
            hint=f"check the page id (in space {self.target.space}) and that the user may view it",
        )

    def _parent_elsewhere(self, space: str) -> UserError:
        return UserError(
            f"Confluence parent page {self.target.parent_id} is in space {space}, "
            f"not {self.target.space}",
            hint="give a parent page of the target space",
        )


class _DataCenterPages(_Pages):
    """Data Center / Server: REST v1."""

    def __init__(self, client: _Client) -> None:
        super().__init__(client)
        self.api = f"{self.target.site}/rest/api"

    def find(self, title: str) -> tuple[str, int] | None:
        response = self.client.request(
            "GET",
            f"{self.api}/content",
            params={
                "title": title,
                "spaceKey": self.target.space,
                "type": "page",
                "status": "current",
                "expand": "version",
            },
        )
        if response.status_code == 404:
            raise self._space_missing()
        self.client.check(response, f"look up the page in space {self.target.space}")
        results = response.json().get("results", [])
        page = next((p for p in results if p.get("title") == title), None)
        page = page or (results[0] if results else None)  # Confluence's title match is the rule
        return (str(page["id"]), int(page["version"]["number"])) if page else None

    def check_destination(self) -> None:
        response = self.client.request("GET", f"{self.api}/space/{self.target.space}")
        if response.status_code == 404:
            raise self._space_missing()
        self.client.check(response, f"read space {self.target.space}")
        if self.target.parent_id:
            response = self.client.request(
                "GET", f"{self.api}/content/{self.target.parent_id}", params={"expand": "space"}
            )
            if response.status_code == 404:
                raise self._parent_missing()
            self.client.check(response, f"read parent page {self.target.parent_id}")
            space = (response.json().get("space") or {}).get("key")
            if space and space != self.target.space:
                raise self._parent_elsewhere(space)

    def create(self, title: str, body: str) -> Any:
        page: dict[str, Any] = {
            "type": "page",
            "title": title,
            "space": {"key": self.target.space},
            "body": {"storage": {"value": body, "representation": "storage"}},
        }
        if self.target.parent_id:
            page["ancestors"] = [{"id": self.target.parent_id}]
        return self.client.request("POST", f"{self.api}/content", json=page)

    def update(self, page_id: str, title: str, body: str, version: int) -> Any:
        page = {
            "id": page_id,
            "type": "page",
            "title": title,
            "space": {"key": self.target.space},
            "body": {"storage": {"value": body, "representation": "storage"}},
            "version": {"number": version, "minorEdit": False, "message": VERSION_MESSAGE},
        }
        return self.client.request("PUT", f"{self.api}/content/{page_id}", json=page)

    def current_version(self, page_id: str) -> int:
        response = self.client.request(
            "GET", f"{self.api}/content/{page_id}", params={"expand": "version"}
        )
        self.client.check(response, f"re-read page {page_id}")
        return int(response.json()["version"]["number"])


class _CloudPages(_Pages):
    """Cloud: REST v2 (the space is addressed by id, looked up from its key once)."""

    def __init__(self, client: _Client) -> None:
        super().__init__(client)
        self.api = f"{self.target.site}/api/v2"
        self._space_id: str | None = None

    @property
    def space_id(self) -> str:
        if self._space_id is None:
            response = self.client.request(
                "GET", f"{self.api}/spaces", params={"keys": self.target.space}
            )
            if response.status_code == 404:
                raise self._space_missing()
            self.client.check(response, f"look up space {self.target.space}")
            results = response.json().get("results", [])
            if not results:
                raise self._space_missing()
            self._space_id = str(results[0]["id"])
        return self._space_id

    def find(self, title: str) -> tuple[str, int] | None:
        response = self.client.request(
            "GET",
            f"{self.api}/pages",
            params={"space-id": self.space_id, "title": title, "status": "current"},
        )
        self.client.check(response, f"look up the page in space {self.target.space}")
        results = response.json().get("results", [])
        page = next((p for p in results if p.get("title") == title), None)
        page = page or (results[0] if results else None)
        return (str(page["id"]), int(page["version"]["number"])) if page else None

    def check_destination(self) -> None:
        space_id = self.space_id  # raises when the space is missing
        if self.target.parent_id:
            response = self.client.request("GET", f"{self.api}/pages/{self.target.parent_id}")
            if response.status_code == 404:
                raise self._parent_missing()
            self.client.check(response, f"read parent page {self.target.parent_id}")
            space = str(response.json().get("spaceId") or space_id)
            if space != space_id:
                raise self._parent_elsewhere(f"with id {space}")

    def create(self, title: str, body: str) -> Any:
        page: dict[str, Any] = {
            "spaceId": self.space_id,
            "status": "current",
            "title": title,
            "body": {"representation": "storage", "value": body},
        }
        if self.target.parent_id:
            page["parentId"] = self.target.parent_id
        return self.client.request("POST", f"{self.api}/pages", json=page)

    def update(self, page_id: str, title: str, body: str, version: int) -> Any:
        page = {
            "id": page_id,
            "status": "current",
            "title": title,
            "body": {"representation": "storage", "value": body},
            "version": {"number": version, "message": VERSION_MESSAGE},
        }
        return self.client.request("PUT", f"{self.api}/pages/{page_id}", json=page)

    def current_version(self, page_id: str) -> int:
        response = self.client.request("GET", f"{self.api}/pages/{page_id}")
        self.client.check(response, f"re-read page {page_id}")
        return int(response.json()["version"]["number"])


def _safe_url(url: str) -> str:
    """The URL without any user:password@ part, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

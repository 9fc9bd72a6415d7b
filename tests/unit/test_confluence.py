"""Publishing to Confluence: page body (storage format, escaped), title, and the create /
update / attach protocol against a loopback Confluence of both flavours (Data Center REST v1,
Cloud REST v2 + v1 attachments), faults included. Offline and fast."""

from __future__ import annotations

import base64
import copy
import json
import xml.etree.ElementTree as ET

import pytest
from fakes.confluence_server import ConfluenceServer, confluence_server
from shared import PROJECT
from whatif.confluence import (
    ConfluenceError,
    ConfluenceTarget,
    page_title,
    publish_page,
    render_storage,
)
from whatif.errors import UserError
from whatif.llm import RetryPolicy

EXAMPLE = PROJECT / "docs" / "example" / "scenarios.json"
AC = "http://atlassian.com/content"
RI = "http://atlassian.com/resource/identifier"
FAST = RetryPolicy(retries=2, base_s=0.0, cap_s=0.0, max_retry_after_s=1.0)
FLAVOURS = ["dc", "cloud"]
HOSTILE = [
    "<script>alert(1)</script>",
    "]]>",
    '<ac:structured-macro ac:name="html"><ac:plain-text-body><![CDATA[<b>x</b>]]>'
    "</ac:plain-text-body></ac:structured-macro>",
    "{code}rm -rf /{code}",
    "=cmd|' /C calc'!A0",
]
TEMPLATE_MACROS = {"info", "status"}  # the macros confluence.xml.j2 itself emits


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def parse(body: str) -> ET.Element:
    """The body as Confluence reads it: XML in a root that declares ac: and ri:."""
    return ET.fromstring(f'<root xmlns:ac="{AC}" xmlns:ri="{RI}">{body}</root>')


def attachment_files(doc: dict, marker: bytes = b"") -> dict[str, bytes]:
    first = doc["scenarios"][0]["id"]
    return {
        "risk-matrix.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>' + marker,
        f"blast-radius-{first}.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><g/></svg>' + marker,
        "scenarios.json": b'{"schema_version": 2}' + marker,
    }


def target_for(server: ConfluenceServer, **changes) -> ConfluenceTarget:
    fields = {
        "url": server.url,
        "space": "OPS",
        "parent_id": None,
        "user": server.user,
        "token": server.token,
        "cloud": server.flavour == "cloud",
    } | changes
    return ConfluenceTarget(**fields)


def publish(server: ConfluenceServer, doc: dict, target=None, files=None) -> dict:
    files = attachment_files(doc) if files is None else files
    body = render_storage(doc, list(files))
    return publish_page(
        target or target_for(server), page_title(doc), body, files, retry=FAST, sleep=lambda s: None
    )


# ---------------------------------------------------------------------------- title and body


def test_page_title_with_and_without_event(doc):
    assert page_title(doc) == "What-if scenarios – 2026-11-01"
    assert page_title(doc | {"as_of": "2026-03-07T23:59:59Z"}) == "What-if scenarios – 2026-03-07"
    event = {"name": "Black  Friday\n2026", "start": "x", "end": "y", "traffic_multiplier": 3.0}
    assert (
        page_title(doc | {"event": event}) == "What-if scenarios – 2026-11-01 – Black Friday 2026"
    )
    with pytest.raises(UserError, match="as_of"):
        page_title({"as_of": "yesterday"})


def test_body_is_xml_with_images_in_place_and_a_task_list(doc):
    files = attachment_files(doc)
    body = render_storage(doc, [*files, "forest.png"])
    root = parse(body)
    images = [e.get(f"{{{RI}}}filename") for e in root.iter(f"{{{RI}}}attachment")]
    first = doc["scenarios"][0]["id"]
    # risk matrix first; the other picture after the summary; the blast radius in scenario 1.
    assert images[:3] == ["risk-matrix.svg", "forest.png", f"blast-radius-{first}.svg"]
    assert images[-1] == "scenarios.json"  # not an image: a link in "Files"
    assert len(list(root.iter(f"{{{AC}}}image"))) == 3
    headings = [h.text for h in root.iter("h2")]
    assert headings[0] == "Summary"
    assert headings[1] == f"1. {doc['scenarios'][0]['title']}"
    summary = root.find("table")
    assert len(summary.findall("tbody/tr")) == 1 + len(doc["scenarios"])
    tasks = list(root.iter(f"{{{AC}}}task"))
    assert len(tasks) == sum(len(s["checklist"]) for s in doc["scenarios"])
    ids = [t.find(f"{{{AC}}}task-id").text for t in tasks]
    assert len(set(ids)) == len(ids)  # unique on the page
    # The blast radius sits under its own scenario, before the next one's heading.
    assert body.index(f"blast-radius-{first}.svg") < body.index("<h2>2. ")


def test_hostile_text_is_inert(doc):
    evil = copy.deepcopy(doc)
    scenario = evil["scenarios"][0]
    joined = " ".join(HOSTILE)
    scenario["title"] = "What if " + joined
    scenario["narrative"] = joined + "\n\n" + HOSTILE[0]
    scenario["checklist"][0] = {"role": HOSTILE[2], "action": joined}
    scenario["injects"][0]["event"] = HOSTILE[1] + " \x00\x1b bell"  # XML-illegal controls too
    scenario["mitigations"]["immediate"] = [HOSTILE[3], HOSTILE[4]]
    scenario["severity"] = HOSTILE[0]
    body = render_storage(evil, ["risk-matrix.svg", 'a"b<c>.svg'])
    root = parse(body)  # well-formed XML
    tags = {element.tag for element in root.iter()}
    assert not any(tag.rsplit("}", 1)[-1] == "script" for tag in tags)
    macros = {m.get(f"{{{AC}}}name") for m in root.iter(f"{{{AC}}}structured-macro")}
    assert macros == TEMPLATE_MACROS
    assert f"{{{AC}}}plain-text-body" not in tags
    text = "".join(root.itertext())
    for dangerous in HOSTILE:
        assert dangerous in text  # shown as text, verbatim
    assert "\x00" not in text and "\x1b" not in text
    assert "<script>" not in body and "]]>" not in body
    filenames = {e.get(f"{{{RI}}}filename") for e in root.iter(f"{{{RI}}}attachment")}
    assert 'a"b<c>.svg' in filenames


def test_templates_dir_override(doc, tmp_path, monkeypatch):
    monkeypatch.setenv("WHATIF_TEMPLATES_DIR", str(tmp_path))
    with pytest.raises(UserError, match="WHATIF_TEMPLATES_DIR"):
        render_storage(doc, [])
    (tmp_path / "confluence.xml.j2").write_text("<p>{{ scenarios | length }} {{ doc.seed }}</p>")
    assert render_storage(doc, []) == f"<p>{len(doc['scenarios'])} {doc['seed']}</p>"


def test_invalid_document_is_a_user_error():
    with pytest.raises(UserError, match="not a valid scenarios document"):
        render_storage({"as_of": "2026-11-01"}, [])


def test_target_flavour_and_repr():
    cloud = ConfluenceTarget("https://acme.atlassian.net/", "OPS", None, "a@b.c", "tok-SECRET")
    assert cloud.is_cloud and cloud.site == "https://acme.atlassian.net/wiki"
    assert ConfluenceTarget("https://acme.atlassian.net/wiki", "OPS", None, "u", "t").site == (
        "https://acme.atlassian.net/wiki"
    )
    dc = ConfluenceTarget("https://wiki.acme.com/confluence", "OPS", "12", None, "tok-SECRET")
    assert not dc.is_cloud and dc.site == "https://wiki.acme.com/confluence"
    assert "tok-SECRET" not in repr(cloud) + repr(dc)
    with pytest.raises(UserError, match="not an http"):
        ConfluenceTarget("wiki.acme.com", "OPS", None, None, "t")


# ---------------------------------------------------------------------------- publishing


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_first_publish_creates_the_page_under_the_parent(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        parent = server.add_page("OPS", "Reliability")
        files = attachment_files(doc)
        result = publish(server, doc, target_for(server, parent_id=parent["id"]), files)
        page = server.page(page_title(doc))
        assert result["created"] is True
        assert result["id"] == page["id"] and result["version"] == page["version"] == 1
        assert page["parent_id"] == parent["id"]
        assert page["body"] == render_storage(doc, list(files))
        assert result["url"].startswith(server.url) and page["id"] in result["url"]
        stored = server.attachments_of(page["id"])
        assert {name: a["data"] for name, a in stored.items()} == files
        assert stored["risk-matrix.svg"]["media_type"] == "image/svg+xml"
        uploads = server.calls("POST", "/child/attachment")
        assert len(uploads) == len(files)
        assert all(r["headers"]["X-Atlassian-Token"] == "no-check" for r in uploads)
        expected = "Basic " + base64.b64encode(f"{server.user}:{server.token}".encode()).decode()
        assert all(r["headers"]["Authorization"] == expected for r in server.requests)
        # The whole protocol: no attachment listing for a page just created.
        if flavour == "dc":
            assert [(r["method"], r["path"]) for r in server.requests[:4]] == [
                ("GET", "/rest/api/content"),
                ("GET", "/rest/api/space/OPS"),
                ("GET", f"/rest/api/content/{parent['id']}"),
                ("POST", "/rest/api/content"),
            ]
        else:
            assert [(r["method"], r["path"]) for r in server.requests[:4]] == [
                ("GET", "/wiki/api/v2/spaces"),
                ("GET", "/wiki/api/v2/pages"),
                ("GET", f"/wiki/api/v2/pages/{parent['id']}"),
                ("POST", "/wiki/api/v2/pages"),
            ]
        assert len(server.requests) == 4 + len(files)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_second_publish_updates_the_same_page_and_attachments(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        first = publish(server, doc)
        before = {n: a["id"] for n, a in server.attachments_of(first["id"]).items()}
        files = attachment_files(doc, marker=b"<!-- run 2 -->")
        second = publish(server, doc, files=files)
        assert second["created"] is False
        assert second["id"] == first["id"] and second["version"] == 2
        assert len(server.pages_titled(page_title(doc))) == 1
        page = server.page(page_title(doc))
        assert page["version"] == 2
        if flavour == "dc":
            assert page["parent_id"] is None  # the space's top level
        else:
            assert page["parent_id"] == server.spaces["OPS"]["homepage_id"]
        after = server.attachments_of(first["id"])
        assert {n: a["id"] for n, a in after.items()} == before  # same ids, same count
        assert {n: a["data"] for n, a in after.items()} == files
        assert all(a["version"] == 2 for a in after.values())
        updates = server.calls("POST", "/data")
        assert len(updates) == len(files)
        assert all(r["headers"]["X-Atlassian-Token"] == "no-check" for r in updates)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_stale_version_is_reread_and_retried(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        publish(server, doc)
        server.fail(409, "PUT")  # an injected 409 ...
        assert publish(server, doc)["version"] == 2
        server.concurrent_edit()  # ... and a real one: someone saved the page meanwhile
        result = publish(server, doc)
        assert result["version"] == 4  # 3 was theirs
        assert server.page(page_title(doc))["body"] == render_storage(
            doc, list(attachment_files(doc))
        )
        assert len(server.calls("PUT")) == 4


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_endless_conflicts_give_up(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        publish(server, doc)
        server.fail(409, "PUT", times=100)
        with pytest.raises(ConfluenceError, match="kept changing") as caught:
            publish(server, doc)
        assert caught.value.status == 409
        assert len(server.calls("PUT")) == 4  # the first try and 3 retries


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_bad_credentials_name_the_url_not_the_token(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        wrong = "tok-WRONG-" + "z" * 12
        with pytest.raises(UserError) as caught:
            publish(server, doc, target_for(server, token=wrong))
        message = str(caught.value)
        assert server.url in message and "HTTP 401" in message
        assert "token" in message  # what to check
        assert wrong not in message and server.token not in message
        assert len(server.requests) == 1  # 401 is not retried (lockouts)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_forbidden_says_what_to_check(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        server.fail(403, "POST")
        with pytest.raises(UserError, match="HTTP 403") as caught:
            publish(server, doc)
        assert "space OPS" in str(caught.value) and server.token not in str(caught.value)


def test_bearer_token_without_user(doc):
    with confluence_server(flavour="dc") as server:
        result = publish(server, doc, target_for(server, user=None))
        assert result["created"]
        assert all(
            r["headers"]["Authorization"] == f"Bearer {server.token}" for r in server.requests
        )


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_missing_space_or_parent_is_named(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        with pytest.raises(UserError, match="space 'NOPE' not found") as caught:
            publish(server, doc, target_for(server, space="NOPE"))
        assert server.url in str(caught.value)
        with pytest.raises(UserError, match="parent page 999999 not found"):
            publish(server, doc, target_for(server, parent_id="999999"))
        server.add_space("OTHER")
        elsewhere = server.add_page("OTHER", "Elsewhere")
        with pytest.raises(UserError, match="is in space"):
            publish(server, doc, target_for(server, parent_id=elsewhere["id"]))
        assert server.page(page_title(doc)) is None  # nothing created


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_transient_failures_are_retried(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        server.fail(500, "GET")
        server.fail(429, "POST", headers={"Retry-After": "0"})
        server.fail(503, "POST", path="/child/attachment")
        waits: list[float] = []
        files = attachment_files(doc)
        result = publish_page(
            target_for(server),
            page_title(doc),
            render_storage(doc, list(files)),
            files,
            retry=FAST,
            sleep=waits.append,
        )
        assert result["created"] and len(waits) == 3
        assert len(server.pages_titled(page_title(doc))) == 1
        assert len(server.attachments_of(result["id"])) == len(files)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_persistent_server_error_is_one_clear_line(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        server.fail(500, times=100)
        with pytest.raises(ConfluenceError) as caught:
            publish(server, doc)
        message = str(caught.value)
        assert "HTTP 500" in message and server.url in message and "3 tries" in message
        assert "\n" not in message and server.token not in message
        assert len(server.requests) == FAST.retries + 1


def test_retry_after_too_long_gives_up_at_once(doc):
    with confluence_server() as server:
        server.fail(429, headers={"Retry-After": "3600"})
        with pytest.raises(ConfluenceError, match="HTTP 429"):
            publish(server, doc)
        assert len(server.requests) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_page_created_meanwhile_is_updated_not_duplicated(doc, flavour, monkeypatch):
    import whatif.confluence as confluence

    pages_class = confluence._CloudPages if flavour == "cloud" else confluence._DataCenterPages
    original_find = pages_class.find
    with confluence_server(flavour=flavour) as server:
        raced = []

        def racing_find(self, title):
            if not raced:  # another publisher creates it between our lookup and our create
                raced.append(server.add_page("OPS", title, "<p>theirs</p>"))
                return None
            return original_find(self, title)

        monkeypatch.setattr(pages_class, "find", racing_find)
        result = publish(server, doc)
        assert result["created"] is False and result["version"] == 2
        assert result["id"] == raced[0]["id"]
        assert len(server.pages_titled(page_title(doc))) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_attachment_added_meanwhile_is_updated(doc, flavour):
    with confluence_server(flavour=flavour) as server:
        first = publish(server, doc, files={"risk-matrix.svg": b"<svg/>"})
        # A re-run whose attachment listing misses a file someone just uploaded.
        server.fail(200, "GET", path="/child/attachment", payload={"results": [], "_links": {}})
        files = {"risk-matrix.svg": b"<svg>2</svg>"}
        publish(server, doc, files=files)
        stored = server.attachments_of(first["id"])
        assert list(stored) == ["risk-matrix.svg"] and stored["risk-matrix.svg"]["version"] == 2


def test_bad_attachment_name_is_refused(doc):
    target = ConfluenceTarget("https://wiki.acme.com", "OPS", None, None, "t")
    with pytest.raises(UserError, match="plain file name"):
        publish_page(target, "T", "<p/>", {"../x.svg": b""})

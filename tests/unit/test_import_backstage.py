"""The Backstage topology importer: catalog-info YAML files (folders at any depth, multi-
document files, non-entities skipped and counted), entity-ref resolution as Backstage does
it, the mapping of labels, annotations and links, and the catalog API through a loopback
Backstage (pagination, token, retries, failures that must not return a partial catalog).
Offline and fast."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
import yaml
from fakes.backstage_server import BackstageServer, backstage_server, load_entities, matches
from shared import PROJECT
from whatif.errors import UserError
from whatif.importers.api import ApiError
from whatif.importers.backstage import build_records, import_topology, parse_ref, read_api
from whatif.importers.common import topology_csv
from whatif.llm import RetryPolicy

DATA = PROJECT / "tests" / "data" / "backstage"
SHOP = DATA / "shop"
EXPECTED = DATA / "shop-topology.csv"
FAST = RetryPolicy(retries=2, base_s=0.01, cap_s=0.02, max_retry_after_s=5.0)
TOKEN = "bs-token-42"


def entity(kind: str, name: str, namespace: str | None = None, **fields) -> str:
    """One catalog-info document as YAML text."""
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    for key in ("labels", "annotations", "links"):
        if key in fields:
            metadata[key] = fields.pop(key)
    return yaml.safe_dump(
        {"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": fields},
        sort_keys=False,
    )


def catalog(folder: Path, files: dict[str, list[str] | str]) -> Path:
    """A folder of catalog files: name -> documents (joined with ---) or raw text."""
    for name, documents in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = documents if isinstance(documents, str) else "---\n".join(documents)
        path.write_text(text, encoding="utf-8")
    return folder


def by_name(records) -> dict:
    return {r.service: r for r in records}


def messages(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def component(name: str, *depends_on: str, **fields) -> str:
    return entity(
        "Component",
        name,
        type="service",
        lifecycle="production",
        owner="team-a",
        **({"dependsOn": list(depends_on)} if depends_on else {}),
        **fields,
    )


def resource(name: str, namespace: str | None = None, **fields) -> str:
    return entity("Resource", name, namespace, type="database", owner="team-a", **fields)


# --------------------------------------------------------------------------- files


def test_the_example_shop_becomes_the_expected_topology(caplog):
    caplog.set_level(logging.INFO, logger="whatif")
    records = import_topology(str(SHOP))
    assert topology_csv(records) == EXPECTED.read_text(encoding="utf-8")
    info = messages(caplog, logging.INFO)
    assert any(
        "18 entities, 10 services (6 Component, 4 Resource); not services: 1 API, 1 Domain, "
        "3 Group, 1 Location, 1 System, 1 User" in m
        for m in info
    ), info
    assert any("deprecated" in m and "component:default/recommendations" in m for m in info)
    (external,) = [m for m in messages(caplog) if "not in the catalog" in m]
    assert "card-gateway (default/card-gateway)" in external
    assert "--allow-external-dependencies" in external


def test_the_integration_key_is_never_copied():
    """pagerduty.com/integration-key routes events to PagerDuty (anyone holding it can page):
    the topology keeps only the service id."""
    text = topology_csv(import_topology(str(SHOP)))
    assert "0123456789abcdef" not in text
    assert by_name(import_topology(str(SHOP)))["payments"].pagerduty_service_id == "PPAY004"


def test_nested_folders_multi_documents_and_non_entities(tmp_path, caplog):
    folder = catalog(
        tmp_path,
        {
            "a/b/c/deep.yml": [component("deep", "component:top"), ""],  # trailing empty doc
            "top.YAML": [component("top"), entity("Group", "team-a", type="team")],
            "deploy/k8s.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: top}\n",
            ".github/workflows/ci.yml": "on: push\njobs: {}\n",
            "lists.yaml": "- 1\n- 2\n",
            "nameless.yaml": "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {}\n",
            "notes.txt": "kind: Component\n",  # not YAML by name: not read
        },
    )
    records = import_topology(str(folder))
    assert [r.service for r in records] == ["deep", "top"]
    assert by_name(records)["deep"].depends_on == ["top"]
    (skipped,) = [m for m in messages(caplog) if "not Backstage entities" in m]
    assert "skipped 4 YAML document(s)" in skipped
    for origin in (".github/workflows/ci.yml#1", "deploy/k8s.yaml#1", "lists.yaml#1"):
        assert origin in skipped
    assert "nameless.yaml#1 (no metadata.name)" in skipped


def test_a_single_file_is_a_source(tmp_path):
    path = tmp_path / "catalog-info.yaml"
    path.write_text("---\n".join([component("api", "resource:db"), resource("db")]))
    assert [(r.service, r.depends_on) for r in import_topology(str(path))] == [
        ("api", ["db"]),
        ("db", []),
    ]


def test_namespaced_refs_resolve_with_the_referring_entitys_namespace(tmp_path, caplog):
    """A ref without a namespace means the referring entity's namespace (Backstage's
    defaultNamespace: selfRef.namespace), not always `default`."""
    folder = catalog(
        tmp_path,
        {
            "pay.yaml": [
                entity(
                    "Component",
                    "payments",
                    "payments",
                    type="service",
                    owner="team-p",
                    dependsOn=["resource:payments-db", "resource:default/ledger", "resource:cache"],
                ),
                resource("payments-db", "payments"),
            ],
            "shared.yaml": [resource("ledger"), resource("cache")],
        },
    )
    records = by_name(import_topology(str(folder)))
    # resource:cache from the payments namespace is payments/cache: not in the catalog, and
    # named like the service default/cache, which the warning says
    assert records["payments"].depends_on == ["cache", "ledger", "payments-db"]
    (external,) = [m for m in messages(caplog) if "not in the catalog" in m]
    assert "cache (payments/cache, same name as a service of another namespace or kind)" in (
        external
    )


def test_dependency_of_adds_the_inverse_edge_and_relations_are_read(tmp_path, caplog):
    relations = [
        {"type": "dependsOn", "targetRef": "resource:default/db"},  # the same edge again
        {"type": "dependsOn", "targetRef": "component:default/search"},  # only here
        {"type": "ownedBy", "targetRef": "group:default/team-a"},  # not an edge
        {
            "type": "dependencyOf",
            "target": {"kind": "component", "namespace": "default", "name": "web"},
        },  # older object form
    ]
    exported = yaml_with_relations(component("api", "resource:db"), relations)
    folder = catalog(
        tmp_path,
        {
            "api.yaml": exported,
            "rest.yaml": [
                resource("db", dependencyOf=["component:api", "component:ghost"]),
                component("search"),
                component("web"),
            ],
        },
    )
    records = by_name(import_topology(str(folder)))
    assert records["api"].depends_on == ["db", "search"]
    assert records["web"].depends_on == ["api"]
    assert records["db"].depends_on == []
    (lost,) = [m for m in messages(caplog) if "dependencyOf" in m]
    assert (
        "1 dependencyOf refs" in lost and "resource:default/db <- component:default/ghost" in lost
    )


def yaml_with_relations(document: str, relations: list[dict]) -> str:
    data = yaml.safe_load(document)
    data["relations"] = relations
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ("group:default/team-payments", "team-payments"),
        ("team-payments", "team-payments"),
        ("group:team-payments", "team-payments"),
        ("payments/team-payments", "team-payments"),
        ("user:default/jdoe", "jdoe"),
    ],
)
def test_owner_is_the_name_part_of_the_owner_ref(tmp_path, owner, expected):
    folder = catalog(
        tmp_path, {"c.yaml": [entity("Component", "api", type="service", owner=owner)]}
    )
    assert import_topology(str(folder))[0].owner_team == expected


def test_owner_from_the_owned_by_relation_when_spec_has_none(tmp_path):
    folder = catalog(
        tmp_path,
        {
            "c.yaml": yaml_with_relations(
                entity("Component", "api", type="service"),
                [{"type": "ownedBy", "targetRef": "group:default/team-x"}],
            )
        },
    )
    assert import_topology(str(folder))[0].owner_team == "team-x"


def test_attributes_from_labels_annotations_and_links(tmp_path, caplog):
    folder = catalog(
        tmp_path,
        {
            "c.yaml": [
                component(
                    "a",
                    labels={
                        "whatif.io/tier": "edge",
                        "tier": "core",
                        "whatif.io/user-facing": "TRUE",
                    },
                    annotations={
                        "whatif.io/runbook-url": "https://rb/a",
                        "whatif.io/oncall": "a-primary",
                        "opsgenie.com/team": "a-opsgenie",
                        "pagerduty.com/service-id": "PA",
                    },
                    links=[{"url": "https://links/a", "title": "Runbook"}],
                ),
                component(
                    "b",
                    labels={"tier": "core"},
                    annotations={"whatif.io/user-facing": "false", "opsgenie.com/team": "b-og"},
                    links=[
                        {"url": "https://grafana/b", "title": "Dashboard"},
                        {"url": "https://wiki/b", "title": "How to", "type": "runbook"},
                    ],
                ),
                entity(
                    "Component",
                    "c",
                    type="Frontend",
                    owner="t",  # a type that is a tier
                    annotations={
                        "whatif.io/tier": "supporting",
                        "whatif.io/user-facing": "sometimes",
                    },
                ),
                entity("Component", "d", type="frontend", owner="t"),
                entity("Resource", "e", type="database", owner="t"),  # not a tier
            ]
        },
    )
    records = by_name(import_topology(str(folder)))
    a, b, c, d, e = (records[n] for n in "abcde")
    assert (a.tier, a.user_facing, a.runbook_url, a.oncall, a.pagerduty_service_id) == (
        "edge",
        True,
        "https://rb/a",
        "a-primary",
        "PA",
    )
    assert (b.tier, b.user_facing, b.runbook_url, b.oncall, b.pagerduty_service_id) == (
        "core",
        False,
        "https://wiki/b",
        "b-og",
        None,
    )
    assert (c.tier, c.user_facing) == ("supporting", None)
    assert (d.tier, e.tier) == ("frontend", None)
    (unclear,) = [m for m in messages(caplog) if "true/false" in m]
    assert "component:default/c (sometimes)" in unclear


def test_soft_dependencies_from_the_annotation(tmp_path):
    folder = catalog(
        tmp_path,
        {
            "c.yaml": [
                component(
                    "web",
                    "component:api",
                    "resource:cache",
                    "component:recs",
                    annotations={"whatif.io/soft-depends-on": "resource:cache; recs,queue"},
                ),
                component("api"),
                component("recs"),
                resource("cache"),
                resource("queue"),
            ]
        },
    )
    web = by_name(import_topology(str(folder)))["web"]
    assert web.depends_on == ["api"]
    assert web.soft_depends_on == ["cache", "queue", "recs"]  # queue: soft though not in dependsOn


def test_kindless_refs_resolve_and_refs_to_other_kinds_are_left_out(tmp_path, caplog):
    folder = catalog(
        tmp_path,
        {
            "c.yaml": [
                component("api", "db", "search", "api:default/orders-api", "system:shop"),
                resource("db"),
                component("search"),
                entity("API", "orders-api", type="openapi", owner="t", definition="x"),
            ]
        },
    )
    assert by_name(import_topology(str(folder)))["api"].depends_on == ["db", "search"]
    warnings = messages(caplog)
    (kindless,) = [m for m in warnings if "have no kind" in m]
    assert "2 dependency refs" in kindless and "component:default/api -> default/db" in kindless
    (other,) = [m for m in warnings if "not a service" in m]
    assert "2 dependency refs" in other and "api:default/orders-api" in other


def test_a_ref_with_an_empty_part_is_an_error_naming_the_entity(tmp_path):
    folder = catalog(tmp_path, {"c.yaml": [component("api", "component:")]})
    with pytest.raises(UserError, match=r"component:default/api \(c.yaml#1\): spec.dependsOn"):
        import_topology(str(folder))


def test_depends_on_that_is_not_a_list_is_an_error(tmp_path):
    folder = catalog(tmp_path, {"c.yaml": entity("Component", "api", dependsOn="resource:db")})
    with pytest.raises(UserError, match=r"spec\.dependsOn is not a list of entity refs"):
        import_topology(str(folder))


@pytest.mark.parametrize(
    ("text", "kind", "namespace", "name"),
    [
        ("orders-db", None, "ns", "orders-db"),
        ("resource:orders-db", "resource", "ns", "orders-db"),
        ("resource:default/orders-db", "resource", "default", "orders-db"),
        ("payments/orders-db", None, "payments", "orders-db"),
        ("a/b:c", None, "a", "b:c"),  # a / before the : means no kind
        ("Component:Default/Web", "Component", "Default", "Web"),
    ],
)
def test_parse_ref_follows_backstage(text, kind, namespace, name):
    ref = parse_ref(text, "ns")
    assert (ref.kind, ref.namespace, ref.name) == (kind, namespace, name)


@pytest.mark.parametrize("text", ["component:", ":web", "ns/", "component:/web", "/web"])
def test_parse_ref_refuses_empty_parts(text):
    with pytest.raises(ValueError, match="not on the form"):
        parse_ref(text, "default")


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    folder = catalog(
        tmp_path,
        {"ok.yaml": [component("api")], "svc/bad.yaml": "kind: Component\nmetadata: [a, b\n"},
    )
    with pytest.raises(UserError) as caught:
        import_topology(str(folder))
    assert "bad.yaml: line 3:" in str(caught.value) and "not valid YAML" in str(caught.value)


def test_a_file_that_is_not_utf8_is_an_error(tmp_path):
    (tmp_path / "c.yaml").write_bytes("metadata: {name: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"c\.yaml is not UTF-8"):
        import_topology(str(tmp_path))


def test_same_name_in_two_namespaces_is_an_error_naming_both_refs(tmp_path):
    folder = catalog(
        tmp_path,
        {"a.yaml": [resource("orders-db")], "b/b.yaml": [resource("orders-db", "payments")]},
    )
    with pytest.raises(UserError) as caught:
        import_topology(str(folder))
    text = str(caught.value)
    assert "resource:default/orders-db (a.yaml#1)" in text
    assert "resource:payments/orders-db (b/b.yaml#1)" in text
    assert "without namespaces" in text


def test_a_component_and_a_resource_of_one_name_is_an_error(tmp_path):
    folder = catalog(tmp_path, {"a.yaml": [component("Search"), resource("search")]})
    with pytest.raises(UserError, match=r"component:default/Search .* resource:default/search"):
        import_topology(str(folder))


def test_an_entity_defined_twice_is_an_error_naming_both_files(tmp_path):
    folder = catalog(tmp_path, {"a.yaml": [component("api")], "b.yaml": [component("api")]})
    with pytest.raises(UserError, match=r"defined twice \(a.yaml#1 and b.yaml#1\)"):
        import_topology(str(folder))


def test_no_services_no_yaml_and_no_such_path_are_errors(tmp_path):
    catalog(tmp_path / "groups", {"g.yaml": [entity("Group", "team-a", type="team")]})
    with pytest.raises(UserError, match="holds no Component or Resource"):
        import_topology(str(tmp_path / "groups"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no \*.yaml or \*.yml file"):
        import_topology(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="neither a folder, a file nor an http"):
        import_topology(str(tmp_path / "missing"))


# --------------------------------------------------------------------------- the API


@pytest.fixture
def shop_server():
    with backstage_server(load_entities(SHOP), token=TOKEN) as server:
        yield server


def from_api(server: BackstageServer, **options):
    options = {"token": TOKEN, "retry": FAST, "sleep": lambda s: None, **options}
    return import_topology(server.url, **options)


def test_the_api_pages_through_and_gives_what_the_files_give(shop_server):
    records = from_api(shop_server, page_size=3)
    assert topology_csv(records) == EXPECTED.read_text(encoding="utf-8")
    assert shop_server.pages() == [1, 2, 3, 4]  # 10 Components and Resources, 3 a page
    first, *rest = shop_server.requests
    assert first["path"] == "/api/catalog/entities/by-query"
    assert first["query"] == [
        ("filter", "kind=component"),
        ("filter", "kind=resource"),
        ("limit", "3"),
    ]
    for request in rest:
        assert [k for k, _ in request["query"]] == ["cursor", "limit"]  # never filter again
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in shop_server.requests)


@pytest.mark.parametrize("suffix", ["/", "/api/catalog", "/api/catalog/"])
def test_the_base_url_may_carry_the_catalog_path(shop_server, suffix):
    records = import_topology(shop_server.url + suffix, token=TOKEN, retry=FAST)
    assert len(records) == 10
    assert {r["path"] for r in shop_server.requests} == {"/api/catalog/entities/by-query"}


def test_a_wrong_base_path_says_check_the_url(shop_server):
    with pytest.raises(
        ApiError, match=r"HTTP 404: no such endpoint \(check the backstage base URL"
    ):
        import_topology(shop_server.url + "/backstage", token=TOKEN, retry=FAST)


@pytest.mark.parametrize(
    ("token", "what"), [(None, "no token was sent"), ("wrong", "the server refused the token")]
)
def test_a_missing_or_wrong_token_is_one_line_naming_the_variable(shop_server, token, what):
    with pytest.raises(ApiError) as caught:
        from_api(shop_server, token=token)
    text = str(caught.value)
    assert "HTTP 401" in text and what in text and "$BACKSTAGE_TOKEN" in text
    assert "\n" not in text and "wrong" not in text  # the token itself is never shown


def test_a_429_with_retry_after_is_waited_for_and_retried(shop_server):
    shop_server.fail(2, 429, headers={"Retry-After": "3"})
    waits: list[float] = []
    records = from_api(shop_server, page_size=3, sleep=waits.append)
    assert len(records) == 10
    assert waits == [3.0]
    assert [r["page"] for r in shop_server.requests] == [1, 2, 2, 3, 4]


def test_a_page_that_keeps_failing_raises_and_returns_nothing(shop_server):
    shop_server.fail(3, 500, times=100)
    with pytest.raises(ApiError) as caught:
        from_api(shop_server, page_size=3)
    assert "HTTP 500 after 3 tries" in str(caught.value)
    assert "cursor=" in str(caught.value)  # names the failing request


def test_a_truncated_page_raises(shop_server):
    shop_server.truncate(2)
    with pytest.raises(ApiError, match="not complete JSON"):
        from_api(shop_server, page_size=3)


def test_a_cursor_loop_is_detected(shop_server):
    shop_server.loop(3)
    with pytest.raises(
        ApiError, match="a cursor it gave before after 3 pages: its pagination loops"
    ):
        from_api(shop_server, page_size=3)
    assert shop_server.pages() == [1, 2, 3]


def test_an_empty_page_that_points_on_is_an_error(shop_server):
    shop_server.empty(2)
    with pytest.raises(ApiError, match="an empty page with a cursor"):
        from_api(shop_server, page_size=3)


def test_an_answer_that_is_not_a_page_is_an_error(shop_server, monkeypatch):
    monkeypatch.setattr(BackstageServer, "_query", lambda self, query: (200, [1, 2], {}))
    with pytest.raises(ApiError, match="not a by-query page"):
        from_api(shop_server)


def test_duplicate_names_across_namespaces_from_the_api_is_an_error():
    entities = [
        yaml.safe_load(resource("orders-db")),
        yaml.safe_load(resource("orders-db", "payments")),
    ]
    with backstage_server(entities, token=TOKEN) as server, pytest.raises(UserError) as caught:
        from_api(server)
    assert "resource:default/orders-db" in str(caught.value)
    assert "resource:payments/orders-db" in str(caught.value)


def test_the_api_serves_only_services_and_counts_entities(shop_server, caplog):
    caplog.set_level(logging.INFO, logger="whatif")
    from_api(shop_server, page_size=4)
    assert any(
        "10 entities, 10 services (6 Component, 4 Resource)" in m
        for m in messages(caplog, logging.INFO)
    )


def test_the_fake_filters_as_backstage_documents(shop_server):
    """The fake's own semantics, so the tests above test against the documented API: repeated
    filters OR, conditions within one AND, case-insensitive, existence checks, and arrays."""
    entities = shop_server.entities
    names = lambda filters: sorted(  # noqa: E731
        e["metadata"]["name"] for e in entities if matches(e, filters)
    )
    assert names(["kind=group", "kind=user"]) == [
        "jdoe",
        "team-payments",
        "team-platform",
        "team-storefront",
    ]
    assert names(["kind=Component,spec.type=website"]) == ["web-frontend"]
    assert names(["kind=resource,metadata.namespace=payments"]) == ["payments-db"]
    assert names(["spec.dependencyOf"]) == ["session-cache"]
    assert names(["kind=component,spec.consumesApis=orders-api"]) == ["web-frontend"]
    assert names(["relations.dependsOn=resource:payments/payments-db"]) == ["payments"]
    url = f"{shop_server.url}/api/catalog/entities/by-query"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = requests.get(url, params={"filter": "kind=api", "limit": 1}, headers=headers).json()
    assert (first["totalItems"], len(first["items"])) == (1, 1)
    refused = requests.get(
        url, params={"cursor": "eyJ9", "filter": "kind=api"}, headers=headers, timeout=5
    )
    assert refused.status_code == 400


def test_example_data_is_documented():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "shop-topology.csv" in readme and "shop/" in readme


def test_orphaned_services_are_kept_and_warned_about(tmp_path, caplog):
    folder = catalog(
        tmp_path, {"c.yaml": [component("old", annotations={"backstage.io/orphan": "true"})]}
    )
    assert [r.service for r in import_topology(str(folder))] == ["old"]
    (orphans,) = [m for m in messages(caplog) if "orphaned" in m]
    assert "1 services" in orphans and "component:default/old" in orphans


class CannedApi:
    """Stands in for JsonApi: answers the given pages in turn."""

    def __init__(self, pages: list) -> None:
        self.pages = list(pages)

    def get(self, path, params):
        return self.pages.pop(0)

    def describe(self, method, path, params=None):
        return f"{method} {path}"


def item(name: str) -> dict:
    return yaml.safe_load(component(name))


def test_an_entity_served_twice_is_kept_once_and_a_changed_total_is_warned(caplog):
    pages = [
        {"items": [item("a"), item("b")], "totalItems": 5, "pageInfo": {"nextCursor": "c2"}},
        {"items": [item("b")], "totalItems": 5, "pageInfo": {}},
    ]
    entities = list(read_api(CannedApi(pages), page_size=2))
    records = build_records(entities, "http://backstage")
    assert [r.service for r in records] == ["a", "b"]
    warnings = messages(caplog)
    assert any("served 1 entities twice" in m and "component:default/b" in m for m in warnings)
    assert any("read 3 Components and Resources where the catalog counted 5" in m for m in warnings)


def test_a_page_size_below_one_is_an_error(shop_server):
    with pytest.raises(UserError, match="page size must be at least 1"):
        from_api(shop_server, page_size=0)
    assert shop_server.requests == []


def test_where_a_service_runs_comes_from_the_kubernetes_plugin_annotations():
    """backstage.io/kubernetes-namespace, -label-selector (else -id, as the label the plugin
    matches) and whatif.io/health-url, whatif.io/aws-target: the game-day export's targets."""
    records = {r.service: r for r in import_topology(str(SHOP))}
    orders, web = records["orders"], records["web-frontend"]
    assert (orders.k8s_namespace, orders.k8s_selector, orders.health_url) == (
        "shop",
        "backstage.io/kubernetes-id=orders",
        "http://orders.shop.svc.cluster.local:8080/healthz",
    )
    assert (web.k8s_namespace, web.k8s_selector, web.aws_target) == (
        None,
        "app=web,component=front-end",
        "tag:service=web-frontend",
    )
    assert records["catalog"].k8s_selector is None  # no annotation: the exporter's default

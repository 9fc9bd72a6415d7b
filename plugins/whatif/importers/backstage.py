"""The topology from a Backstage software catalog: its `catalog-info.yaml` files (a folder, read
at any depth, or one file) or a running Backstage's catalog API
(`GET {base}/api/catalog/entities/by-query`, cursor-paginated).

Components and Resources become services, named by `metadata.name`; `spec.dependsOn`,
`spec.dependencyOf` and the catalog's computed `dependsOn` / `dependencyOf` relations become
edges; `spec.owner` and a few labels, annotations and links fill the optional columns
(docs/sources.md gives the exact mapping). Our topology names services without namespaces,
so two services of one name in different namespaces (or a Component and a Resource of one
name) are an error naming both, never a silent merge. Every entity or reference left out is
counted and reported on the `whatif` logger, one line per reason; a page of the API that
fails after retries raises, so a partial catalog is never returned."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from whatif.errors import UserError, shown
from whatif.importers.api import ApiError, JsonApi
from whatif.importers.common import ServiceRecord, listing, unique_sorted
from whatif.importers.fetch import TOKEN_VARIABLES
from whatif.llm import RetryPolicy

log = logging.getLogger(__name__)

SOURCE = "backstage"
TOKEN_VARIABLE = TOKEN_VARIABLES["backstage"]
SERVICE_KINDS = ("component", "resource")
# Our tier vocabulary (docs/data-contract.md, the synthetic platform): a `spec.type` that is
# one of these is read as the tier; any other type (service, website, database...) is not.
TIERS = ("edge", "frontend", "core", "supporting", "data", "infra", "external")

TIER_KEYS = ("whatif.io/tier",)
USER_FACING_KEY = "whatif.io/user-facing"
RUNBOOK_KEY = "whatif.io/runbook-url"
ONCALL_KEYS = ("whatif.io/oncall", "opsgenie.com/team")
PAGERDUTY_KEY = "pagerduty.com/service-id"  # the PagerDuty plugin's service annotation
SOFT_KEY = "whatif.io/soft-depends-on"
# Where it runs (the game-day exports): the Backstage Kubernetes plugin's annotations, and ours.
K8S_NAMESPACE_KEY = "backstage.io/kubernetes-namespace"
K8S_SELECTOR_KEY = "backstage.io/kubernetes-label-selector"
K8S_ID_KEY = "backstage.io/kubernetes-id"
HEALTH_KEY = "whatif.io/health-url"
AWS_TARGET_KEY = "whatif.io/aws-target"
ORPHAN_KEY = "backstage.io/orphan"
YAML_SUFFIXES = (".yaml", ".yml")


# --------------------------------------------------------------------------- public


def import_topology(
    source: str,
    *,
    token: str | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    page_size: int = 500,
) -> list[ServiceRecord]:
    """The services of a Backstage catalog, sorted by name: `source` is a folder of
    catalog-info YAML files, one such file, or the http(s) base URL of a Backstage instance
    (the catalog API is `{source}/api/catalog`; `token` is sent as a bearer token)."""
    if source.startswith(("http://", "https://")):
        api = _catalog_api(source, token, timeout_s, retry, sleep)
        entities = list(read_api(api, page_size=page_size))
        where = api.base_url
    else:
        entities = read_files(source)
        where = source
    return build_records(entities, where)


# --------------------------------------------------------------------------- entities


@dataclasses.dataclass
class Entity:
    """One catalog entity and where it came from (a file and document number, or the API):
    messages name both the ref and the origin, so the user can find it."""

    kind: str  # as written: "Component"
    namespace: str  # as written, "default" when absent
    name: str
    data: dict[str, Any]
    origin: str  # "services/orders/catalog-info.yaml#2" or "item 7" (of the API's answer)
    from_file: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        """Refs compare without case (Backstage lower-cases them: stringifyEntityRef)."""
        return (self.kind.lower(), self.namespace.lower(), self.name.lower())

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}:{self.namespace.lower()}/{self.name}"

    @property
    def is_service(self) -> bool:
        return self.kind.lower() in SERVICE_KINDS

    def metadata(self, field: str) -> dict[str, Any]:
        value = (self.data.get("metadata") or {}).get(field)
        return value if isinstance(value, dict) else {}

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.data.get("spec")
        return spec if isinstance(spec, dict) else {}


@dataclasses.dataclass(frozen=True)
class Ref:
    """A parsed entity ref `[kind:][namespace/]name`; kind None when the ref has none."""

    kind: str | None
    namespace: str
    name: str

    @property
    def text(self) -> str:
        """Canonical (lower-case, as Backstage writes refs), so one ref is listed once."""
        kind = f"{self.kind}:" if self.kind else ""
        return f"{kind}{self.namespace}/{self.name}".lower()


def parse_ref(text: str, default_namespace: str, default_kind: str | None = None) -> Ref:
    """Backstage's parseEntityRef: `[<kind>:][<namespace>/]<name>`, a `/` before the `:`
    meaning there is no kind; the namespace defaults to the referring entity's (not always
    `default`). ValueError for an empty part."""
    colon, slash = text.find(":"), text.find("/")
    if slash != -1 and slash < colon:
        colon = -1
    kind = None if colon == -1 else text[:colon]
    namespace = None if slash == -1 else text[colon + 1 : slash]
    name = text[max(colon + 1, slash + 1) :]
    if kind == "" or namespace == "" or name == "":
        raise ValueError(f"{text!r} is not on the form [<kind>:][<namespace>/]<name>")
    return Ref(kind or default_kind, namespace or default_namespace, name)


def entity_from(document: Any, origin: str) -> Entity | str:
    """The entity a parsed document or API item holds, or why it is none."""
    if not isinstance(document, dict):
        return "not a mapping"
    kind, metadata = document.get("kind"), document.get("metadata")
    if not isinstance(kind, str) or not kind.strip():
        return "no kind"
    if not isinstance(metadata, dict):
        return "no metadata"
    name, namespace = metadata.get("name"), metadata.get("namespace") or "default"
    if not isinstance(name, str) or not name.strip():
        return "no metadata.name"
    if not isinstance(namespace, str):
        return "metadata.namespace is not a string"
    return Entity(kind.strip(), namespace.strip(), name.strip(), document, origin)


# --------------------------------------------------------------------------- files


def read_files(source: str) -> list[Entity]:
    """The entities of every `*.yaml` / `*.yml` under a folder (any depth, multi-document),
    or of one file. Documents that are not Backstage entities are counted and warned about;
    invalid YAML is an error naming the file and line."""
    root = Path(source).expanduser()
    if root.is_dir():
        files = sorted(_yaml_files(root))
        if not files:
            raise UserError(
                f"{SOURCE}: no *.yaml or *.yml file under {root}",
                hint="point at the folder holding the catalog-info.yaml files",
            )
    elif root.is_file():
        files = [root]
    else:
        raise UserError(
            f"{SOURCE}: {source} is neither a folder, a file nor an http(s) URL",
            hint="give a folder of catalog-info.yaml files, one such file, or a Backstage URL",
        )
    entities: list[Entity] = []
    skipped: list[str] = []
    for path in files:
        shown_path = _relative(path, root)
        for number, document in enumerate(_documents(path), start=1):
            if document is None:
                continue  # an empty document (a trailing `---`): holds nothing
            found = _backstage_entity(document, f"{shown_path}#{number}")
            if isinstance(found, Entity):
                found.from_file = True
                entities.append(found)
            else:
                skipped.append(f"{shown_path}#{number} ({found})")
    if skipped:
        log.warning(
            "%s: skipped %d YAML document(s) that are not Backstage entities: %s",
            SOURCE,
            len(skipped),
            listing(skipped),
        )
    return entities


def _yaml_files(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):  # symlinked folders are not followed: no loops
        dirs.sort()
        for name in names:
            if name.lower().endswith(YAML_SUFFIXES):
                yield Path(folder) / name


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if root.is_dir() else str(path)


def _documents(path: Path) -> list[Any]:
    """Every document of one YAML file; UserError naming the file (and line) when it cannot
    be read, so nothing of a broken file is half-used."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{SOURCE}: {path} is not UTF-8 text", hint="save it as UTF-8") from None
    except OSError as problem:
        raise UserError(f"{SOURCE}: cannot read {path}: {problem.strerror}") from None
    try:
        # libyaml's loader when PyYAML has it: the same documents, 8x faster (22,000 files
        # in 2.1 s instead of 17 s: bench/imports_results.md).
        return list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark is not None else ""
        what = getattr(problem, "problem", None) or type(problem).__name__
        raise UserError(
            f"{SOURCE}: {path}:{line} not valid YAML ({what})",
            hint="fix the file (a YAML linter shows where)",
        ) from None


def _backstage_entity(document: Any, origin: str) -> Entity | str:
    """An entity only when its apiVersion is Backstage's (`backstage.io/...`): a Kubernetes
    manifest or a CI workflow in the same folder is not one."""
    if isinstance(document, dict):
        version = document.get("apiVersion")
        if not isinstance(version, str) or not version.startswith("backstage.io/"):
            return "apiVersion is not backstage.io/..."
    return entity_from(document, origin)


# --------------------------------------------------------------------------- the API


def _catalog_api(
    base: str,
    token: str | None,
    timeout_s: float,
    retry: RetryPolicy | None,
    sleep: Callable[[float], None] | None,
) -> JsonApi:
    """The catalog API under a Backstage base URL (`/api/catalog` is added unless given)."""
    base = base.rstrip("/")
    if not urlsplit(base).path.endswith("/api/catalog"):
        base = f"{base}/api/catalog"
    options: dict[str, Any] = {"retry": retry or RetryPolicy()}
    if sleep is not None:
        options["sleep"] = sleep
    return JsonApi(
        SOURCE,
        base,
        token=token,
        token_variable=TOKEN_VARIABLE,
        timeout_s=timeout_s,
        **options,
    )


def read_api(api: JsonApi, *, page_size: int = 500) -> Iterator[Entity]:
    """Every Component and Resource of the catalog, page by page. The first request sends
    the filters (one `filter` per kind: Backstage ORs repeated filters, ANDs the conditions
    within one); each next page sends only `cursor` and `limit`, since the cursor carries the
    filter (parseQueryEntitiesParams ignores `filter` beside a cursor). A page that fails
    after retries raises ApiError; a cursor seen twice, or an empty page that points to
    another, stops with an error instead of looping."""
    if page_size < 1:
        raise UserError(f"{SOURCE}: the page size must be at least 1 (got {page_size})")
    params: list[tuple[str, Any]] = [("filter", f"kind={kind}") for kind in SERVICE_KINDS]
    params.append(("limit", page_size))
    seen: set[str] = set()
    served, total, pages = 0, None, 0
    while True:
        page = api.get("entities/by-query", params)
        pages += 1
        items, cursor, count = _page(api, page, params)
        total = count if total is None else total
        for number, item in enumerate(items, start=served + 1):
            found = entity_from(item, f"item {number}")
            if not isinstance(found, Entity):
                raise ApiError(
                    f"{SOURCE}: {api.describe('GET', 'entities/by-query', params)}: "
                    f"item {number} is not a catalog entity ({found})"
                )
            yield found
        served += len(items)
        if cursor is None:
            break
        if cursor in seen or not items:
            why = "a cursor it gave before" if cursor in seen else "an empty page with a cursor"
            raise ApiError(
                f"{SOURCE}: {api.describe('GET', 'entities/by-query', params)}: the catalog "
                f"answered {why} after {pages} pages: its pagination loops",
                hint="nothing was written; check the Backstage version and any proxy",
            )
        seen.add(cursor)
        params = [("cursor", cursor), ("limit", page_size)]
    if total is not None and total != served:
        log.warning(
            "%s: read %d Components and Resources where the catalog counted %d at the first "
            "page: it changed during the read; import again for a consistent copy",
            SOURCE,
            served,
            total,
        )


def _page(
    api: JsonApi, page: Any, params: list[tuple[str, Any]]
) -> tuple[list[Any], str | None, int | None]:
    """(items, next cursor, totalItems) of one by-query answer; ApiError for another shape."""
    shown_request = api.describe("GET", "entities/by-query", params)
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise ApiError(
            f"{SOURCE}: {shown_request}: the answer is not a by-query page (no items list)",
            hint="check that the URL is the Backstage backend's base URL",
        )
    info = page.get("pageInfo") or {}
    cursor = info.get("nextCursor") if isinstance(info, dict) else None
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise ApiError(f"{SOURCE}: {shown_request}: pageInfo.nextCursor is not a string")
    total = page.get("totalItems")
    return page["items"], cursor, total if isinstance(total, int) else None


# --------------------------------------------------------------------------- mapping


@dataclasses.dataclass
class _Findings:
    """What the mapping left out or noticed, reported once per kind after the mapping."""

    external: dict[str, str] = dataclasses.field(default_factory=dict)  # ns/name -> name
    external_shadow: set[str] = dataclasses.field(default_factory=set)
    lost_dependents: set[str] = dataclasses.field(default_factory=set)
    other_kinds: set[str] = dataclasses.field(default_factory=set)
    kindless: set[str] = dataclasses.field(default_factory=set)
    unclear_user_facing: list[str] = dataclasses.field(default_factory=list)


def build_records(entities: Iterable[Entity], where: str) -> list[ServiceRecord]:
    """Service records for the Components and Resources among `entities`, sorted by name."""
    entities = _unique(entities)
    services = [e for e in entities if e.is_service]
    _report_kinds(entities, services, where)
    if not services:
        raise UserError(
            f"{SOURCE}: {where} holds no Component or Resource entity",
            hint="check the folder or URL, and that the token may read the catalog",
        )
    by_key = {e.key: e for e in services}
    names = _flat_names(services)
    findings = _Findings()
    hard: dict[str, set[str]] = {e.name: set() for e in services}
    soft: dict[str, set[str]] = {e.name: set() for e in services}
    # Declared edges first, then the API's relations: an external dependency keeps the
    # spelling a file gave it, not the lower-cased one of a relation's targetRef.
    edges = [(e, t, inv, True) for e in services for t, inv in _spec_edges(e)]
    edges += [(e, t, inv, False) for e in services for t, inv in _relation_edges(e)]
    for entity, target, inverse, declared in edges:
        name = _resolve(target, entity, by_key, names, findings, declared, inverse)
        if name is not None:
            hard[name if inverse else entity.name].add(entity.name if inverse else name)
    for entity in services:
        for text in _soft_refs(entity):
            target = _parse(text, entity, SOFT_KEY)
            name = _resolve(target, entity, by_key, names, findings, declared=False)
            if name is not None:
                soft[entity.name].add(name)
    records = [
        _record(e, sorted(hard[e.name] - soft[e.name]), sorted(soft[e.name]), findings)
        for e in services
    ]
    _report(findings, services)
    return sorted(records, key=lambda r: r.service)


def _unique(entities: Iterable[Entity]) -> list[Entity]:
    """The entities, each ref once. A ref defined twice in files is an error naming both
    origins (Backstage would keep one and flag the other); the API may serve an entity twice
    when the catalog changes between pages: kept once and counted."""
    first: dict[tuple[str, str, str], Entity] = {}
    repeated: list[str] = []
    for entity in entities:
        earlier = first.get(entity.key)
        if earlier is None:
            first[entity.key] = entity
            continue
        if entity.from_file:
            raise UserError(
                f"{SOURCE}: {entity.ref} is defined twice ({earlier.origin} and {entity.origin})",
                hint="keep one definition of each entity",
            )
        repeated.append(entity.ref)
    if repeated:
        log.warning(
            "%s: the catalog served %d entities twice (it changed between pages); each is "
            "kept once: %s",
            SOURCE,
            len(repeated),
            listing(repeated),
        )
    return list(first.values())


def _report_kinds(entities: list[Entity], services: list[Entity], where: str) -> None:
    """One info line: how many entities were read, which became services, and the kinds that
    are not services (Groups, APIs, Systems...), counted by kind."""
    kinds = Counter(e.kind for e in services)
    others = Counter(e.kind for e in entities if not e.is_service)
    text = ", ".join(f"{n} {k}" for k, n in sorted(others.items()))
    log.info(
        "%s: %s: %d entities, %d services (%s)%s",
        SOURCE,
        where,
        len(entities),
        len(services),
        ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none",
        f"; not services: {text}" if text else "",
    )
    if any(e.kind.lower() == "location" for e in entities):
        log.info(
            "%s: Location entities are not followed: the files they name are read only when "
            "they are under the folder given",
            SOURCE,
        )


def _flat_names(services: list[Entity]) -> dict[str, Entity]:
    """Service name (case-folded) -> entity; two entities of one name (other namespace, or
    a Component and a Resource) are an error naming both refs: our topology's names are
    flat, and merging them would join two services' failures."""
    names: dict[str, Entity] = {}
    for entity in services:
        other = names.setdefault(entity.name.casefold(), entity)
        if other is not entity:
            raise UserError(
                f"{SOURCE}: {other.ref} ({other.origin}) and {entity.ref} ({entity.origin}) "
                f"share the name {shown(entity.name)!r}: the topology names services without "
                "namespaces or kinds",
                hint="give one of them another metadata.name",
            )
    return names


def _spec_edges(entity: Entity) -> Iterator[tuple[Ref, bool]]:
    """(target, inverse) of each edge the entity declares: spec.dependsOn (entity ->
    target) and spec.dependencyOf (target -> entity: inverse)."""
    for field, inverse in (("dependsOn", False), ("dependencyOf", True)):
        for text in _ref_list(entity, field):
            yield _parse(text, entity, f"spec.{field}"), inverse


def _relation_edges(entity: Entity) -> Iterator[tuple[Ref, bool]]:
    """The same two edges as the catalog computes them (`relations` of type dependsOn and
    dependencyOf, each with a full targetRef; both ends carry one)."""
    relations = entity.data.get("relations")
    for relation in relations if isinstance(relations, list) else []:
        if not isinstance(relation, dict):
            continue
        kind = str(relation.get("type") or "").lower()
        if kind not in ("dependson", "dependencyof"):
            continue
        target = relation.get("targetRef")
        if not isinstance(target, str):
            old = relation.get("target")  # the object form of older Backstage versions
            if not isinstance(old, dict):
                continue
            target = f"{old.get('kind')}:{old.get('namespace')}/{old.get('name')}"
        yield _parse(target, entity, "relations"), kind == "dependencyof"


def _ref_list(entity: Entity, field: str) -> list[str]:
    value = entity.spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(
            f"{SOURCE}: {entity.ref} ({entity.origin}): spec.{field} is not a list of entity refs",
            hint=f"write spec.{field} as a YAML list, e.g. [resource:orders-db]",
        )
    return [v.strip() for v in value if v.strip()]


def _soft_refs(entity: Entity) -> list[str]:
    """The refs of the `whatif.io/soft-depends-on` annotation (or label), `,` or `;`
    separated."""
    text = entity.metadata("annotations").get(SOFT_KEY) or entity.metadata("labels").get(SOFT_KEY)
    if not isinstance(text, str):
        return []
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def _parse(text: str, entity: Entity, field: str) -> Ref:
    try:
        return parse_ref(text, entity.namespace)
    except ValueError as problem:
        raise UserError(
            f"{SOURCE}: {entity.ref} ({entity.origin}): {field}: {problem}",
            hint="write refs as kind:namespace/name, e.g. resource:default/orders-db",
        ) from None


def _resolve(
    target: Ref,
    entity: Entity,
    by_key: dict[tuple[str, str, str], Entity],
    names: dict[str, Entity],
    findings: _Findings,
    declared: bool,
    inverse: bool = False,
) -> str | None:
    """The service name a ref names: the entity's metadata.name as written. A Component or
    Resource not in the catalog keeps its name as an external dependency (warned about),
    unless the ref is a dependent (`inverse`): that edge has no service to start from, so
    None, counted by the caller. A ref to another kind (an API, a System) is no service:
    None, counted. A ref without a kind (Backstage itself requires one in dependsOn) is
    matched as a Component, then a Resource, and counted when a spec field gave it."""
    namespace, name = target.namespace.lower(), target.name.lower()
    if target.kind is None:
        if declared:
            findings.kindless.add(f"{entity.ref.lower()} -> {target.text}")
        kinds: tuple[str, ...] = SERVICE_KINDS
    elif target.kind.lower() in SERVICE_KINDS:
        kinds = (target.kind.lower(),)
    else:
        findings.other_kinds.add(f"{entity.ref.lower()} -> {target.text}")
        return None
    for kind in kinds:
        found = by_key.get((kind, namespace, name))
        if found is not None:
            return found.name
    if inverse:
        findings.lost_dependents.add(f"{entity.ref.lower()} <- {target.text}")
        return None
    key = f"{namespace}/{name}"
    external = findings.external.setdefault(key, target.name)
    if name.casefold() in names:
        findings.external_shadow.add(key)
    return external


def _record(entity: Entity, hard: list[str], soft: list[str], findings: _Findings) -> ServiceRecord:
    labels, annotations = entity.metadata("labels"), entity.metadata("annotations")
    return ServiceRecord(
        service=entity.name,
        depends_on=unique_sorted(hard),
        soft_depends_on=unique_sorted(soft),
        tier=_tier(entity, labels, annotations),
        owner_team=_owner(entity),
        user_facing=_user_facing(entity, labels, annotations, findings),
        runbook_url=_text(annotations.get(RUNBOOK_KEY)) or _runbook_link(entity),
        oncall=next(filter(None, (_text(annotations.get(k)) for k in ONCALL_KEYS)), None),
        pagerduty_service_id=_text(annotations.get(PAGERDUTY_KEY)),
        k8s_namespace=_text(annotations.get(K8S_NAMESPACE_KEY)),
        k8s_selector=_k8s_selector(annotations),
        health_url=_text(annotations.get(HEALTH_KEY)),
        aws_target=_text(annotations.get(AWS_TARGET_KEY)),
    )


def _k8s_selector(annotations: dict[str, Any]) -> str | None:
    """The Kubernetes plugin's label selector, else its kubernetes-id as the label the plugin
    matches (`backstage.io/kubernetes-id=<id>`)."""
    selector = _text(annotations.get(K8S_SELECTOR_KEY))
    if selector:
        return selector
    ident = _text(annotations.get(K8S_ID_KEY))
    return f"{K8S_ID_KEY}={ident}" if ident else None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _tier(entity: Entity, labels: dict, annotations: dict) -> str | None:
    """Label `whatif.io/tier`, annotation `whatif.io/tier`, label `tier`; else spec.type
    when it is one of our tiers (a type such as `service` or `database` is not a tier)."""
    for value in (labels.get(TIER_KEYS[0]), annotations.get(TIER_KEYS[0]), labels.get("tier")):
        if _text(value):
            return _text(value)
    kind = _text(entity.spec.get("type"))
    return kind.lower() if kind and kind.lower() in TIERS else None


def _owner(entity: Entity) -> str | None:
    """The name part of spec.owner (`group:default/team-payments` -> `team-payments`), else
    of the API's ownedBy relation."""
    owner = _text(entity.spec.get("owner"))
    if owner is None:
        for relation in entity.data.get("relations") or []:
            if isinstance(relation, dict) and str(relation.get("type")).lower() == "ownedby":
                owner = _text(relation.get("targetRef"))
                break
    if owner is None:
        return None
    try:
        return parse_ref(owner, entity.namespace, "group").name
    except ValueError:
        return owner


def _user_facing(
    entity: Entity, labels: dict, annotations: dict, findings: _Findings
) -> bool | None:
    value = _text(labels.get(USER_FACING_KEY)) or _text(annotations.get(USER_FACING_KEY))
    if value is None:
        return None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    findings.unclear_user_facing.append(f"{entity.ref} ({shown(value, 20)})")
    return None


def _runbook_link(entity: Entity) -> str | None:
    """The first metadata.links entry whose title or type mentions a runbook."""
    links = (entity.data.get("metadata") or {}).get("links")
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict):
            continue
        words = f"{link.get('title') or ''} {link.get('type') or ''}".lower()
        if "runbook" in words and _text(link.get("url")):
            return _text(link.get("url"))
    return None


def _report(findings: _Findings, services: list[Entity]) -> None:
    """One warning line per kind of finding: what was kept, dropped or not understood."""
    if findings.external:
        names = [
            f"{findings.external[k]} ({k}"
            + (
                ", same name as a service of another namespace or kind"
                if k in findings.external_shadow
                else ""
            )
            + ")"
            for k in sorted(findings.external)
        ]
        log.warning(
            "%s: %d dependencies are not in the catalog and are kept as dependencies by name "
            "(declare them, or run with --allow-external-dependencies): %s",
            SOURCE,
            len(names),
            listing(names),
        )
    if findings.lost_dependents:
        log.warning(
            "%s: %d dependencyOf refs name an entity that is not a service of the catalog, so "
            "the edge has no service to start from and is left out: %s",
            SOURCE,
            len(findings.lost_dependents),
            listing(sorted(findings.lost_dependents)),
        )
    if findings.other_kinds:
        log.warning(
            "%s: %d dependency refs name a kind that is not a service (only Components and "
            "Resources are) and are left out: %s",
            SOURCE,
            len(findings.other_kinds),
            listing(sorted(findings.other_kinds)),
        )
    if findings.kindless:
        log.warning(
            "%s: %d dependency refs have no kind; read as a Component, else a Resource, of "
            "that name (Backstage itself refuses them in dependsOn: write component:... or "
            "resource:...): %s",
            SOURCE,
            len(findings.kindless),
            listing(sorted(findings.kindless)),
        )
    if findings.unclear_user_facing:
        log.warning(
            "%s: %d %s values are not true/false; left empty (inferred from the graph): %s",
            SOURCE,
            len(findings.unclear_user_facing),
            USER_FACING_KEY,
            listing(findings.unclear_user_facing),
        )
    deprecated = [e.ref for e in services if str(e.spec.get("lifecycle")).lower() == "deprecated"]
    if deprecated:
        log.info(
            "%s: %d services are deprecated (spec.lifecycle) and kept: %s",
            SOURCE,
            len(deprecated),
            listing(deprecated),
        )
    orphans = [e.ref for e in services if str(e.metadata("annotations").get(ORPHAN_KEY)) == "true"]
    if orphans:
        log.warning(
            "%s: %d services are orphaned (%s: the file that defined them is gone) and kept: %s",
            SOURCE,
            len(orphans),
            ORPHAN_KEY,
            listing(orphans),
        )

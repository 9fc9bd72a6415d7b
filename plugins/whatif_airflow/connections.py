"""Airflow connections mapped to the engine's settings, declared as tables (in the manner of
astronomer-cosmos's profile mappings): which field of the connection gives which setting.

| connection          | host            | login | password           | extra                      |
|---------------------|-----------------|-------|--------------------|----------------------------|
| whatif_llm          | the server URL  |       | API key            | provider, model, timeout,  |
|                     |                 |       |                    | temperature, max_concurrency|
| whatif_confluence   | the base URL    | user  | API token or PAT   | space, parent_id, cloud    |
| whatif_reports      | (S3 and the like: the provider's own fields)                          |
| whatif_incidents_db | any SQL connection (a DbApiHook)                                    |
| whatif_backstage    | the base URL    |       | BACKSTAGE_TOKEN's  | path (catalog-info YAML    |
|                     |                 |       | token              | folder instead of the API) |
| whatif_jaeger       | query base URL  |       | bearer (optional)  | path (a saved answer)      |
| whatif_prometheus   | Prometheus URL  |       | bearer (optional)  |                            |
| whatif_pagerduty    | API URL (opt.)  |       | REST API key       |                            |
| whatif_incidentio   | API URL (opt.)  |       | API key            | services_field             |

Passwords are masked in every log as soon as they are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from whatif.errors import UserError

LLM_CONN_ID = "whatif_llm"
CONFLUENCE_CONN_ID = "whatif_confluence"
REPORTS_CONN_ID = "whatif_reports"
# The import sources of the params topology_source / incident_source, by kind.
IMPORT_CONN_IDS = {
    "backstage": "whatif_backstage",
    "jaeger": "whatif_jaeger",
    "tempo": "whatif_prometheus",
    "pagerduty": "whatif_pagerduty",
    "incident-io": "whatif_incidentio",
}


@dataclasses.dataclass(frozen=True)
class Field:
    """One setting from a connection: `source` is host/url/login/password/port or extra.KEY."""

    source: str
    convert: Callable[[Any], Any] = str


LLM_FIELDS: dict[str, Field] = {
    "url": Field("url"),
    "api_key": Field("password"),
    "provider": Field("extra.provider"),
    "model": Field("extra.model"),
    "timeout_s": Field("extra.timeout", float),
    "temperature": Field("extra.temperature", float),
    "max_concurrency": Field("extra.max_concurrency", int),
}
IMPORT_FIELDS: dict[str, Field] = {
    "url": Field("url"),
    "token": Field("password"),
    "path": Field("extra.path"),
    "services_field": Field("extra.services_field"),
}
CONFLUENCE_FIELDS: dict[str, Field] = {
    "url": Field("url"),
    "user": Field("login"),
    "token": Field("password"),
    "space": Field("extra.space"),
    "parent_id": Field("extra.parent_id"),
    "cloud": Field("extra.cloud", lambda value: value),
}


def optional_connection(conn_id: str) -> Any:
    """The connection, or None when it is not defined (the caller decides what that means)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def connection_url(connection: Any) -> str | None:
    """The server URL of a connection: its host as a full URL, or scheme://host:port (the
    scheme from extra.scheme, default http)."""
    host = (connection.host or "").rstrip("/")
    if not host:
        return None
    if "://" not in host:
        scheme = connection.extra_dejson.get("scheme", "http")
        host = f"{scheme}://{host}"
    if connection.port and host.count(":") < 2:
        scheme, rest = host.split("://", 1)
        name, _, path = rest.partition("/")
        host = f"{scheme}://{name}:{connection.port}" + (f"/{path}" if path else "")
    return host


def settings_of(connection: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """The settings a connection gives (None: no connection, nothing), empty fields left out;
    a password is masked in the logs from here on."""
    if connection is None:
        return {}
    settings = {}
    for name, field in fields.items():
        value = _read(connection, field.source)
        if value in (None, ""):
            continue
        if field.source == "password":
            from airflow.sdk.log import mask_secret

            mask_secret(value)
        try:
            settings[name] = field.convert(value)
        except (TypeError, ValueError):
            raise UserError(
                f"the connection {connection.conn_id}: {field.source} {value!r} is not a "
                f"{getattr(field.convert, '__name__', 'value')}"
            ) from None
    return settings


def _read(connection: Any, source: str) -> Any:
    if source == "url":
        return connection_url(connection)
    if source.startswith("extra."):
        return connection.extra_dejson.get(source.removeprefix("extra."))
    return getattr(connection, source)


def confluence_target() -> Any:
    """The page target of the connection whatif_confluence: host = base URL, login = user
    (Cloud: the account's e-mail; empty for a Data Center personal access token), password =
    API token or PAT, extra = {"space": KEY, "parent_id": ID, "cloud": bool}."""
    from whatif.confluence import ConfluenceTarget

    connection = optional_connection(CONFLUENCE_CONN_ID)
    if connection is None:
        raise UserError(
            f'publish_targets names "confluence" but the connection {CONFLUENCE_CONN_ID} is '
            "not defined (host = base URL, password = API token, extra.space = space key)"
        )
    settings = settings_of(connection, CONFLUENCE_FIELDS)
    if not {"url", "token", "space"} <= settings.keys():
        raise UserError(
            f"the connection {CONFLUENCE_CONN_ID} needs host (the base URL), password (the "
            "token) and extra.space (the space key)"
        )
    return ConfluenceTarget(
        url=settings["url"],
        space=settings["space"],
        parent_id=settings.get("parent_id"),
        user=settings.get("user"),
        token=settings["token"],
        cloud=settings.get("cloud"),
    )


def reports_conn_id(target: str) -> str | None:
    """whatif_reports for a remote target when that connection exists (else the usual AWS_*
    environment or instance credentials)."""
    from whatif.sources import is_remote

    if not is_remote(target) or optional_connection(REPORTS_CONN_ID) is None:
        return None
    return REPORTS_CONN_ID


def sql_fetch(conn_id: str) -> Any:
    """The engine's SQL reader on the database of a SQL connection."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook
    from whatif.sources import sqlalchemy_fetch

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not isinstance(hook, DbApiHook):
        raise UserError(f"the connection {conn_id!r} is not a SQL database")
    return sqlalchemy_fetch(hook.get_sqlalchemy_engine())


def import_source(kind: str) -> Any:
    """The source of one kind through its connection (IMPORT_CONN_IDS): host = the base URL
    (or extra.path, a file or folder), password = the token, else the kind's environment
    variable. PagerDuty and incident.io need no host (their public APIs)."""
    from whatif.importers import fetch

    conn_id = IMPORT_CONN_IDS[kind]
    connection = optional_connection(conn_id)
    settings = settings_of(connection, IMPORT_FIELDS)
    location = settings.get("path") or settings.get("url")
    if kind in fetch.TOPOLOGY_KINDS and not location:
        state = "is not defined" if connection is None else "has no host"
        raise UserError(
            f"the {kind} source needs the connection {conn_id}, which {state} (host = the "
            "base URL, password = the token; docs/sources.md)"
        )
    options = {"services_field": settings["services_field"]} if "services_field" in settings else {}
    source = fetch.with_environment_token(
        fetch.Source(kind, location, settings.get("token"), options)
    )
    if source.token:  # a token from the environment is masked in the task logs too
        from airflow.sdk.log import mask_secret

        mask_secret(source.token)
    return source

"""Read raw tables from where incident data lives: local files, any ObjectStoragePath URL
(file://, s3://...) and SQL databases.

A raw table is every cell as text ('' when empty) plus `_row`, the row's number in its source
(the header is row 1, as in a spreadsheet). Encodings, delimiters and formats are detected,
never guessed silently: anything that cannot be read is a one-line UserError naming the file.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from whatif.errors import UserError, shown

log = logging.getLogger(__name__)

ROW = "_row"
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
DELIMITERS = ",;\t|"
MAX_FIELD = 10_000_000  # bytes in one CSV field; far above any real incident description
# C0 control bytes other than tab, LF and CR: text never has them in any number (UTF-8
# multi-byte sequences never contain bytes below 0x80), binary files are full of them.
CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))


def is_url(location: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location))


def is_remote(location: str) -> bool:
    """An object-storage URL (a file:// URL is a local path)."""
    return is_url(location) and not location.startswith("file://")


def storage_path(url: str, conn_id: str | None = None) -> Any:
    """An ObjectStoragePath for a URL or a local path, through the Airflow connection
    `conn_id` when given (imported here: the engine must import without Airflow, and only
    object storage needs it)."""
    from airflow.sdk import ObjectStoragePath

    if not is_url(url):
        url = Path(url).expanduser().resolve().as_uri()
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def relative_name(path: Any, root: Any) -> str:
    """`path` below `root` as a relative POSIX name (ObjectStoragePath.relative_to gives a
    relative object-storage path, which fsspec refuses to use)."""
    return str(path)[len(str(root).rstrip("/")) :].lstrip("/")


# Object-storage failures that are the user's to fix (botocore, aiohttp and s3fs raise them;
# matched by name or by the server's error code, so that reading a local file never imports
# them): what to say, and what kind of thing to check (STORAGE_HINTS).
STORAGE_ERRORS = {
    "NoCredentialsError": ("no credentials for object storage", "credentials"),
    "PartialCredentialsError": ("incomplete credentials for object storage", "credentials"),
    "NoAuthTokenError": ("no credentials for object storage", "credentials"),
    "EndpointConnectionError": ("cannot reach the object-storage endpoint", "endpoint"),
    "ConnectTimeoutError": ("the object-storage endpoint does not answer", "endpoint"),
    "ClientConnectorError": ("cannot reach the object-storage endpoint", "endpoint"),
    "ConnectionRefusedError": ("cannot reach the object-storage endpoint", "endpoint"),
    "InvalidAccessKeyId": ("the object-storage credentials are not valid", "invalid"),
    "SignatureDoesNotMatch": ("the object-storage credentials are not valid", "invalid"),
    "ExpiredToken": ("the object-storage credentials have expired", "invalid"),
    "InvalidToken": ("the object-storage credentials are not valid", "invalid"),
    "NoSuchBucket": ("no such bucket", "bucket"),
    "AccessDenied": ("access denied", "permission"),
    "AllAccessDisabled": ("access denied", "permission"),
}
# What to check, from the environment (the CLI) or from an Airflow connection (the DAG).
STORAGE_HINTS = {
    "credentials": (
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
        "give the Airflow connection {conn} an access key id (login) and secret (password), "
        "or the workers' AWS_* variables",
    ),
    "invalid": (
        "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
        "check the login and password of the Airflow connection {conn}",
    ),
    "endpoint": (
        "check AWS_ENDPOINT_URL or --endpoint-url, and that the server is up",
        "check the endpoint_url of the Airflow connection {conn} and that the server is up",
    ),
    "bucket": ("check the bucket name in the URL",) * 2,
    # A refused HEAD request says only 403: wrong credentials, or ones without the right.
    "permission": (
        "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that they "
        "may {action}: the user's permissions, the bucket's policy",
        "check the credentials of the Airflow connection {conn}, and that they may {action}",
    ),
}


def storage_error(
    error: BaseException, location: str, conn_id: str | None, writing: bool = False
) -> UserError | None:
    """The UserError for an object-storage failure the user can fix (credentials, endpoint,
    bucket, permission), naming the URL and what to check; None for anything else (a bug, or
    a failure worth retrying). The error, its causes and contexts are searched for the most
    telling one: s3fs raises PermissionError from a ClientError that says why."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and all(seen is not other for other in chain):
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for seen in chain:
        code = (getattr(seen, "response", None) or {}).get("Error", {}).get("Code")
        known = STORAGE_ERRORS.get(type(seen).__name__) or STORAGE_ERRORS.get(str(code))
        if known:
            message, kind = known
            if kind == "endpoint":
                message += _endpoint_of(seen)
            return UserError(message, file=location, hint=_storage_hint(kind, conn_id, writing))
    if any(isinstance(seen, PermissionError) for seen in chain):
        hint = _storage_hint("permission", conn_id, writing)
        return UserError("access denied", file=location, hint=hint)
    return None


def _storage_hint(kind: str, conn_id: str | None, writing: bool) -> str:
    from_environment, from_connection = STORAGE_HINTS[kind]
    action = "write there" if writing else "read it"
    return (from_connection if conn_id else from_environment).format(conn=conn_id, action=action)


def _endpoint_of(error: BaseException) -> str:
    """' http://host:port' of the endpoint an error could not reach, when it says."""
    url = (getattr(error, "kwargs", None) or {}).get("endpoint_url")
    if url:
        parts = urllib.parse.urlsplit(str(url))
        return f" {parts.scheme}://{parts.netloc}" if parts.netloc else ""
    host, port = getattr(error, "host", None), getattr(error, "port", None)
    return f" {host}:{port}" if host and port else ""


def read_bytes(location: str, conn_id: str | None = None) -> bytes:
    """The bytes at a local path or an ObjectStoragePath URL (`conn_id` for its credentials)."""
    if is_remote(location):
        path = storage_path(location, conn_id)
        try:
            return path.read_bytes()
        except FileNotFoundError as error:  # no such key, or no such bucket
            raise storage_error(error, location, conn_id) or UserError(
                "not found in object storage",
                file=location,
                hint="check the URL and the connection",
            ) from None
        except Exception as error:
            mapped = storage_error(error, location, conn_id)
            if mapped is None:
                raise
            raise mapped from None
    path = Path(location.removeprefix("file://"))
    if not path.exists():
        raise UserError("file not found", file=location, hint="check the path")
    if path.is_dir():
        raise UserError("is a folder, not a file", file=location)
    try:
        return path.read_bytes()
    except OSError as error:  # no permission, a device, a disk error: the user's to fix
        raise UserError(
            f"cannot be read: {error.strerror or error}", file=location, hint="check the file"
        ) from None


def read_table(location: str, conn_id: str | None = None) -> pd.DataFrame:
    """A raw table from a CSV, Parquet or JSON Lines file (chosen by the name's suffix).

    `_row` is the row a spreadsheet shows for a CSV file (blank lines count, as they do
    there), the line number for JSON Lines, the position after a header row for Parquet."""
    data = read_bytes(location, conn_id)
    suffix = Path(location.split("?")[0]).suffix.lower()
    rows: np.ndarray | None = None
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(data, location)
    elif suffix in JSONL_SUFFIXES:
        frame, rows = _read_json_lines(data, location)
    else:
        frame, rows = _read_csv(data, location)
    if frame.empty:  # said here: later it would read as "no usable rows" in the other file
        raise UserError(
            "the file has a header but no data rows",
            file=location,
            hint="check that the export includes its rows",
        )
    return with_rows(frame, first=2, rows=rows, location=location)


def with_rows(
    frame: pd.DataFrame,
    first: int,
    rows: np.ndarray | None = None,
    location: str | None = None,
) -> pd.DataFrame:
    """Lower-case, trimmed column names; every cell as text; `_row` numbering from `first`,
    or the given `rows` when the source's rows are not consecutive (blank lines)."""
    frame = frame.copy(deep=False)
    frame.columns = [str(c).strip().lstrip("\ufeff").strip().lower() for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise UserError(
            "the header names this column twice",
            file=location,
            row=1,
            column=duplicated[0],
            hint="column names are compared ignoring case and spaces",
        )
    for column in frame.columns:
        frame[column] = _as_text(frame[column])
    frame[ROW] = np.arange(first, len(frame) + first) if rows is None else rows
    return frame


def _as_text(values: pd.Series) -> pd.Series:
    """A column as text, '' where missing. String columns (what the CSV reader gives) stay in
    their compact Arrow-backed form; only other types pass through Python objects."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.fillna("")
    return values.astype(object).where(values.notna(), "").astype(str)


def _read_parquet(data: bytes, location: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as error:  # pyarrow raises many types for a file that is not Parquet
        raise UserError(
            f"not a readable Parquet file: {_first_line(error)}", file=location
        ) from None
    for column in frame.columns:  # timestamps as ISO text, like every other source
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].map(lambda t: "" if pd.isna(t) else t.isoformat())
    return frame


def _read_json_lines(data: bytes, location: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The objects, one a line, and their line numbers (a JSON Lines file has no header: a
    row is named by its line, as in the errors below)."""
    text = decode(data, location)
    rows, numbers = [], []
    # Lines end at "\n" only: str.splitlines() would also break at U+2028 and friends, which
    # JSON allows unescaped inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            import json

            value = json.loads(line)
        except ValueError as error:
            raise UserError(
                f"not a JSON object: {error.args[0]}", file=location, row=number
            ) from None
        except RecursionError:  # [[[[... thousands deep: no incident export nests so
            raise UserError(
                "not a JSON object: nested too deeply", file=location, row=number
            ) from None
        if not isinstance(value, dict):
            raise UserError("each line must be a JSON object", file=location, row=number)
        rows.append(
            {
                k: "" if v is None else (v if isinstance(v, str) else _json_text(v))
                for k, v in value.items()
            }
        )
        numbers.append(number)
    if not rows:
        raise UserError("the file is empty", file=location)
    return pd.DataFrame(rows), np.array(numbers, dtype=np.int64)


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def decode(data: bytes, location: str) -> str:
    """Text from bytes: UTF-8 (with or without BOM) or UTF-16/32 with a BOM; otherwise
    Windows-1252 / Latin-1 with a warning. Binary content is refused: NUL or control bytes,
    which a single-byte decoding would otherwise turn into column names of garbage."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):  # before UTF-16's
        return _decode_unicode(data, "utf-32", location)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _decode_unicode(data, "utf-16", location)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    head = data[:65536]
    controls = len(head) - len(head.translate(None, CONTROL_BYTES))
    if b"\x00" in head or controls * 100 > len(head):
        raise UserError(
            "binary content, not a text file",
            file=location,
            hint="export the data as CSV, Parquet or JSON Lines",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        encoding = "cp1252"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            encoding, text = "latin-1", data.decode("latin-1")
        log.warning(
            "%s: not UTF-8; read as %s (save as UTF-8 to be sure of accents)", location, encoding
        )
        return text


def _decode_unicode(data: bytes, encoding: str, location: str) -> str:
    """Text in the encoding its byte-order mark names; a file cut short is a user error."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise UserError(
            f"not valid {encoding.upper()} text: {error.reason} at byte {error.start}",
            file=location,
            hint="save the file again, as UTF-8",
        ) from None


def first_line(text: str) -> str:
    """The text's first line, whatever ends it: LF, CRLF or a lone CR (old Mac exports)."""
    return re.match(r"[^\r\n]*", text).group()  # type: ignore[union-attr]  # never a copy of the rest


def sniff_delimiter(text: str) -> str:
    """`,` unless the header line clearly uses `;`, a tab or `|` instead."""
    header = first_line(text)
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    if counts[best] == 0:
        return ","
    # The sniffer reads lines at LF only: a sample of CR-only lines is one line to it.
    sample = re.sub(r"\r\n?", "\n", text[:65536])
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return best
    return sniffed if counts.get(sniffed) else best  # never one the header does not use


def _read_csv(data: bytes, location: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The table and each row's number in the file (header = row 1; blank lines count)."""
    text = decode(data, location)
    if not text or text.isspace():
        raise UserError("the file is empty", file=location)
    if not first_line(text).strip():
        raise UserError(
            "the first row is empty", file=location, row=1, hint="the header must be row 1"
        )
    delimiter = sniff_delimiter(text)
    csv.field_size_limit(MAX_FIELD)
    # Bytes, not a StringIO: that would hold the file as 4 bytes a character. ASCII text is
    # its own UTF-8: no second copy of the file.
    data = data if data.isascii() else text.encode("utf-8")
    try:
        frame = _csv_as_text(data, delimiter)
    except pd.errors.ParserError as error:
        raise _csv_error(_first_line(error), location) from None
    except pd.errors.EmptyDataError:
        raise UserError("the file is empty", file=location) from None
    rows = np.arange(2, len(frame) + 2)
    blank = _blank_lines(text, delimiter, frame)
    return frame.loc[~blank].reset_index(drop=True), rows[~blank]


def _csv_as_text(data: bytes, delimiter: str) -> pd.DataFrame:
    """Every cell as the file's text. pandas reads text columns into Arrow strings fast, but
    `dtype=str` on the whole file is ten times slower (3.6 s against 0.35 s for a million
    incidents), so only the columns it read as something else (numbers, booleans, mixed) are
    read again as text: "007" and "1.50" stay as written."""
    options = {
        "encoding": "utf-8",
        "keep_default_na": False,
        "sep": delimiter,
        "skipinitialspace": True,
        "engine": "c",
        # Blank lines are read (and dropped by the caller) so that every later row keeps the
        # number a spreadsheet shows, as pandas' own error messages do.
        "skip_blank_lines": False,
    }
    frame = pd.read_csv(io.BytesIO(data), **options)
    typed = [i for i, dtype in enumerate(frame.dtypes) if not _is_text(dtype)]
    if typed:
        again = pd.read_csv(io.BytesIO(data), usecols=typed, dtype=str, **options)
        for k, i in enumerate(typed):
            frame.isetitem(i, again.iloc[:, k])
    return frame


def _is_text(dtype: Any) -> bool:
    """A column of strings only (pandas' `str`), not one of numbers or mixed objects."""
    return isinstance(dtype, pd.StringDtype)


def _csv_error(message: str, location: str) -> UserError:
    """pandas' tokenizer message as a UserError on the right row: its "line N" is the
    1-based record (= the spreadsheet row), its "row N" the 0-based one."""
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if fields:
        expected, row, saw = (int(n) for n in fields.groups())
        return UserError(
            f"{saw} fields where the header has {expected}",
            file=location,
            row=row,
            hint="every row needs as many fields as the header; quote fields that contain "
            "the delimiter",
        )
    quote = re.search(r"EOF inside string starting at row (\d+)", message)
    if quote:
        return UserError(
            "a quoted field is never closed",
            file=location,
            row=int(quote.group(1)) + 1,
            hint="close the quote; a quote inside a quoted field is written as two quotes",
        )
    return UserError(f"not a well-formed CSV file: {message}", file=location)


def _records(text: str, delimiter: str) -> Iterator[list[str]]:
    """The file's records through the csv module, read as pandas reads them above."""
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)


def _blank_lines(text: str, delimiter: str, frame: pd.DataFrame) -> np.ndarray:
    """Which rows of `frame` are blank lines of the file (nothing, or only white space such
    as a tab): skipped, as by every CSV reader. A row of empty fields (`,,,`) is not one: it
    stays, for validation to report it. Only when some row is all empty is the file read
    again to tell the two apart."""
    if frame.empty or not len(frame.columns):
        return np.zeros(len(frame), dtype=bool)
    first = frame.iloc[:, 0]
    empty = ((frame.iloc[:, 1:] == "").all(axis=1) & (first.str.strip() == "")).to_numpy()
    if not empty.any():
        return empty
    try:
        records = _records(text, delimiter)
        blank = np.array([len(r) <= 1 and not "".join(r).strip() for r in records][1:])
    except csv.Error:
        return np.zeros(len(frame), dtype=bool)
    if len(blank) != len(frame):  # the two readers disagree: keep every row, to be safe
        return np.zeros(len(frame), dtype=bool)
    return empty & blank


def _first_line(error: Exception) -> str:
    """A library's error message for a one-line UserError: its first line, shortened (a
    Parquet reader may quote a page of binary)."""
    text = str(error).strip()
    return shown(text.splitlines()[0], 200) if text else type(error).__name__


Fetch = Callable[[str, dict[str, Any]], pd.DataFrame]


def read_sql(query_file: Path, fetch: Fetch, params: dict[str, Any], display: str) -> pd.DataFrame:
    """A raw table from a SQL query file, run with bind parameters (never string formatting)."""
    try:
        frame = fetch(query_file.read_text(encoding="utf-8"), params)
    except FileNotFoundError:
        raise UserError("SQL file not found", file=str(query_file)) from None
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].map(lambda t: "" if pd.isna(t) else t.isoformat())
    return with_rows(frame, first=1, location=display)


def sqlalchemy_fetch(url: Any) -> Fetch:
    """Run queries through SQLAlchemy on a database URL (the CLI's --incidents-sql-url) or an
    Engine (the DAG's, from its connection's hook)."""

    def fetch(sql: str, params: dict[str, Any]) -> pd.DataFrame:
        import sqlalchemy

        try:
            engine = sqlalchemy.create_engine(url) if isinstance(url, str) else url
            with engine.connect() as connection:
                return pd.read_sql_query(sqlalchemy.text(sql), connection, params=params)
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise UserError(
                f"the query failed: {_first_line(error.orig or error)}",
                file=redact(str(url)),
                hint="check the URL and that the tables exist "
                "(whatif load-sample --db-url creates them)",
            ) from None
        except ModuleNotFoundError as error:
            raise UserError(f"no database driver: {error.name}", file=redact(str(url))) from None

    return fetch


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)

"""Insert many rows of one table at once: ``COPY`` on PostgreSQL, executemany elsewhere.

Why: the accept path inserts every table once per group commit (tens to thousands of
rows). Through SQLAlchemy's executemany, psycopg sends one prepared INSERT per row in a
pipeline, and each row pays SQLAlchemy's parameter processing and psycopg's per-statement
work: ~24 µs of CPU per row here, on the writer thread that every acceptance waits for.
``COPY … FROM STDIN (FORMAT BINARY)`` streams the same rows, adapted by the same column
types, for about half of that (a third for message bodies: the text format would have to
hex-escape every byte of them, the binary one sends them as they are). It runs on the
caller's connection, inside the caller's transaction, so a commit still means every row
is stored, and a failure still rolls all of them back.

The fast path is taken only when it inserts exactly what ``table.insert()`` would: every
row names the same columns, and each column left out has either a server-side default
(which COPY applies too) or a constant Python default (filled in here). Anything else
(a callable default, a handful of rows, SQLite) goes through the ordinary executemany.
The binary format needs each column's exact type: it is read once per table and engine
from the catalogue (``pg_attribute``), so it is what the migrations made, not what
tables.py assumes.

Errors keep SQLAlchemy's types (``IntegrityError``, ``OperationalError``…), so callers and
``storage/availability.py`` classify them as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect

# Below this many rows COPY's extra round trip (COPY, data, end) costs more than it saves.
COPY_MIN_ROWS = 8

_Processor = Callable[[Any], Any] | None
_processors: dict[tuple[Table, str, str], _Processor] = {}
_type_oids: dict[tuple[str, str], dict[str, int]] = {}
_OIDS = text(
    "SELECT attname, atttypid FROM pg_attribute "
    "WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped"
)


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table`` in the caller's transaction (see the module doc)."""
    if not rows:
        return
    plan = _copy_plan(conn.dialect, table, rows)
    if plan is None:
        conn.execute(table.insert(), rows)
        return
    columns, constants = plan
    _copy(conn, table, rows, columns, constants)


def _copy_plan(
    dialect: Dialect, table: Table, rows: list[dict[str, Any]]
) -> tuple[list[str], dict[str, Any]] | None:
    """The columns to COPY and the constant defaults to add, or None for executemany."""
    if dialect.name != "postgresql" or len(rows) < COPY_MIN_ROWS:
        return None
    names = list(rows[0])
    wanted = set(names)
    if any(len(row) != len(names) or not wanted.issuperset(row) for row in rows):
        return None  # rows naming different columns: executemany handles each shape
    if not wanted.issubset(table.c.keys()):
        return None
    constants: dict[str, Any] = {}
    for column in table.columns:
        if column.key in wanted:
            continue
        default = column.default
        if default is None:
            continue  # a server default, a sequence (autoincrement) or NULL: COPY does it
        if not default.is_scalar:
            return None  # a Python callable or SQL expression: leave it to SQLAlchemy
        constants[column.key] = default.arg  # type: ignore[attr-defined]
    return names, constants


def _processor(dialect: Dialect, table: Table, key: str) -> _Processor:
    """The bind processor SQLAlchemy would apply to this column's values (cached)."""
    cache_key = (table, key, dialect.name)
    if cache_key not in _processors:
        column_type = table.c[key].type
        _processors[cache_key] = column_type.dialect_impl(dialect).bind_processor(dialect)
    return _processors[cache_key]


def _column_oids(conn: Connection, name: str, columns: list[str]) -> dict[str, int]:
    """Each column's PostgreSQL type OID, as the database has it (cached per engine, read
    again when a column is missing: a migration may have added it since)."""
    key = (conn.engine.url.render_as_string(), name)
    known = _type_oids.get(key)
    if known is None or not known.keys() >= set(columns):
        rows = conn.execute(_OIDS, {"table": name}).all()
        known = _type_oids[key] = {str(column): int(oid) for column, oid in rows}
    return known


def _copy(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    names: list[str],
    constants: dict[str, Any],
) -> None:
    dialect = conn.dialect
    processors = [_processor(dialect, table, key) for key in names]
    extra = list(constants)
    extra_values = [
        proc(constants[key]) if (proc := _processor(dialect, table, key)) else constants[key]
        for key in extra
    ]
    preparer = dialect.identifier_preparer
    columns = ", ".join(preparer.quote(table.c[key].name) for key in names + extra)
    name = preparer.format_table(table)
    wanted = [table.c[key].name for key in names + extra]
    oids = _column_oids(conn, name, wanted)
    types = [oids[column] for column in wanted]
    statement = f"COPY {name} ({columns}) FROM STDIN (FORMAT BINARY)"
    dbapi_error = dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                values = [
                    proc(row[key]) if proc is not None else row[key]
                    for key, proc in zip(names, processors, strict=True)
                ]
                copy.write_row(values + extra_values)
    except dbapi_error as error:
        # Keep SQLAlchemy's exception types, as conn.execute() would raise them.
        raise sa_exc.DBAPIError.instance(
            statement, None, error, dbapi_error, dialect=dialect
        ) from error
    finally:
        cursor.close()

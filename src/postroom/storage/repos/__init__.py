"""Queries, one module per aggregate. Each function takes a Connection inside a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement


def insert_id(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    """Insert one row and return its generated integer id."""
    return int(conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one())


def among(
    conn: Connection, column: ColumnElement[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as ``column = ANY(:array)``, one parameter.

    Why: the accept path screens a whole group commit's recipients (a 500-message batch:
    1,000 addresses) per query. An expanding IN renders one placeholder per value, which
    SQLAlchemy compiles and psycopg parses again on every call (~25 µs per message in
    bench/ingest.py --shape batch); an array is one placeholder and the same plan (an
    index scan on the column) for any number of values. Other databases keep IN.
    """
    if conn.dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return column == any_(array)
    return column.in_(values)

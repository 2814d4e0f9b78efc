"""Queries, one module per aggregate. Each function takes a Connection inside a transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection


def insert_id(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    """Insert one row and return its generated integer id."""
    return int(conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one())

"""Substring search ("contains", case-insensitive) served by an index on both backends.

The email logs filter on a part of the recipient, sender or subject, and the sandbox
search on a part of a captured message's subject or addresses. ``lower(col) LIKE
'%term%'`` cannot use a B-tree, so over a million deliveries it read every row (seconds).

* PostgreSQL: a pg_trgm GIN index on the searched columns (migration 0016). The planner
  uses it for the same ``LIKE``/``ILIKE`` the queries already write, so nothing changes
  on the query side (:func:`narrowing` answers None).
* SQLite: an FTS5 table with the trigram tokenizer per searched table, contentless
  (only the index, not a second copy of the text), whose rowid is the searched row's
  rowid, kept in step by triggers (:func:`install_sqlite`). :func:`narrowing` gives an
  extra condition ``rowid IN (FTS matches)``; the caller keeps its own ``LIKE`` too, so
  the result is exactly what it was without the index (the FTS match, case-folded by the
  tokenizer, only narrows the rows the ``LIKE`` then checks).

Two limits, both answered by falling back to the plain ``LIKE`` (what it did before):
a term shorter than three characters has no trigram, and a term matching more than
:data:`COMMON` rows is common enough that reading the table in the page's order finds a
page of matches sooner than collecting every match and sorting them.

An Alembic batch rebuild of a searched table on SQLite (copy, drop, rename) drops its
triggers and may renumber its rowids: a migration doing that must call
:func:`install_sqlite` for the table afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, literal_column, text
from sqlalchemy.engine import Connection

# Searched table → (its FTS5 table, the columns indexed).
SEARCHED: dict[str, tuple[str, tuple[str, ...]]] = {
    "deliveries": ("deliveries_search", ("recipient",)),
    "messages": ("messages_search", ("sender", "subject")),
    "sandbox_messages": (
        "sandbox_messages_search",
        ("subject", "from_email", "from_name", "to_email", "to_name"),
    ),
}
# PostgreSQL: one GIN index per searched table over what its queries compare: the
# email logs write lower(col) LIKE (repos/logs.py), the sandbox search col ILIKE
# (SQLAlchemy's icontains); a trigram index serves either, on the same expression.
PG_INDEXES: dict[str, str] = {table: f"ix_{table}_search_trgm" for table in SEARCHED}
PG_LOWERED = frozenset({"deliveries", "messages"})


def pg_index_ddl(table: str, trgm_schema: str) -> str:
    """CREATE INDEX for ``table``'s trigram index (migration 0016).

    ``trgm_schema`` is where pg_trgm lives (quoted as needed): the extension is one per
    database, possibly in a schema outside this one's search path (another Postroom's).
    """
    _, columns = SEARCHED[table]
    shown = (f"lower({c})" if table in PG_LOWERED else c for c in columns)
    expressions = ", ".join(f"{e} {trgm_schema}.gin_trgm_ops" for e in shown)
    return f"CREATE INDEX {PG_INDEXES[table]} ON {table} USING gin ({expressions})"


TRIGRAM = 3
# Above this many FTS matches a term is "common" (1 % of a million rows): the ordered
# scan meets a page of 50 within a few thousand rows, while collecting and sorting every
# match would cost more than the scan.
COMMON = 10_000
_NARROWING = "postroom_search_narrowing"  # the annotation marking a narrowing condition


def is_search_object(name: str | None) -> bool:
    """Schema objects of this module, which the table metadata does not declare (the FTS5
    tables with their shadow tables, the GIN indexes): schema comparisons skip them."""
    if name is None:
        return False
    fts = tuple(fts for fts, _ in SEARCHED.values())
    return name in PG_INDEXES.values() or any(name == f or name.startswith(f + "_") for f in fts)


def install_sqlite(conn: Connection, table: str) -> None:
    """(Re)create ``table``'s FTS5 table and triggers on SQLite and index every row."""
    fts, columns = SEARCHED[table]
    drop_sqlite(conn, table)
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE {fts} USING fts5({names}, content='', tokenize='trigram')"
    )
    insert = f"INSERT INTO {fts}(rowid, {names}) VALUES (new.rowid, {new});"
    # A contentless FTS5 table forgets a row through its 'delete' command, given the
    # values it indexed: the trigger has them.
    remove = f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.rowid, {old});"
    conn.exec_driver_sql(f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN {insert} END")
    conn.exec_driver_sql(f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN {remove} END")
    conn.exec_driver_sql(
        f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {names} ON {table} BEGIN {remove} {insert} END"
    )
    conn.exec_driver_sql(f"INSERT INTO {fts}(rowid, {names}) SELECT rowid, {names} FROM {table}")


def drop_sqlite(conn: Connection, table: str) -> None:
    fts, _ = SEARCHED[table]
    for suffix in ("ai", "ad", "au"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {fts}")


def _phrase(term: str) -> str:
    """``term`` as an FTS5 string: matched as a substring by the trigram tokenizer."""
    return '"' + term.replace('"', '""') + '"'


def narrowing(
    conn: Connection, table: str, columns: Sequence[str], terms: Sequence[str]
) -> ColumnElement[bool] | None:
    """An index-backed condition holding for every row of ``table`` where one of
    ``columns`` contains one of ``terms`` (case-insensitive), or None when no index
    helps (PostgreSQL, whose trigram index serves the LIKE itself; a short term; a
    common term). The caller keeps its own LIKE: this condition only narrows.

    On SQLite it is ``rowid IN (the matching rowids)``, at most :data:`COMMON` of them,
    read from the FTS table here. The caller should then let SQLite read those rows by
    rowid (:func:`is_narrowing` tells it) rather than walk an index in the page's order.
    """
    if conn.dialect.name != "sqlite" or not terms or any(len(t) < TRIGRAM for t in terms):
        return None
    fts, indexed = SEARCHED[table]
    unknown = set(columns) - set(indexed)
    if unknown:
        raise ValueError(f"{table} has no search index on {sorted(unknown)}")
    query = "{" + " ".join(columns) + "} : (" + " OR ".join(_phrase(t) for t in terms) + ")"
    found = text(f"SELECT rowid FROM {fts} WHERE {fts} MATCH :q LIMIT :n")
    rowids = [int(r[0]) for r in conn.execute(found, {"q": query, "n": COMMON + 1})]
    if len(rowids) > COMMON:
        return None
    narrowed: ColumnElement[bool] = literal_column(f"{table}.rowid").in_(rowids)
    return narrowed._annotate({_NARROWING: True})


def is_narrowing(clause: ColumnElement[bool]) -> bool:
    """Whether ``clause`` came from :func:`narrowing`."""
    return bool(clause._annotations.get(_NARROWING))

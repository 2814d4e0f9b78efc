"""Persistence adapters: the only package that speaks SQL.

``tables`` defines the schema (Alembic migrations in ``migrations/`` create it),
``db`` builds engines with the durability settings Postroom requires, ``writer`` is the
group-commit writer that every acceptance goes through, and ``repos/`` hold the queries,
one module per aggregate.
"""

"""The durable work queue: the ``deliveries`` table, leased by workers.

Semantics (documented once, here): a delivery is *due* when it is ``queued``, its
``next_attempt_at`` has come, and it holds no unexpired lease. ``lease_due`` marks due rows
with an owner and an expiry and returns them; the worker then *completes* each (a final
state), or *defers* it (queued again, later). A worker that dies completes nothing; its
leases expire and the rows are due again: leases, never deletions. A row leased
``max_leases`` times without completing is in a crash loop and is *shunted* by the
scheduler, where an operator can see and requeue it. On PostgreSQL several workers lease
concurrently with ``FOR UPDATE SKIP LOCKED``; SQLite serialises writers anyway.
"""

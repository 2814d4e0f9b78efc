"""The group-commit writer: one thread per process performs every write transaction.

Why: a commit with ``synchronous=FULL`` costs an fsync (131 µs here, milliseconds on
cloud disks), so committing each API request alone caps acceptance at a few thousand per
second; batched, the same disk takes tens of thousands of rows per second
(reference/perf-baselines.md §6). Callers submit a function of a connection; the writer
runs every function waiting in the queue inside one transaction, commits once, and only
then resolves each caller's future. An answer is therefore never sent before its data is
durable, and SQLite never sees two writers from one process.

Jobs submitted with :meth:`Writer.submit_many` name a *batch function* and an item;
consecutive jobs with the same batch function are handed over together, so that sixty
concurrent acceptances become one multi-row INSERT per table rather than sixty small ones
(each statement costs far more than each row).

If any function in a batch raises, the batch is rolled back and each job is re-run in a
transaction of its own, so one bad request cannot fail its neighbours. Functions must
therefore be safe to run twice after a rollback (they are plain inserts and updates).
When the batch failed because the database cannot be reached, every job gets that error
at once instead (storage/availability.py).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from postroom.storage.availability import is_unavailable

T = TypeVar("T")
log = logging.getLogger("postroom.storage")


BatchFn = Callable[[Connection, list[Any]], list[Any]]


@dataclass(slots=True)
class _Job:
    fn: Callable[[Connection], Any] | None
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    many: BatchFn | None = None
    item: Any = None

    def run_alone(self, conn: Connection) -> Any:
        if self.many is not None:
            return self.many(conn, [self.item])[0]
        assert self.fn is not None
        return self.fn(conn)


class Writer:
    """Serialises and batches write transactions on a dedicated thread."""

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        """Queue ``fn`` for the next group commit and wait until it is durable."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, future, loop))
        return await future

    async def submit_many(self, many: BatchFn, item: Any) -> Any:
        """Queue ``item`` for ``many``; it receives every item queued alongside, in order,
        and must return one result per item."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Job(None, future, loop, many, item))
        return await future

    def run_now(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in its own transaction on the calling thread (no event loop needed)."""
        with self._lock, self._begin() as conn:
            return fn(conn)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="postroom-writer", daemon=True)
            self._thread.start()

    def _begin(self) -> Any:
        conn = self._engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        return _Transaction(conn)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)
                    break
                batch.append(job)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        with self._lock:
            try:
                with self._begin() as conn:
                    results = _run_batch(conn, batch)
            except Exception as error:
                if is_unavailable(error):
                    # Nobody's fault, and replaying each job would try the database once
                    # per job: every caller gets the same temporary failure at once.
                    for job in batch:
                        _resolve(job, None, error)
                    return
                if len(batch) == 1:
                    self._settle_one(batch[0])
                    return
                # Somebody's function failed: isolate it by replaying one by one.
                for job in batch:
                    self._settle_one(job)
                return
        for job, result in zip(batch, results, strict=True):
            _resolve(job, result, None)

    def _settle_one(self, job: _Job) -> None:
        try:
            with self._begin() as conn:
                result = job.run_alone(conn)
        except Exception as exc:  # delivered to the awaiting caller
            _resolve(job, None, exc)
        else:
            _resolve(job, result, None)


class _Transaction:
    """``with`` block that commits on success and rolls back on error, then closes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        self.conn.begin()
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()


def _run_batch(conn: Connection, batch: list[_Job]) -> list[Any]:
    """Run every job; consecutive jobs sharing a batch function run as one call."""
    results: list[Any] = []
    start = 0
    while start < len(batch):
        job = batch[start]
        end = start + 1
        if job.many is not None:
            while end < len(batch) and batch[end].many is job.many:
                end += 1
            group = job.many(conn, [j.item for j in batch[start:end]])
            if len(group) != end - start:
                raise RuntimeError("a batch function must return one result per item")
            results += group
        else:
            results.append(job.run_alone(conn))
        start = end
    return results


def _resolve(job: _Job, result: Any, exc: BaseException | None) -> None:
    def settle() -> None:
        if job.future.cancelled():
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:
        # The caller's loop has closed (shutdown); the data is committed regardless.
        log.debug("writer result dropped: event loop closed")

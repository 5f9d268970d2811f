"""Batched, bounded, outage-proof writes of spans (and budget events) to ClickHouse.

``SpanWriter(backend, config)`` takes :class:`~otel_llm.storage.records.SpanRecord`
lists through :meth:`~BatchWriter.submit` and writes them from one background thread:

- **Batching.** One columnar insert when ``batch_rows`` (1,000) rows are buffered or the
  oldest buffered row is ``flush_interval`` (1 s) old, whichever comes first. Rows that
  arrive while an insert runs go into the next one, so under load batches grow (up to
  ``max_queue_rows``) and inserts stay at about one a second.
- **Bounded memory.** At most ``max_queue_rows`` (100,000) rows wait in memory. When
  full, ``submit`` *blocks* up to ``block_timeout`` (5 s) and then raises
  :class:`~otel_llm.storage.errors.QueueFull`; nothing already accepted is dropped. The
  collector answers that with OTLP 503 + Retry-After, so the sender keeps the spans.
  ``stats()["queue_full"]`` counts those refusals.
- **Outages.** When the store is unreachable
  (:class:`~otel_llm.storage.errors.BackendUnavailable`), batches go to the on-disk
  :class:`~otel_llm.storage.spool.Spool` (fsync'ed, ``spool_max_bytes`` at most) and
  are replayed oldest first when it answers again (retry with exponential backoff from
  ``retry_initial`` to ``retry_max``). While anything is spooled, new batches queue
  behind it, so rows reach the store in the order they were submitted. A restarted
  process replays what the previous one spooled.
- **No duplicates.** Every batch carries a random insert deduplication token, kept in
  its spool file name. ClickHouse drops a block whose token it has seen (window 1,000
  blocks per table, materialized views included), so a replay of a batch that had in
  fact been stored before a crash adds nothing.
- **Durability contract.** Rows are *acknowledged* when :meth:`~BatchWriter.flush`
  (or :meth:`~BatchWriter.close`) returns: they are then in the store or in the spool.
  Rows submitted but not yet flushed live in memory and die with a killed process,
  like the upstream exporter's sending queue.
- **Schema.** Before its first insert, and again after an outage, the writer applies
  the schema migrations (``ensure_schema=True``), so a store that comes back empty
  gets its tables before the replay.
- A batch the store refuses for good (:class:`~otel_llm.storage.errors.QueryError`)
  is kept in ``<spool>/rejected/`` with the reason, logged, and counted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import pyarrow as pa

from otel_llm.storage.backend import Backend
from otel_llm.storage.config import WriterConfig
from otel_llm.storage.errors import BackendUnavailable, QueryError, QueueFull, StorageError
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import BudgetEventRecord, SpanRecord, budget_events_to_arrow, spans_to_arrow
from otel_llm.storage.spool import Spool, SpooledBatch, SpoolFull

__all__ = ["BatchWriter", "BudgetEventWriter", "SpanWriter"]

log = logging.getLogger(__name__)

R = TypeVar("R")


class BatchWriter(Generic[R]):
    """Writes records of one kind to one table; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        table: str,
        encode: Callable[[Sequence[R]], pa.Table],
        config: WriterConfig | None = None,
        *,
        spool_dir: Path | None = None,
        ensure_schema: bool = True,
    ) -> None:
        self.backend = backend
        self._ensure_schema = ensure_schema
        self._schema_ready = not ensure_schema
        self.table = table
        self.config = config or backend.config.writer
        self.config.validate()
        self._encode = encode
        directory = spool_dir or backend.config.spool_path()
        self.spool = Spool(directory / table, self.config.spool_max_bytes)
        self._cond = threading.Condition()
        self._buf: list[R] = []
        self._oldest: float | None = None
        self._accepted = 0
        self._durable = 0
        self._flush_requested = False
        self._closing = False
        self._closed = False
        self._delay = self.config.retry_initial
        self._next_retry = 0.0
        self._down_logged = False
        self._full_logged = False
        self._stats = dict.fromkeys(
            (
                "rows_submitted",
                "rows_inserted",
                "rows_spooled",
                "rows_replayed",
                "rows_rejected",
                "rows_lost",
                "inserts",
                "queue_full",
            ),
            0,
        )
        self._thread = threading.Thread(target=self._run, name=f"otel-llm-writer-{table}", daemon=True)
        self._thread.start()

    # -- producer side --------------------------------------------------------------

    def submit(self, records: Sequence[R]) -> None:
        """Queue ``records``; blocks while the queue is full, then raises :class:`QueueFull`."""
        count = len(records)
        if not count:
            return
        limit = self.config.max_queue_rows
        with self._cond:
            if self._closing:
                raise StorageError("the writer is closed")
            deadline = time.monotonic() + self.config.block_timeout
            while self._buf and len(self._buf) + count > limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._stats["queue_full"] += 1
                    raise QueueFull(
                        f"{len(self._buf)} rows are waiting to be written to {self.table} "
                        f"(storage.writer.max_queue_rows={limit}); retry later"
                    )
                self._cond.wait(remaining)
            self._buf.extend(records)
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._accepted += count
            self._stats["rows_submitted"] += count
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted so far is in the store or the spool."""
        with self._cond:
            target = self._accepted
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._durable >= target, timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush, try once more to replay the spool, stop the thread. True if all rows are durable."""
        if self._closed:
            return True
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            done = self._durable >= self._accepted and not self._thread.is_alive()
            done = done and not self._stats["rows_lost"]
            if not done:
                log.error(
                    "closing the %s writer after %ss with %d rows not yet written or spooled",
                    self.table,
                    timeout,
                    self._accepted - self._durable,
                )
        self.spool.close()
        self._closed = True
        return done

    def stats(self) -> dict[str, int]:
        """Counters since start, plus the current queue and spool sizes."""
        with self._cond:
            out = dict(self._stats)
            out["queue_rows"] = len(self._buf)
        out["spool_batches"] = len(self.spool.pending())
        out["spool_bytes"] = self.spool.size_bytes
        return out

    def __enter__(self) -> BatchWriter[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------

    def _due_locked(self) -> bool:
        if self._closing or self._flush_requested or len(self._buf) >= self.config.batch_rows:
            return bool(self._buf) or self._closing or self._flush_requested
        return self._oldest is not None and time.monotonic() - self._oldest >= self.config.flush_interval

    def _run(self) -> None:
        self._drain_spool(force=True)
        while True:
            with self._cond:
                while not self._due_locked():
                    waits = [self.config.flush_interval]
                    if self._oldest is not None:
                        waits.append(self._oldest + self.config.flush_interval - time.monotonic())
                    if self.spool.size_bytes:
                        waits.append(self._next_retry - time.monotonic())
                    self._cond.wait(max(min(waits), 0.01))
                    if self.spool.size_bytes and time.monotonic() >= self._next_retry:
                        break
                batch = self._buf[: self.config.max_queue_rows]
                del self._buf[: len(batch)]
                self._oldest = time.monotonic() if self._buf else None
                if not self._buf:
                    self._flush_requested = False
                closing = self._closing and not self._buf
                self._cond.notify_all()  # room for blocked submitters
            if batch:
                self._write(batch)
            self._drain_spool(force=closing)
            with self._cond:
                self._durable += len(batch)
                self._cond.notify_all()
            if closing:
                return

    def _insert(self, table: str, data: pa.Table, token: str) -> None:
        if not self._schema_ready:
            apply_schema(self.backend)  # a store that comes back empty gets its tables first
            self._schema_ready = True
        self.backend.insert_arrow(table, data, dedup_token=token)

    def _write(self, batch: list[R]) -> None:
        try:
            data = self._encode(batch)
        except Exception:
            log.exception("cannot encode %d rows for %s; they are dropped", len(batch), self.table)
            self._stats["rows_rejected"] += len(batch)
            return
        token = f"otel-llm-{uuid.uuid4().hex}"
        if not self.spool.size_bytes and time.monotonic() >= self._next_retry:
            try:
                self._insert(self.table, data, token)
            except BackendUnavailable as exc:
                self._went_down(exc)
            except QueryError as exc:
                spooled = self._spool(token, data)
                if spooled is not None:
                    self._reject(spooled, str(exc))
                return
            else:
                self._stats["rows_inserted"] += data.num_rows
                self._stats["inserts"] += 1
                return
        if self._spool(token, data) is not None:
            self._stats["rows_spooled"] += data.num_rows

    def _spool(self, token: str, data: pa.Table) -> SpooledBatch | None:
        """Spool a batch; while the spool is full, wait for the store (the queue backs up)."""
        while True:
            try:
                spooled = self.spool.append(self.table, token, data)
                self._full_logged = False
                return spooled
            except SpoolFull as exc:
                if self._closing:
                    log.error("%s; closing, so %d unflushed rows are lost", exc, data.num_rows)
                    self._stats["rows_lost"] += data.num_rows
                    return None
                if not self._full_logged:
                    log.error("%s; waiting for the store to come back", exc)
                    self._full_logged = True
                time.sleep(self._delay)
                self._drain_spool(force=True)

    def _reject(self, batch: SpooledBatch, reason: str) -> None:
        rows = batch.load().num_rows
        target = self.spool.reject(batch, reason)
        self._stats["rows_rejected"] += rows
        log.error(
            "%s refused %d rows for %s (kept in %s): %s",
            self.backend.description,
            rows,
            self.table,
            target,
            reason,
        )

    def _went_down(self, exc: BackendUnavailable) -> None:
        self._schema_ready = self._schema_ready and not self._ensure_schema
        if not self._down_logged:
            log.warning("%s; spooling to %s until it is back", exc, self.spool.directory)
            self._down_logged = True
        self._next_retry = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.config.retry_max)

    def _drain_spool(self, *, force: bool = False) -> None:
        if not self.spool.size_bytes or (not force and time.monotonic() < self._next_retry):
            return
        replayed = 0
        for batch in self.spool.pending():
            try:
                data = batch.load()
            except (OSError, pa.ArrowInvalid) as exc:
                self._reject(batch, f"unreadable spool file: {exc}")
                continue
            try:
                self._insert(batch.table, data, batch.token)
            except BackendUnavailable as exc:
                self._went_down(exc)
                return
            except QueryError as exc:
                self._reject(batch, str(exc))
                continue
            self.spool.remove(batch)
            replayed += data.num_rows
            self._stats["rows_replayed"] += data.num_rows
            self._stats["inserts"] += 1
        if replayed:
            log.info("replayed %d spooled rows into %s", replayed, self.backend.description)
        self._delay = self.config.retry_initial
        self._next_retry = 0.0
        self._down_logged = False


class SpanWriter(BatchWriter[SpanRecord]):
    """Writes :class:`SpanRecord` rows to ``otel_traces`` (the typed tables follow by MV)."""

    def __init__(self, backend: Backend, config: WriterConfig | None = None, **kwargs: Any) -> None:
        super().__init__(backend, "otel_traces", spans_to_arrow, config, **kwargs)


class BudgetEventWriter(BatchWriter[BudgetEventRecord]):
    """Writes :class:`BudgetEventRecord` rows to ``budget_events``."""

    def __init__(self, backend: Backend, config: WriterConfig | None = None, **kwargs: Any) -> None:
        super().__init__(backend, "budget_events", budget_events_to_arrow, config, **kwargs)

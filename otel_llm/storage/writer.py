"""Batched, bounded, outage-proof writes of spans (and budget events) to ClickHouse.

``SpanWriter(backend, config)`` takes :class:`~otel_llm.storage.records.SpanRecord`
lists through :meth:`~BatchWriter.submit` and writes them from two background threads,
one after the other in a pipeline: the *encoder* turns buffered rows into Arrow columns
while the *store* thread inserts what was encoded before (the insert runs inside
ClickHouse with Python's GIL released, so encoding and inserting use two cores instead
of taking turns). Encoded chunks pass from one to the other in order, through a list.

- **Batching.** Rows are encoded in a chunk when ``batch_rows`` (1,000) rows are
  buffered or the oldest buffered row is ``flush_interval`` (1 s) old, whichever comes
  first; every chunk encoded while an insert runs goes into the next insert, as one
  batch. So under load batches grow (up to ``max_queue_rows``) and inserts stay at
  about one a second.
- **Bounded memory.** At most ``max_queue_rows`` (100,000) rows wait in memory:
  buffered, being encoded, or encoded and waiting for the next insert (the batch inside
  the running insert or spool write is not counted). When
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
- **Schema.** When it starts (and, if the store was down then, before its first
  insert), and again after an outage, the writer applies the schema migrations
  (``ensure_schema=True``), so a store that comes back empty gets its tables before
  the replay.
- A batch the store refuses for good (:class:`~otel_llm.storage.errors.QueryError`)
  is kept in ``<spool>/rejected/`` with the reason, logged, and counted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

# Rows encoded at a time at most: small enough that the first insert of a burst starts
# soon (the store thread waits for the first chunk), large enough that the encoder's
# per-call cost does not show.
_CHUNK_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class _Encoded:
    """Rows on their way from the encoder to the store; ``data`` is None if they could not be encoded."""

    rows: int
    data: pa.Table | None


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
        on_insert: Callable[[int, float], None] | None = None,
    ) -> None:
        self.backend = backend
        self._ensure_schema = ensure_schema
        self._on_insert = on_insert
        """Called with (rows, seconds) after each insert that succeeded (self-metrics)."""
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
        # Encoded chunks waiting for the store thread, oldest first, and the rows taken
        # from _buf that the store thread has not taken yet (being encoded, or in _ready):
        # they count as queued.
        self._ready: list[_Encoded] = []
        self._staged = 0
        self._reserved = 0
        """Room held by :meth:`reserve` for rows not submitted yet."""
        self._encoder_done = False
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
        name = f"otel-llm-writer-{table}"
        self._encoder = threading.Thread(target=self._encode_loop, name=f"{name}-encoder", daemon=True)
        self._thread = threading.Thread(target=self._store_loop, name=name, daemon=True)
        self._encoder.start()
        self._thread.start()

    # -- producer side --------------------------------------------------------------

    def submit(self, records: Sequence[R], *, reserved: int = 0) -> None:
        """Queue ``records``; blocks while the queue is full, then raises :class:`QueueFull`.
        ``reserved``: room held by :meth:`reserve` for this call (given back either way);
        ``records`` no more than that never wait."""
        count = len(records)
        limit = self.config.max_queue_rows
        with self._cond:
            self._reserved -= reserved
            if not count:
                self._cond.notify_all()
                return
            if self._closing:
                raise StorageError("the writer is closed")
            deadline = time.monotonic() + self.config.block_timeout
            while count > reserved and self._taken_locked() and self._taken_locked() + count > limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._stats["queue_full"] += 1
                    raise QueueFull(
                        f"{self._queued_locked()} rows are waiting to be written to {self.table} "
                        f"(storage.writer.max_queue_rows={limit}); retry later"
                    )
                self._cond.wait(remaining)
                if self._closing:  # closed while this call waited: its rows would be lost
                    raise StorageError("the writer is closed")
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
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._encoder, self._thread):
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
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

    def has_room(self, count: int) -> bool:
        """Whether ``count`` more rows fit in the queue now (``submit`` would not block):
        lets a receiver shed load *before* it acts on a request."""
        with self._cond:
            taken = self._taken_locked()
            return not taken or taken + count <= self.config.max_queue_rows

    def reserve(self, count: int) -> bool:
        """Hold room for ``count`` rows, or say False at once when there is none: a
        receiver reserves before it acts on a request, so the rows it then submits
        (``submit(rows, reserved=count)``) are never refused after the request took
        effect. Room not used is given back by that ``submit`` (an empty one is fine)."""
        with self._cond:
            taken = self._taken_locked()
            if self._closing or (taken and taken + count > self.config.max_queue_rows):
                return False
            self._reserved += count
            return True

    def stats(self) -> dict[str, int]:
        """Counters since start, plus the current queue and spool sizes."""
        with self._cond:
            out = dict(self._stats)
            out["queue_rows"] = self._queued_locked()
        out["spool_batches"] = len(self.spool.pending())
        out["spool_bytes"] = self.spool.size_bytes
        return out

    def __enter__(self) -> BatchWriter[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the encoder thread -----------------------------------------------------------

    def _queued_locked(self) -> int:
        return len(self._buf) + self._staged

    def _taken_locked(self) -> int:
        return len(self._buf) + self._staged + self._reserved

    def _due_locked(self) -> bool:
        if self._closing or self._flush_requested or len(self._buf) >= self.config.batch_rows:
            return bool(self._buf) or self._closing or self._flush_requested
        return self._oldest is not None and time.monotonic() - self._oldest >= self.config.flush_interval

    def _encode_loop(self) -> None:
        while True:
            with self._cond:
                while not self._due_locked():
                    wait = self.config.flush_interval
                    if self._oldest is not None:
                        wait = min(wait, self._oldest + self.config.flush_interval - time.monotonic())
                    self._cond.wait(max(wait, 0.01))
                chunk = self._buf[: max(self.config.batch_rows, _CHUNK_ROWS)]
                del self._buf[: len(chunk)]
                self._staged += len(chunk)
                if not self._buf:
                    self._oldest = None  # rows left behind are as old as before: still due
                if not self._buf:
                    self._flush_requested = False
                closing = self._closing and not self._buf
            encoded = self._encode_chunk(chunk)
            with self._cond:
                self._ready.append(encoded)
                self._encoder_done = closing
                self._cond.notify_all()
            if closing:
                return

    def _encode_chunk(self, chunk: list[R]) -> _Encoded:
        if not chunk:
            return _Encoded(0, None)
        try:
            return _Encoded(len(chunk), self._encode(chunk))
        except Exception:
            log.exception("cannot encode %d rows for %s; they are dropped", len(chunk), self.table)
            return _Encoded(len(chunk), None)

    # -- the store thread -------------------------------------------------------------

    def _store_loop(self) -> None:
        try:
            self._prepare_schema()
            self._drain_spool(force=True)
        except Exception:
            log.exception("replaying the %s spool at start failed; retrying later", self.table)
            self._next_retry = time.monotonic() + self._delay
        while True:
            with self._cond:
                while not self._ready:
                    waits = [self.config.flush_interval]
                    if self.spool.size_bytes:
                        if time.monotonic() >= self._next_retry:
                            break
                        waits.append(self._next_retry - time.monotonic())
                    self._cond.wait(max(min(waits), 0.01))
                chunks, self._ready = self._ready, []
                closing = self._encoder_done  # set with the encoder's last chunk, taken just now
                rows = sum(c.rows for c in chunks)
                self._staged -= rows
                self._cond.notify_all()  # room for blocked submitters
            if chunks:
                try:
                    self._write(chunks)
                except Exception:
                    # Not an outage, not a refusal: a bug or the machine. The rows cannot be
                    # kept; the thread must live on, or flush() would wait forever.
                    lost = sum(c.rows for c in chunks if c.data is not None)
                    log.exception("writing %d rows to %s failed; they are lost", lost, self.table)
                    self._stats["rows_lost"] += lost
            try:
                self._drain_spool(force=closing)
            except Exception:
                log.exception("replaying the %s spool failed; retrying later", self.table)
                self._next_retry = time.monotonic() + self._delay
            with self._cond:
                self._durable += rows
                self._cond.notify_all()
            if closing:
                return

    def _prepare_schema(self) -> None:
        """Apply the schema as the thread starts, while the first rows are still coming in."""
        if self._schema_ready:
            return
        try:
            apply_schema(self.backend)
            self._schema_ready = True
        except BackendUnavailable as exc:
            self._went_down(exc)
        except QueryError as exc:  # the first insert applies it again, and reports what fails
            log.warning("cannot apply the schema to %s yet: %s", self.backend.description, exc)

    def _insert(self, table: str, data: pa.Table, token: str) -> None:
        if not self._schema_ready:
            apply_schema(self.backend)  # a store that comes back empty gets its tables first
            self._schema_ready = True
        started = time.perf_counter()
        self.backend.insert_arrow(table, data, dedup_token=token)
        if self._on_insert is not None:
            self._on_insert(data.num_rows, time.perf_counter() - started)

    def _write(self, chunks: list[_Encoded]) -> None:
        """Insert the chunks encoded since the last insert as one batch (or spool it)."""
        tables = [c.data for c in chunks if c.data is not None]
        self._stats["rows_rejected"] += sum(c.rows for c in chunks if c.data is None)  # logged when encoded
        if not tables:
            return
        data = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
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
            except (SpoolFull, OSError) as exc:  # full, or the disk refuses (ENOSPC, EACCES)
                if self._closing:
                    log.error("%s; closing, so %d unflushed rows are lost", exc, data.num_rows)
                    self._stats["rows_lost"] += data.num_rows
                    return None
                if not self._full_logged:
                    log.error("cannot spool: %s; waiting for the store to come back", exc)
                    self._full_logged = True
                time.sleep(self._delay)
                self._drain_spool(force=True)

    def _reject(self, batch: SpooledBatch, reason: str, rows: int | None = None) -> None:
        if rows is None:
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
                self._reject(batch, f"unreadable spool file: {exc}", rows=0)  # its rows cannot be counted
                continue
            try:
                self._insert(batch.table, data, batch.token)
            except BackendUnavailable as exc:
                self._went_down(exc)
                return
            except QueryError as exc:
                self._reject(batch, str(exc))
                continue
            # Counted before the file goes, so a reader who sees the spool empty sees the rows replayed.
            replayed += data.num_rows
            self._stats["rows_replayed"] += data.num_rows
            self._stats["inserts"] += 1
            self.spool.remove(batch)
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

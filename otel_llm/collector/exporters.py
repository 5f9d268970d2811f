"""Where accepted data goes: ClickHouse (the storage writers, as built: batching, spool
on outage, replay, dedup) and, optionally, a downstream OTLP/HTTP collector.

The forward sends each request body on as protobuf, the way it arrived (a JSON request
is re-encoded), from one background thread with a bounded queue: a slow or dead
downstream never slows ingest; when the queue is full the oldest request is dropped
and counted. The ``otel_llm.cost.*`` attributes the budget processor adds are in
storage, not in what is forwarded.
"""

from __future__ import annotations

import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from otel_llm.collector.config import ForwardConfig
from otel_llm.storage import Backend, BudgetEventWriter, SpanWriter, StorageConfig, apply_schema, open_backend
from otel_llm.storage.errors import StorageError

__all__ = ["OtlpForwarder", "StorageExporter"]

log = logging.getLogger(__name__)


@dataclass
class StorageExporter:
    """The span and budget-event writers on one backend."""

    backend: Backend
    spans: SpanWriter
    events: BudgetEventWriter

    @classmethod
    def open(
        cls, config: StorageConfig, on_insert: Callable[[int, float], None] | None = None
    ) -> StorageExporter:
        """Open the backend and both writers; ``on_insert(rows, seconds)`` after each span insert."""
        backend = open_backend(config)
        try:
            apply_schema(backend)
        except StorageError as exc:  # the writers apply it once the store answers
            log.warning("storage not ready yet (%s); spans are spooled until it is", exc)
        return cls(backend, SpanWriter(backend, on_insert=on_insert), BudgetEventWriter(backend))

    def close(self) -> None:
        self.spans.close()
        self.events.close()
        self.backend.close()


class OtlpForwarder:
    """Sends OTLP/HTTP protobuf bodies to ``config.endpoint``."""

    def __init__(self, config: ForwardConfig) -> None:
        assert config.endpoint
        self.config = config
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(config.queue_size)
        self.stats = {"forwarded": 0, "failed": 0, "dropped": 0}
        self._failed_logged = False
        self._thread = threading.Thread(target=self._run, name="otel-llm-forward", daemon=True)
        self._thread.start()

    def queued(self) -> int:
        return self._queue.qsize()

    def send(self, signal: str, body: bytes) -> None:
        if signal not in self.config.signals:
            return
        while True:
            try:
                self._queue.put_nowait((signal, body))
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.stats["dropped"] += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        base = (self.config.endpoint or "").rstrip("/")
        while True:
            item = self._queue.get()
            if item is None:
                return
            signal, body = item
            request = urllib.request.Request(
                f"{base}/v1/{signal}",
                data=body,
                method="POST",
                headers={"Content-Type": "application/x-protobuf", **self.config.headers},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    response.read()
                self.stats["forwarded"] += 1
                self._failed_logged = False
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.stats["failed"] += 1
                if not self._failed_logged:
                    log.warning("cannot forward %s to %s: %s", signal, base, exc)
                    self._failed_logged = True

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

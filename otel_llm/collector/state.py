"""Restart recovery: per-task and per-window spend, and kill decisions, survive a
restart, ``kill -9`` included.

The processor hands every change to :meth:`StateStore.record` before the request that
caused it is answered: one JSON line in ``journal.jsonl`` holding the full new state of
each task and window it touched, and the new kill decisions. The line is written to the
operating system at once (no fsync: a killed process loses nothing the kernel has; a
power cut may lose the last moments). Every ``snapshot_interval`` the whole state goes to
``snapshot.json`` (written beside and renamed over, so it is never half written) and the
journal starts again. Recovery loads the snapshot and replays the journal over it;
entries are whole states, so the last one of a task wins. A torn last line (the process
died mid-write) is skipped.

Recovery does not depend on storage: a ClickHouse that is down or behind does not
shrink anyone's spend after a restart.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from otel_llm.collector.decisions import Decision
from otel_llm.collector.processor import BudgetProcessor

__all__ = ["StateStore"]

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
SNAPSHOT = "snapshot.json"


class StateStore:
    def __init__(self, directory: str | os.PathLike[str], snapshot_interval: float) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.snapshot_interval = snapshot_interval
        self._journal_path = self.directory / JOURNAL
        self._snapshot_path = self.directory / SNAPSHOT
        self._journal = open(self._journal_path, "a", encoding="utf-8")  # noqa: SIM115 - held open
        self._lock = threading.Lock()
        self._written = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recover(self, processor: BudgetProcessor) -> dict[str, int]:
        """Load the snapshot and replay the journal into ``processor``."""
        replayed = torn = 0
        with processor.lock:
            if self._snapshot_path.exists():
                data = json.loads(self._snapshot_path.read_text(encoding="utf-8"))
                processor.apply(data["retired"], [], [])
                processor.apply(data["active"], data["windows"], data["decisions"])
                processor.kill_log.restore(data.get("cursor", 0), [])
            if self._journal_path.exists():
                with open(self._journal_path, encoding="utf-8") as journal:
                    for line in journal:
                        try:
                            entry = json.loads(line)
                        except ValueError:
                            torn += 1
                            continue
                        processor.apply(entry.get("t", []), entry.get("w", []), entry.get("k", []))
                        replayed += 1
        if torn:
            log.warning("state journal %s: skipped %d torn line(s)", self._journal_path, torn)
        counts = processor.counts()
        if replayed or counts["active_tasks"] or counts["retired_tasks"]:
            log.info(
                "recovered %d active and %d finished tasks, %d windows, %d kill decisions from %s",
                counts["active_tasks"],
                counts["retired_tasks"],
                counts["windows"],
                counts["decisions"],
                self.directory,
            )
        return {"journal_entries": replayed, "torn": torn, **counts}

    def record(self, tasks: list[Any], windows: list[Any], decisions: list[Decision]) -> None:
        """Append one change set (called with the processor's lock held)."""
        entry: dict[str, Any] = {}
        if tasks:
            entry["t"] = tasks
        if windows:
            entry["w"] = windows
        if decisions:
            entry["k"] = [d.to_json() for d in decisions]
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            self._journal.write(line)
            self._journal.flush()
            self._written += len(line)

    def snapshot(self, processor: BudgetProcessor) -> None:
        """Write the whole state and start a new journal."""
        with processor.lock:
            data = processor.dump()
            with self._lock:
                if not self._written and self._snapshot_path.exists():
                    return
                tmp = self._snapshot_path.with_suffix(".tmp")
                with open(tmp, "w", encoding="utf-8") as out:
                    json.dump(data, out, separators=(",", ":"))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self._snapshot_path)
                self._journal.close()
                self._journal = open(self._journal_path, "w", encoding="utf-8")  # noqa: SIM115
                self._written = 0

    def start(self, processor: BudgetProcessor) -> None:
        """Snapshot every ``snapshot_interval`` seconds, and finish idle tasks."""

        def loop() -> None:
            while not self._stop.wait(self.snapshot_interval):
                try:
                    processor.sweep()
                    self.snapshot(processor)
                except Exception:
                    log.exception("cannot write the collector state snapshot to %s", self.directory)

        self._thread = threading.Thread(target=loop, name="otel-llm-collector-state", daemon=True)
        self._thread.start()

    def close(self, processor: BudgetProcessor | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if processor is not None:
            try:
                self.snapshot(processor)
            except Exception:
                log.exception("cannot write the final collector state snapshot")
        with self._lock:
            self._journal.close()

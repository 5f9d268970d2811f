"""Kill decisions and the log ``GET /v1/kills`` serves from.

A :class:`Decision` is final: the task's next model call is to be refused. The
:class:`KillLog` numbers decisions with a cursor that only grows (it survives restarts
through :mod:`otel_llm.collector.state`), keeps the newest ``size`` of them, and wakes
long-polling readers when a new one arrives.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Decision", "KillLog"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One kill: which task, which limit, how much of it was spent, and why."""

    cursor: int
    task_id: str
    task_name: str
    service: str
    limit: str
    """``max_usd`` ... or ``manual`` (a person), ``window`` limits are ``max_usd`` too."""
    spent: float
    limit_value: float
    policy: str
    reason: str
    """One sentence for the agent's ``BudgetExceeded`` and for people."""
    at: float
    """Unix seconds."""
    group: str = ""
    """``tenant=acme`` for a window budget's kill."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        """From :meth:`to_json`; keys this version does not know (state written by a
        newer one) are ignored rather than failing the restart."""
        return cls(**{key: value for key, value in data.items() if key in _DECISION_FIELDS})


_DECISION_FIELDS = frozenset(f.name for f in fields(Decision))


class KillLog:
    """The newest ``size`` decisions, in cursor order, and their long-poll readers."""

    def __init__(self, size: int) -> None:
        self._items: deque[Decision] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._cursor = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def cursor(self) -> int:
        return self._cursor

    def next_cursor(self) -> int:
        """Reserve the next cursor (called under the processor's lock)."""
        with self._lock:
            self._cursor += 1
            return self._cursor

    def restore(self, cursor: int, decisions: list[Decision]) -> None:
        with self._lock:
            self._cursor = max(self._cursor, cursor)
            for decision in sorted(decisions, key=lambda d: d.cursor):
                self._items.append(decision)

    def add(self, decision: Decision) -> None:
        with self._lock:
            self._items.append(decision)
            self._cursor = max(self._cursor, decision.cursor)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def after(self, cursor: int, limit: int) -> list[Decision]:
        with self._lock:
            if not self._items or self._items[-1].cursor <= cursor:
                return []
            return [d for d in self._items if d.cursor > cursor][:limit]

    def recent(self) -> list[Decision]:
        with self._lock:
            return list(self._items)

    def listen(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    async def wait_after(self, cursor: int, limit: int, wait: float) -> list[Decision]:
        """Decisions after ``cursor``; waits up to ``wait`` seconds for one to come."""
        found = self.after(cursor, limit)
        if found or wait <= 0:
            return found
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(woken.set)

        with self._lock:
            self._listeners.append(wake)
        try:
            found = self.after(cursor, limit)  # one may have landed while registering
            if found:
                return found
            try:
                await asyncio.wait_for(woken.wait(), wait)
            except TimeoutError:
                return []
            return self.after(cursor, limit)
        finally:
            with self._lock:
                self._listeners.remove(wake)

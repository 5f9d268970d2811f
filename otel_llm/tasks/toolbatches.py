"""Tool batches: the tools a task starts after model call *n* and before call *n + 1*
are one batch (the model asked for them together, so they are independent). A batch is
*sequential* when it has two or more tools and no two of them overlapped in time; run in
parallel, it would have taken as long as its longest tool. Tool calls are counted toward
every enclosing task; batches belong to the innermost one.

:func:`tally` is the arithmetic of one batch; :class:`ToolBatches` is the bookkeeping of
one task (the open batch, batches closed while some tools still ran, the totals). Neither
reads a clock or takes a lock: the task passes the time and holds its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otel_llm import attributes as attrs

__all__ = ["Batch", "BatchTally", "ToolBatches", "ToolRecord", "tally"]


class ToolRecord:
    """One tool call: its name, start and end times, and the batch it belongs to."""

    __slots__ = ("batch", "end", "name", "start")

    def __init__(self, name: str, start: float, batch: Batch) -> None:
        self.name = name
        self.start = start
        self.end: float | None = None
        self.batch = batch


class Batch:
    """The tools started after one model call (``iteration``)."""

    __slots__ = ("closed", "iteration", "records")

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration
        self.records: list[ToolRecord] = []
        self.closed = False
        """A model call came after it: it takes no more tools."""

    @property
    def done(self) -> bool:
        return self.closed and all(r.end is not None for r in self.records)


@dataclass(frozen=True, slots=True)
class BatchTally:
    """What one finished batch adds up to."""

    iteration: int
    tools: tuple[str, ...]
    duration_s: float
    """Sum of the tools' durations."""
    wall_s: float
    """First start to last end."""
    sequential: bool
    saveable_s: float
    """Sum minus the longest tool, when sequential; else 0."""

    @property
    def parallelism(self) -> float:
        return self.duration_s / self.wall_s if self.wall_s > 0 else 1.0

    def event_attributes(self) -> dict[str, Any]:
        """The attributes of the task span's ``otel_llm.tool.batch`` event."""
        return {
            attrs.TOOL_BATCH_ITERATION: self.iteration,
            attrs.TOOL_BATCH_SIZE: len(self.tools),
            attrs.TOOL_BATCH_TOOLS: list(self.tools),
            attrs.TOOL_BATCH_DURATION_S: self.duration_s,
            attrs.TOOL_BATCH_WALL_S: self.wall_s,
            attrs.TOOL_BATCH_PARALLELISM: self.parallelism,
            attrs.TOOL_BATCH_SEQUENTIAL: self.sequential,
            attrs.TOOL_BATCH_SAVEABLE_S: self.saveable_s,
        }


def tally(batch: Batch) -> BatchTally | None:
    """The tally of a batch whose tools all ended (None for an empty one). A tool with
    no end counts as zero long."""
    records = batch.records
    if not records:
        return None
    durations = [max((r.end or r.start) - r.start, 0.0) for r in records]
    total = sum(durations)
    wall = max((r.end or r.start) for r in records) - min(r.start for r in records)
    ordered = sorted(records, key=lambda r: r.start)
    sequential = len(records) >= 2
    latest_end = ordered[0].end or ordered[0].start
    for record in ordered[1:]:
        if record.start < latest_end:
            sequential = False
            break
        latest_end = max(latest_end, record.end or record.start)
    saveable = total - max(durations) if sequential else 0.0
    return BatchTally(batch.iteration, tuple(r.name for r in records), total, wall, sequential, saveable)


class ToolBatches:
    """One task's batches and their totals."""

    __slots__ = ("_open", "_waiting", "batch_wall_s", "batches", "saveable_s", "sequential", "tool_time_s")

    def __init__(self) -> None:
        self._open: Batch | None = None
        """The batch that takes new tools (those started since the last model call)."""
        self._waiting: list[Batch] = []
        """Batches a model call closed while some of their tools still ran."""
        self.batches = 0
        self.sequential = 0
        self.saveable_s = 0.0
        self.tool_time_s = 0.0
        self.batch_wall_s = 0.0

    @property
    def parallelism(self) -> float:
        """Sum of tool durations over sum of batch walls (1 with no batches)."""
        return self.tool_time_s / self.batch_wall_s if self.batch_wall_s > 0 else 1.0

    @property
    def idle(self) -> bool:
        """No batch is open or waiting for its tools: a model call has nothing to close."""
        return self._open is None and not self._waiting

    def started(self, name: str, iteration: int, now: float) -> tuple[ToolRecord, list[BatchTally]]:
        """A tool started after model call ``iteration``: its record, and the batches
        that finished because a new one opened."""
        finished: list[BatchTally] = []
        if self._open is not None and self._open.iteration != iteration:
            finished = self.close(now)
        if self._open is None:
            self._open = Batch(iteration)
        record = ToolRecord(name, now, self._open)
        self._open.records.append(record)
        return record, finished

    def ended(self, record: ToolRecord, now: float) -> list[BatchTally]:
        """A tool ended: its batch's tally, if that was the batch's last running tool."""
        record.end = now
        batch = record.batch
        if batch.done and batch in self._waiting:
            self._waiting.remove(batch)
            return self._count(batch)
        return []

    def close(self, now: float, *, force: bool = False) -> list[BatchTally]:
        """Close the open batch (a model call came, or the task ended); tally every closed
        batch whose tools all ended (with ``force``, tools still running end ``now``)."""
        if self._open is not None:
            self._open.closed = True
            self._waiting.append(self._open)
            self._open = None
        finished: list[BatchTally] = []
        waiting = []
        for batch in self._waiting:
            if force:
                for record in batch.records:
                    if record.end is None:
                        record.end = now
            if batch.done:
                finished += self._count(batch)
            else:
                waiting.append(batch)
        self._waiting = waiting
        return finished

    def _count(self, batch: Batch) -> list[BatchTally]:
        found = tally(batch)
        if found is None:
            return []
        self.batches += 1
        self.tool_time_s += found.duration_s
        self.batch_wall_s += found.wall_s
        if found.sequential:
            self.sequential += 1
            self.saveable_s += found.saveable_s
        return [found]

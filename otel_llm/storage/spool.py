"""On-disk spool: batches that could not be stored wait here, in order, until they can.

One file per batch, ``<seq>-<table>-<token>.arrows`` (an Arrow IPC stream of exactly
the columns the insert would have sent). Files are written to a temporary name,
fsync'ed and renamed, so a crash never leaves a half batch under a real name. The
token in the name is the batch's insert deduplication token: replaying a batch that
had in fact reached the store (crash between insert and delete) is dropped by
ClickHouse instead of duplicating rows. Batches the store refuses for good (bad data,
missing table) move to ``rejected/`` with the reason beside them; nothing is deleted
that was not stored.

A lock file keeps two processes from sharing one spool directory.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from otel_llm.storage.errors import StorageError

__all__ = ["Spool", "SpoolFull", "SpooledBatch"]

_NAME = re.compile(r"^(?P<seq>\d{20})-(?P<table>[A-Za-z_][A-Za-z0-9_]*)-(?P<token>[A-Za-z0-9_.:-]+)\.arrows$")


class SpoolFull(StorageError):
    """The spool reached its size limit."""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    path: Path
    seq: int
    table: str
    token: str

    def load(self) -> pa.Table:
        with pa.OSFile(str(self.path), "rb") as source:
            return pa.ipc.open_stream(source).read_all()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The batches waiting in ``directory`` (created if missing), oldest first."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock = open(directory / ".lock", "w")  # noqa: SIM115 - held for the spool's life
        except OSError as exc:
            raise StorageError(f"cannot use spool directory {directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StorageError(
                f"spool directory {directory} is in use by another process; "
                "give each writer its own storage.writer.spool_dir"
            ) from None
        for leftover in directory.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        batches = self.pending()
        self._next_seq = batches[-1].seq + 1 if batches else 1
        self._bytes = sum(b.path.stat().st_size for b in batches)

    def pending(self) -> list[SpooledBatch]:
        out = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                out.append(SpooledBatch(path, int(match["seq"]), match["table"], match["token"]))
        out.sort(key=lambda b: b.seq)
        return out

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def append(self, table: str, token: str, data: pa.Table) -> SpooledBatch:
        """Write a batch durably; raise :class:`SpoolFull` if it would pass ``max_bytes``."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        payload = sink.getvalue()
        if self._bytes and self._bytes + payload.size > self.max_bytes:
            raise SpoolFull(
                f"spool {self.directory} holds {self._bytes} bytes, its limit is {self.max_bytes} "
                "(storage.writer.spool_max_bytes)"
            )
        seq = self._next_seq
        path = self.directory / f"{seq:020d}-{table}-{token}.arrows"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        self._next_seq = seq + 1
        self._bytes += payload.size
        return SpooledBatch(path, seq, table, token)

    def remove(self, batch: SpooledBatch) -> None:
        size = batch.path.stat().st_size
        batch.path.unlink()
        self._bytes -= size

    def reject(self, batch: SpooledBatch, reason: str) -> Path:
        """Move a batch the store refuses for good to ``rejected/``, with the reason beside it."""
        rejected = self.directory / "rejected"
        rejected.mkdir(exist_ok=True)
        size = batch.path.stat().st_size
        target = rejected / batch.path.name
        os.replace(batch.path, target)
        target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
        self._bytes -= size
        return target

    def close(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

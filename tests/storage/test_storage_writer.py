"""The writer on real stores: batching, bounded queue, spool across outages and restarts.

Outages are real: a chDB data directory that cannot be created (a file sits where its
parent directory should be), or clickhouse-connect pointed at a closed local port.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.storage import NOW, llm_span, make_config, ns, wait_until

from otel_llm.storage.backend import Backend, open_backend
from otel_llm.storage.config import StorageConfig, WriterConfig
from otel_llm.storage.errors import QueueFull, StorageError
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import BudgetEventRecord, SpanRecord
from otel_llm.storage.spool import Spool
from otel_llm.storage.writer import BudgetEventWriter, SpanWriter


def spans(count: int, task: str = "w", start: int = 0) -> list[SpanRecord]:
    at = NOW - dt.timedelta(hours=1)
    out = []
    for i in range(start, start + count):
        span = llm_span(at=at + dt.timedelta(milliseconds=i), task=f"{task}-{i // 10}", iteration=i % 10 + 1)
        span.span_id = f"{i + 1:016x}"  # unique across processes
        out.append(span)
    return out


def blocked_config(tmp_path: Path) -> tuple[StorageConfig, Path]:
    """A chDB config whose data directory cannot be created until ``blocker`` is removed."""
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")
    cfg = make_config(tmp_path).with_(path=str(blocker / "ch"))
    return cfg, blocker


def counts(backend: Backend) -> tuple[int, int, int]:
    return (
        backend.query("SELECT count() FROM otel_traces").scalar(),
        backend.query("SELECT count() FROM llm_calls").scalar(),
        backend.query("SELECT sum(calls) FROM tasks").scalar(),
    )


def test_rows_are_batched_and_flushed_into_every_table(store: Backend) -> None:
    with SpanWriter(store) as writer:
        writer.submit(spans(2500))
        assert writer.flush(timeout=30)
        assert counts(store) == (2500, 2500, 2500)
        stats = writer.stats()
    assert stats["rows_inserted"] == 2500
    assert stats["rows_spooled"] == stats["rows_lost"] == stats["queue_rows"] == 0
    assert 1 <= stats["inserts"] <= 3


def test_pipelined_inserts_keep_every_row_in_submission_order(store: Backend) -> None:
    # Small chunks and a steady stream: the encoder runs ahead of the store thread, so
    # several inserts happen, each taking the chunks encoded while the previous one ran.
    with SpanWriter(store, WriterConfig(spool_dir=store.config.writer.spool_dir, batch_rows=500)) as writer:
        for start in range(0, 20_000, 1000):
            writer.submit(spans(1000, start=start))
        assert writer.flush(timeout=60)
        stats = writer.stats()
    assert counts(store) == (20_000, 20_000, 20_000)
    assert stats["inserts"] >= 2
    assert stats["rows_inserted"] == 20_000
    # Each insert is one block with a higher number than the last (part name
    # <partition>_<min block>_<max block>_<level>): submission order = block order.
    rows = store.query(
        "SELECT reinterpretAsUInt64(reverse(unhex(SpanId))) AS n, toUInt64(splitByChar('_', _part)[2]) "
        "FROM otel_traces ORDER BY n"
    ).rows
    assert [n for n, _ in rows] == list(range(1, 20_001))
    blocks = [block for _, block in rows]
    assert blocks == sorted(blocks)
    assert len(set(blocks)) >= 2


def test_rows_that_cannot_be_encoded_are_counted_and_the_rest_are_stored(store: Backend) -> None:
    bad = spans(1, start=1000)
    bad[0].timestamp_ns = "yesterday"  # type: ignore[assignment]
    with SpanWriter(store) as writer:
        writer.submit(spans(300))
        assert writer.flush(timeout=30)
        writer.submit(bad)
        assert writer.flush(timeout=30)
        writer.submit(spans(200, start=300))
        assert writer.flush(timeout=30)
        stats = writer.stats()
    assert (stats["rows_inserted"], stats["rows_rejected"], stats["queue_rows"]) == (500, 1, 0)
    assert counts(store) == (500, 500, 500)


def test_a_chdb_outage_spools_and_replays_in_order_without_loss(tmp_path: Path) -> None:
    cfg, blocker = blocked_config(tmp_path)
    backend = open_backend(cfg)
    writer = SpanWriter(
        backend, WriterConfig(spool_dir=cfg.writer.spool_dir, batch_rows=400, flush_interval=0.05)
    )
    writer.submit(spans(1000))
    assert writer.flush(timeout=30)  # acknowledged: on disk
    stats = writer.stats()
    assert stats["rows_spooled"] == 1000
    assert stats["rows_inserted"] == 0
    assert stats["spool_batches"] >= 1
    writer.submit(spans(200, start=1000))
    blocker.unlink()  # the store comes back
    wait_until(lambda: writer.stats()["spool_batches"] == 0 and writer.stats()["queue_rows"] == 0)
    assert writer.flush(timeout=30)
    writer.close()
    apply_schema(backend)
    assert counts(backend) == (1200, 1200, 1200)
    ids = [r for (r,) in backend.query("SELECT SpanId FROM otel_traces ORDER BY Timestamp").rows]
    assert len(set(ids)) == 1200
    backend.close()


@pytest.fixture
def migrated_blocked_path(tmp_path: Path) -> tuple[StorageConfig, Path]:
    """A store with the schema applied, then made unreachable."""
    cfg = make_config(tmp_path).with_(path=str(tmp_path / "blocked" / "ch"))
    with open_backend(cfg) as backend:
        apply_schema(backend)
    hidden = tmp_path / "hidden"
    (tmp_path / "blocked").rename(hidden)
    (tmp_path / "blocked").write_text("not a directory")
    return cfg, hidden


def restore(tmp_path: Path, hidden: Path) -> None:
    (tmp_path / "blocked").unlink()
    hidden.rename(tmp_path / "blocked")


def run_writer_process(cfg: StorageConfig, count: int, start: int) -> dict:
    script = f"""
import json, sys
sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
from test_storage_writer import spans
from otel_llm.storage.backend import open_backend
from otel_llm.storage.config import StorageConfig, WriterConfig
from otel_llm.storage.writer import SpanWriter
writer_config = WriterConfig(spool_dir={cfg.writer.spool_dir!r}, batch_rows=700)
cfg = StorageConfig(path={cfg.path!r}, writer=writer_config)
backend = open_backend(cfg)
writer = SpanWriter(backend)
writer.submit(spans({count}, start={start}))
assert writer.close(timeout=60)
backend.close()
print(json.dumps(writer.stats()))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_spooled_rows_survive_a_process_restart_without_loss_or_duplicates(
    tmp_path: Path, migrated_blocked_path: tuple[StorageConfig, Path]
) -> None:
    cfg, hidden = migrated_blocked_path
    first = run_writer_process(cfg, 3000, 0)  # store down: all spooled, process exits
    assert (first["rows_spooled"], first["rows_inserted"]) == (3000, 0)
    assert first["spool_batches"] >= 1
    restore(tmp_path, hidden)
    second = run_writer_process(cfg, 500, 3000)  # store back: replays, then writes its own
    assert (second["rows_replayed"], second["rows_inserted"], second["spool_batches"]) == (3000, 500, 0)
    with open_backend(cfg) as backend:
        assert counts(backend) == (3500, 3500, 3500)
        assert backend.query("SELECT uniqExact(SpanId) FROM otel_traces").scalar() == 3500


def test_replaying_a_batch_that_was_already_stored_adds_nothing(
    tmp_path: Path, migrated_blocked_path: tuple[StorageConfig, Path]
) -> None:
    cfg, hidden = migrated_blocked_path
    backend = open_backend(cfg)
    writer = SpanWriter(
        backend, WriterConfig(spool_dir=cfg.writer.spool_dir, batch_rows=300, flush_interval=0.05)
    )
    for start in (0, 300, 600):
        writer.submit(spans(300, start=start))
        assert writer.flush(timeout=30)
    assert writer.close(timeout=30)
    backend.close()
    restore(tmp_path, hidden)
    spool = Spool(Path(cfg.writer.spool_dir) / "otel_traces", 1 << 30)
    batches = spool.pending()
    assert len(batches) == 3
    with open_backend(cfg) as backend:
        # A crash after the insert and before the spool file was deleted:
        backend.insert_arrow(batches[0].table, batches[0].load(), dedup_token=batches[0].token)
        spool.close()
        assert counts(backend) == (300, 300, 300)
        with SpanWriter(backend, WriterConfig(spool_dir=cfg.writer.spool_dir)) as writer:
            wait_until(lambda: writer.stats()["spool_batches"] == 0)
            assert writer.stats()["rows_replayed"] == 900
        assert counts(backend) == (900, 900, 900)


def test_clickhouse_server_down_spools_and_another_process_replays(tmp_path: Path) -> None:
    down = StorageConfig(
        backend="clickhouse",
        url="http://127.0.0.1:1",
        password="hunter2",
        connect_timeout=1,
        writer=WriterConfig(spool_dir=str(tmp_path / "spool"), flush_interval=0.05),
    )
    backend = open_backend(down)
    writer = SpanWriter(backend)
    writer.submit(spans(250))
    assert writer.flush(timeout=30)
    assert writer.stats()["rows_spooled"] == 250
    assert writer.close(timeout=10)
    backend.close()
    up = make_config(tmp_path)
    with open_backend(up) as store:
        apply_schema(store)
        with SpanWriter(store) as replayer:
            wait_until(lambda: replayer.stats()["spool_batches"] == 0)
        assert counts(store) == (250, 250, 250)


def test_a_full_queue_blocks_then_refuses_and_keeps_what_it_accepted(tmp_path: Path) -> None:
    down = StorageConfig(
        backend="clickhouse",
        url="http://127.0.0.1:1",
        connect_timeout=1,
        writer=WriterConfig(
            spool_dir=str(tmp_path / "spool"),
            batch_rows=100,
            max_queue_rows=300,
            block_timeout=0.2,
            spool_max_bytes=1,  # one batch fits, then the spool is full
            flush_interval=0.05,
            retry_initial=0.05,
            retry_max=0.1,
        ),
    )
    backend = open_backend(down)
    writer = SpanWriter(backend)
    writer.submit(spans(100))
    assert writer.flush(timeout=10)
    writer.submit(spans(100, start=100))  # cannot be spooled: stuck in the writer
    wait_until(lambda: writer.stats()["queue_rows"] == 0)
    writer.submit(spans(300, start=200))  # the queue is now full (encoded or not, they count)
    with pytest.raises(QueueFull, match=r"300 rows are waiting to be written to otel_traces"):
        writer.submit(spans(1, start=500))
    assert writer.stats()["queue_full"] == 1
    assert not writer.close(timeout=2)
    backend.close()
    assert writer.stats()["rows_spooled"] == 100


def test_budget_events_are_written_with_exact_values(store: Backend) -> None:
    event = BudgetEventRecord(
        timestamp_ns=ns(NOW),
        event_id="kill-1",
        kind="killed",
        task_id="fix-9",
        task_name="fix",
        service_name="coding-agent",
        policy="coding-agent",
        limit_name="max_usd",
        limit_value=0.5,
        spent=0.5012,
        channel="webhook",
        message="spent $0.5012 of max_usd $0.5000",
        attributes={"tenant": "acme"},
    )
    with BudgetEventWriter(store) as writer:
        writer.submit([event])
        assert writer.flush(timeout=30)
    rows = store.query(
        "SELECT timestamp, event_id, kind, task_id, limit_name, limit_value, spent, channel, message, "
        "source, "
        "attributes FROM budget_events"
    ).rows
    assert rows == [
        (NOW, "kill-1", "killed", "fix-9", "max_usd", 0.5, 0.5012, "webhook",
         "spent $0.5012 of max_usd $0.5000",
         "collector", {"tenant": "acme"}),
    ]  # fmt: skip


def test_one_spool_directory_cannot_serve_two_writers(store: Backend) -> None:
    with SpanWriter(store), pytest.raises(Exception, match="is in use by another process"):
        SpanWriter(store)


def test_a_submit_still_waiting_when_the_writer_closes_is_refused_not_lost(tmp_path: Path) -> None:
    # Store down and spool full after one batch: the store thread waits for room, the
    # queue fills behind it, and the next submit waits for space.
    _, _blocker = blocked_config(tmp_path)
    cfg = make_config(tmp_path, batch_rows=100, max_queue_rows=1000, block_timeout=30, spool_max_bytes=1)
    cfg = cfg.with_(path=str(_blocker / "ch"))
    backend = open_backend(cfg)
    writer = SpanWriter(backend)
    writer.submit(spans(1000))  # spooled: the first batch always fits
    wait_until(lambda: writer.stats()["rows_spooled"] == 1000)
    writer.submit(spans(1000, start=1000))  # taken by the store thread, which waits for room
    writer.submit(spans(1000, start=2000))  # queued behind it: the queue is full
    outcome: dict[str, BaseException | None] = {}

    def late() -> None:
        try:
            writer.submit(spans(500, start=3000))
            outcome["error"] = None
        except BaseException as exc:
            outcome["error"] = exc

    waiting = threading.Thread(target=late)
    waiting.start()
    time.sleep(0.3)
    assert "error" not in outcome  # still waiting for room
    assert writer.close(timeout=10) is False  # what was neither stored nor spooled is reported
    waiting.join(10)
    assert isinstance(outcome["error"], StorageError)
    assert "closed" in str(outcome["error"])
    stats = writer.stats()
    assert (stats["rows_spooled"], stats["rows_lost"], stats["rows_submitted"]) == (1000, 2000, 3000)
    backend.close()


def test_a_spool_the_disk_refuses_holds_the_rows_until_it_can_write(tmp_path: Path) -> None:
    cfg, blocker = blocked_config(tmp_path)
    backend = open_backend(cfg)
    writer = SpanWriter(backend)
    directory = writer.spool.directory
    shutil.rmtree(directory)
    directory.write_text("not a directory")  # every spool write now fails with an OSError
    writer.submit(spans(300))
    assert writer.flush(timeout=1) is False  # neither stored nor spooled yet...
    assert writer._thread.is_alive()  # ...and the writer is still there, retrying
    directory.unlink()
    directory.mkdir()
    assert writer.flush(timeout=30)
    assert writer.stats()["rows_spooled"] == 300
    blocker.unlink()  # the store comes back: the spooled rows are replayed
    writer.submit(spans(200, start=300))
    assert writer.flush(timeout=30)
    assert writer.close()
    assert counts(backend) == (500, 500, 500)
    backend.close()


def test_an_unreadable_spool_file_is_set_aside_and_writing_goes_on(config: StorageConfig) -> None:
    directory = Path(config.writer.spool_dir) / "otel_traces"
    directory.mkdir(parents=True)
    (directory / f"{1:020d}-otel_traces-garbage.arrows").write_bytes(b"not an arrow stream")
    backend = open_backend(config)
    with SpanWriter(backend) as writer:
        writer.submit(spans(50))
        assert writer.flush(timeout=30)
    assert (directory / "rejected" / f"{1:020d}-otel_traces-garbage.arrows").exists()
    assert counts(backend) == (50, 50, 50)
    backend.close()

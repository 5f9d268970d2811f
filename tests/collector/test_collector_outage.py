"""ClickHouse unreachable for a while under load: every span accepted before, during and
after the outage is in ClickHouse afterwards, once (the writer spools and replays)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

from support.clickhouse_http import ClickHouseHTTPServer
from support.otlp import call, request, running_collector

REQUESTS = 60
SPANS = 50


def send_until_accepted(url: str, body: bytes, deadline: float) -> int:
    """Like an OTLP exporter: retry 503s (Retry-After) until the request is accepted
    (or ``deadline``, a ``time.monotonic()`` value, passes)."""
    tries = 0
    while True:
        tries += 1
        req = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                assert response.status == 200
                return tries
        except urllib.error.HTTPError as exc:
            if exc.code != 503:  # only "retry later" is expected
                raise
            assert time.monotonic() < deadline, f"still refused after {tries} tries"
            time.sleep(0.05)


def test_no_span_is_lost_while_clickhouse_is_down_under_load(tmp_path):
    with ClickHouseHTTPServer(tmp_path / "server") as server:
        storage = {
            "backend": "clickhouse",
            "url": server.url,
            "connect_timeout": 2.0,
            "writer": {
                "batch_rows": 200,
                "flush_interval": 0.1,
                "retry_initial": 0.05,
                "retry_max": 0.5,
                "spool_dir": str(tmp_path / "spool"),
            },
        }
        with running_collector(tmp_path, storage=storage) as collector:
            url = collector.http_url + "/v1/traces"
            bodies = [
                request(
                    *[call(f"load-{n}-{i}", response_id=f"r-{n}-{i}") for i in range(SPANS)]
                ).SerializeToString()
                for n in range(REQUESTS)
            ]
            half = REQUESTS // 2
            first_half_sent, killed, sent = threading.Event(), threading.Event(), threading.Event()
            deadline = time.monotonic() + 120

            def load() -> None:
                # The first half while ClickHouse is up, the rest once it is down (and
                # while it comes back): the outage falls under load, whatever the timing.
                for n, body in enumerate(bodies):
                    if n == half:
                        first_half_sent.set()
                        if not killed.wait(60):
                            return
                    send_until_accepted(url, body, deadline)
                sent.set()

            sender = threading.Thread(target=load)
            sender.start()
            assert first_half_sent.wait(60)
            assert collector.storage.spans.flush(timeout=60)
            assert collector.storage.spans.stats()["rows_inserted"] == half * SPANS
            server.kill()  # mid-load, connections reset
            killed.set()
            while collector.storage.spans.stats()["rows_spooled"] == 0:
                assert time.monotonic() < deadline, "nothing was spooled while ClickHouse was down"
                time.sleep(0.01)
            server.start()  # same port, same data
            sender.join(timeout=max(deadline - time.monotonic(), 1))
            assert sent.is_set()
            writer = collector.storage.spans
            assert writer.flush(timeout=60)  # in ClickHouse or in the spool...
            deadline = time.monotonic() + 60
            while writer.stats()["spool_bytes"] and time.monotonic() < deadline:
                time.sleep(0.05)  # ...and the spool replays once ClickHouse is back
            stats = writer.stats()
            backend = collector.storage.backend
            spans = backend.query("SELECT count() AS n, uniqExact(SpanId) AS u FROM otel_traces").dicts()[0]
            calls = backend.query("SELECT count() AS n FROM llm_calls FINAL").dicts()[0]["n"]
            tasks = collector.processor.counts()["active_tasks"]
    assert stats["rows_spooled"] > 0  # the outage happened under load
    assert stats["rows_replayed"] == stats["rows_spooled"]
    assert stats["rows_lost"] == stats["rows_rejected"] == 0
    assert spans == {"n": REQUESTS * SPANS, "u": REQUESTS * SPANS}
    assert calls == REQUESTS * SPANS
    assert tasks == REQUESTS * SPANS

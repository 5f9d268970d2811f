"""Storage: spans and their typed tables in ClickHouse (embedded chDB or a server).

Quick start::

    from otel_llm.storage import StorageConfig, SpanWriter, apply_schema, open_backend, queries

    backend = open_backend(StorageConfig())          # embedded, data in ./.otel-llm/clickhouse
    apply_schema(backend)                            # idempotent, versioned
    with SpanWriter(backend) as writer:              # batched, bounded, spools on outage
        writer.submit([from_readable_span(s) for s in spans])
    rows = queries.run(backend, "top_tasks", start=t0, end=t1, limit=10)

Tables (``schema/NNNN_*.sql``, plain ClickHouse SQL, one node; cluster, replicated
engines and TTLs are rendered from them by :mod:`otel_llm.storage.ddl`):

- ``otel_traces`` — every span, with exactly the columns of the OpenTelemetry Collector
  contrib ClickHouse exporter (same types, codecs, indexes, ``PARTITION BY
  toDate(Timestamp)``, ``ORDER BY (ServiceName, SpanName, toDateTime(Timestamp),
  Timestamp)``), plus ``otel_traces_trace_id_ts`` and its view. The upstream exporter
  and otel-llm can write the same table.
- ``llm_calls`` — one typed row per inference span, filled by a materialized view from
  ``otel_traces`` whoever wrote the span (otel-llm, traceloop/openllmetry, OpenLIT,
  plain semconv; the attribute mapping is documented in ``0002_llm_calls.sql``).
  ``ReplacingMergeTree``, ``PARTITION BY toYYYYMM(timestamp)``, ``ORDER BY
  (toStartOfHour(timestamp), service_name, task_id, span_id)``: dashboards ask about
  time windows first.
- ``tasks`` — per-task totals (``AggregatingMergeTree`` of simple aggregates, ``ORDER BY
  task_id``), fed from ``llm_calls`` (sums over the calls carrying the task id) and from
  the task spans (``invoke_agent ...``: their own ``otel_llm.task.*`` totals as
  ``reported_*``, outcome, ``stopped_by``, parent, budget state and limits).
- ``budget_events`` — warnings, kills, grants and alerts (from the collector, and from
  the ``otel_llm.budget.warn|exceeded|killed|grant`` events on task spans).

Options (``storage:`` in the collector config, :meth:`StorageConfig.from_mapping`):

======================  ==========================  =========================================
option                  default                     meaning
======================  ==========================  =========================================
``backend``             ``chdb``                    ``chdb`` (embedded) or ``clickhouse``
``path``                ``.otel-llm/clickhouse``    chDB data directory (relative to the CWD)
``url``                 —                           ``http(s)://host:port`` of a server;
                                                    ``https`` turns TLS on
``user``                ``default``                 server user (or in the URL)
``password``            ``""``                      or ``$OTEL_LLM_CLICKHOUSE_PASSWORD``;
                                                    never logged
``database``            ``otel``                    created if missing (the upstream
                                                    exporter's default)
``verify_tls``          ``true``                    check the server certificate
``ca_cert``             —                           CA bundle for the server certificate
``connect_timeout``     ``5``                       seconds
``cluster``             —                           renders ``ON CLUSTER`` + ``Replicated*``
``replicated_path``     ``/clickhouse/tables/       ZooKeeper/Keeper path of replicated
                        {shard}/{database}/{table}``  tables
``replica_name``        ``{replica}``               replica name (a macro by default)
``ttl_days.<table>``    otel_traces 30,             per table; ``0`` keeps rows forever
                        otel_traces_trace_id_ts
                        30, llm_calls 365,
                        tasks 365, budget_events
                        365
``writer.batch_rows``   ``1000``                    insert when this many rows wait...
``writer.flush_interval``  ``1.0``                  ...or the oldest has waited this long (s)
``writer.max_queue_rows``  ``100000``               memory bound; ``submit`` blocks, then
                                                    raises ``QueueFull`` (answer OTLP 503)
``writer.block_timeout``   ``5.0``                  seconds ``submit`` waits for room
``writer.spool_dir``    ``<path>/../spool``         batches wait here while the store is down
``writer.spool_max_bytes`` ``1 GiB``                beyond it the queue backs up
``writer.retry_initial``   ``0.5``                  first retry delay (s), doubling...
``writer.retry_max``    ``30``                      ...up to this
======================  ==========================  =========================================

Duplicates: every batch carries an ``insert_deduplication_token`` (kept in its spool
file name) and is inserted with ``deduplicate_blocks_in_dependent_materialized_views``;
``otel_traces``, ``llm_calls``, ``tasks`` and ``budget_events`` keep a
``non_replicated_deduplication_window`` of 1,000 blocks (replicated tables have their
own), so a replayed batch is dropped by ClickHouse in every table.

Tuning: a bigger ``batch_rows``/``flush_interval`` means fewer, larger parts (ClickHouse
likes about one insert a second); ``max_queue_rows`` bounds memory at roughly 2 KB per
span; size ``spool_max_bytes`` for the longest outage you want to ride out (an LLM span
is about 1 KB in the spool).

Modules: :mod:`~otel_llm.storage.config`, :mod:`~otel_llm.storage.backend`,
:mod:`~otel_llm.storage.ddl`, :mod:`~otel_llm.storage.migrations`,
:mod:`~otel_llm.storage.records`, :mod:`~otel_llm.storage.writer`,
:mod:`~otel_llm.storage.spool`, :mod:`~otel_llm.storage.queries`.
"""

from otel_llm.storage import queries
from otel_llm.storage.backend import Backend, ChdbBackend, ClickHouseBackend, QueryResult, open_backend
from otel_llm.storage.config import StorageConfig, WriterConfig
from otel_llm.storage.errors import BackendUnavailable, ConfigError, QueryError, QueueFull, StorageError
from otel_llm.storage.migrations import apply_schema, render_schema
from otel_llm.storage.records import (
    BudgetEventRecord,
    SpanEvent,
    SpanLink,
    SpanRecord,
    from_readable_span,
)
from otel_llm.storage.writer import BudgetEventWriter, SpanWriter

__all__ = [
    "Backend",
    "BackendUnavailable",
    "BudgetEventRecord",
    "BudgetEventWriter",
    "ChdbBackend",
    "ClickHouseBackend",
    "ConfigError",
    "QueryError",
    "QueryResult",
    "QueueFull",
    "SpanEvent",
    "SpanLink",
    "SpanRecord",
    "SpanWriter",
    "StorageConfig",
    "StorageError",
    "WriterConfig",
    "apply_schema",
    "from_readable_span",
    "open_backend",
    "queries",
    "render_schema",
]

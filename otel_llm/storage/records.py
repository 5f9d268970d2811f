"""Plain records for the rows otel-llm writes, and their conversion to Arrow columns.

:class:`SpanRecord` has one field per ``otel_traces`` column (the upstream ClickHouse
exporter's layout). Build it from an SDK span (:func:`from_readable_span`) on the agent
side; the collector builds it from OTLP (``otel_llm.collector.otlp``). Attribute
values are stored as strings exactly as the upstream exporter stores them
(``pcommon.Value.AsString``): booleans ``true``/``false``, integers in decimal,
doubles in shortest round-trip form (``3`` for 3.0), arrays and maps as compact JSON,
bytes as base64. The kind and status are the exporter's words: ``Client``,
``Internal``...; ``Unset``, ``Ok``, ``Error``.

:func:`spans_to_arrow` turns a batch into the column layout of one insert; strings and
maps are packed straight into Arrow buffers (the per-value Python work is one
``str.join`` per column), which is what makes a Python writer keep up with ClickHouse.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "BudgetEventRecord",
    "SpanEvent",
    "SpanLink",
    "SpanRecord",
    "attribute_str",
    "attributes_to_strings",
    "budget_events_to_arrow",
    "from_readable_span",
    "spans_to_arrow",
]

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")


@dataclass(slots=True)
class SpanEvent:
    timestamp_ns: int
    name: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SpanRecord:
    """One ``otel_traces`` row. Ids are lower-case hex; times are ns since the epoch."""

    timestamp_ns: int
    trace_id: str
    span_id: str
    span_name: str
    parent_span_id: str = ""
    trace_state: str = ""
    span_kind: str = "Internal"
    service_name: str = ""
    resource_attributes: dict[str, str] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    span_attributes: dict[str, str] = field(default_factory=dict)
    duration_ns: int = 0
    status_code: str = "Unset"
    status_message: str = ""
    events: list[SpanEvent] = field(default_factory=list)
    links: list[SpanLink] = field(default_factory=list)


@dataclass(slots=True)
class BudgetEventRecord:
    """One ``budget_events`` row, as the budget processor and the alerting write it."""

    timestamp_ns: int
    event_id: str
    kind: str
    task_id: str
    task_name: str = ""
    service_name: str = ""
    policy: str = ""
    limit_name: str = ""
    limit_value: float = 0.0
    spent: float = 0.0
    channel: str = ""
    message: str = ""
    trace_id: str = ""
    span_id: str = ""
    source: str = "collector"
    attributes: dict[str, str] = field(default_factory=dict)


# -- attribute values ------------------------------------------------------------------


def _float_str(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:  # Go writes 1e-07 as 1e-7
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    return text


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_json_value(v) for v in value]
    return value


def attribute_str(value: Any) -> str:
    """An attribute value as the upstream ClickHouse exporter stores it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_str(value)
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return json.dumps(_json_value(value), separators=(",", ":"), ensure_ascii=False)


def attributes_to_strings(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    if not attributes:
        return {}
    return {k: v if isinstance(v, str) else attribute_str(v) for k, v in attributes.items()}


# -- from the SDK ----------------------------------------------------------------------


def from_readable_span(span: Any) -> SpanRecord:
    """From an ``opentelemetry.sdk.trace.ReadableSpan`` (ended)."""
    ctx = span.context
    resource = attributes_to_strings(span.resource.attributes if span.resource else None)
    scope = span.instrumentation_scope
    start = span.start_time or 0
    end = span.end_time or start
    status = span.status
    return SpanRecord(
        timestamp_ns=start,
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_span_id=f"{span.parent.span_id:016x}" if span.parent else "",
        trace_state=ctx.trace_state.to_header() if ctx.trace_state else "",
        span_name=span.name,
        span_kind=SPAN_KINDS[span.kind.value + 1],
        service_name=resource.get("service.name", ""),
        resource_attributes=resource,
        scope_name=scope.name if scope else "",
        scope_version=(scope.version or "") if scope else "",
        span_attributes=attributes_to_strings(span.attributes),
        duration_ns=max(end - start, 0),
        status_code=STATUS_CODES[status.status_code.value],
        status_message=status.description or "",
        events=[SpanEvent(e.timestamp, e.name, attributes_to_strings(e.attributes)) for e in span.events],
        links=[
            SpanLink(
                f"{link.context.trace_id:032x}",
                f"{link.context.span_id:016x}",
                link.context.trace_state.to_header() if link.context.trace_state else "",
                attributes_to_strings(link.attributes),
            )
            for link in span.links
        ],
    )


# -- to Arrow --------------------------------------------------------------------------


def _offsets(lengths: Iterable[int], count: int) -> np.ndarray:
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(lengths, dtype=np.int64, count=count), out=offsets[1:])
    return offsets


def _string_array_from(values: Iterable[str], count: int) -> pa.Array:
    """``count`` strings as an Arrow string array, without a Python step per string.

    The strings are joined with NUL between them and encoded once; the NUL positions
    give the offsets. A string that itself holds a NUL (never seen in practice) shows
    as a surplus separator and sends the batch the slow way.
    """
    if count == 0:
        return pa.array([], pa.string())
    joined = "\0".join(values)
    data = joined.encode("utf-8", "replace")
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buffer == 0)
    if len(ends) != count - 1:
        return pa.array(joined.split("\0") if count > 1 else [joined], pa.string())
    offsets = np.empty(count + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:-1] = ends - np.arange(count - 1)  # each earlier separator shifts the text by one
    offsets[-1] = len(data) - (count - 1)
    text = data.replace(b"\0", b"") if count > 1 else data
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(text))
    return pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text)).cast(
        pa.string()
    )


def _string_array(values: list[str]) -> pa.Array:
    """``values`` as an Arrow string array."""
    return _string_array_from(values, len(values))


_MAP = pa.map_(pa.string(), pa.string())


def _map_array(maps: list[dict[str, str]]) -> pa.Array:
    """Maps as one Arrow map array. The same dict object repeated (the resource of every
    span of one OTLP ``ResourceSpans``) is packed once and repeated by index."""
    count = len(maps)
    slots: dict[int, int] = {}
    index = [slots.setdefault(id(m), len(slots)) for m in maps]
    if count > 1 and len(slots) * 2 <= count:
        unique = list({id(m): m for m in maps}.values())
        return _map_array(unique).take(pa.array(index, pa.int32()))
    lengths = np.fromiter(map(len, maps), dtype=np.int64, count=count)
    offsets = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        _map_keys(maps, offsets, lengths, total),
        _string_array_from(chain.from_iterable(map(dict.values, maps)), total),
    )


def _map_keys(maps: list[dict[str, str]], offsets: np.ndarray, lengths: np.ndarray, total: int) -> pa.Array:
    """The keys of ``maps``, flattened. Spans from one instrumentation share a few key
    sequences; each distinct sequence is packed once and the flat keys are gathered
    from them by index (strings are the bulk of a batch's bytes, keys the larger part)."""
    patterns: dict[tuple[str, ...], int] = {}
    which = np.fromiter(
        (patterns.setdefault(tuple(m), len(patterns)) for m in maps), dtype=np.int64, count=len(maps)
    )
    if len(patterns) * 4 > len(maps):
        return _string_array_from(chain.from_iterable(maps), total)
    pattern_keys = list(chain.from_iterable(patterns))
    pattern_start = np.zeros(len(patterns), dtype=np.int64)
    np.cumsum([len(k) for k in patterns][:-1], out=pattern_start[1:])
    gather = np.repeat(pattern_start[which] - offsets[:-1], lengths) + np.arange(total)
    return _string_array_from(pattern_keys, len(pattern_keys)).take(pa.array(gather))


def _ts_array(values: list[int]) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), pa.int64()).view(pa.timestamp("ns"))


def _empty_lists(count: int, item_type: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.zeros(count + 1, dtype=np.int32)), pa.array([], item_type))


def _nested_columns(
    lists: list[list[Any]], fields: Sequence[tuple[str, str, Any, pa.DataType]]
) -> dict[str, pa.Array]:
    """``Nested`` columns (``Events.*``, ``Links.*``): one ``list<item>`` column per field."""
    count = len(lists)
    if not any(lists):
        return {column: _empty_lists(count, item_type) for column, _, _, item_type in fields}
    offsets = pa.array(_offsets(map(len, lists), count).astype(np.int32), pa.int32())
    flat = list(chain.from_iterable(lists))
    return {
        column: pa.ListArray.from_arrays(offsets, build([getattr(item, name) for item in flat]))
        for column, name, build, _ in fields
    }


_EVENT_FIELDS = (
    ("Events.Timestamp", "timestamp_ns", _ts_array, pa.timestamp("ns")),
    ("Events.Name", "name", _string_array, pa.string()),
    ("Events.Attributes", "attributes", _map_array, _MAP),
)
_LINK_FIELDS = (
    ("Links.TraceId", "trace_id", _string_array, pa.string()),
    ("Links.SpanId", "span_id", _string_array, pa.string()),
    ("Links.TraceState", "trace_state", _string_array, pa.string()),
    ("Links.Attributes", "attributes", _map_array, _MAP),
)


def spans_to_arrow(records: Sequence[SpanRecord]) -> pa.Table:
    """A batch of spans as the columns of one ``otel_traces`` insert."""
    columns: dict[str, pa.Array] = {
        "Timestamp": _ts_array([r.timestamp_ns for r in records]),
        "TraceId": _string_array([r.trace_id for r in records]),
        "SpanId": _string_array([r.span_id for r in records]),
        "ParentSpanId": _string_array([r.parent_span_id for r in records]),
        "TraceState": _string_array([r.trace_state for r in records]),
        "SpanName": _string_array([r.span_name for r in records]),
        "SpanKind": _string_array([r.span_kind for r in records]),
        "ServiceName": _string_array([r.service_name for r in records]),
        "ResourceAttributes": _map_array([r.resource_attributes for r in records]),
        "ScopeName": _string_array([r.scope_name for r in records]),
        "ScopeVersion": _string_array([r.scope_version for r in records]),
        "SpanAttributes": _map_array([r.span_attributes for r in records]),
        "Duration": pa.array(np.asarray([r.duration_ns for r in records], dtype=np.uint64), pa.uint64()),
        "StatusCode": _string_array([r.status_code for r in records]),
        "StatusMessage": _string_array([r.status_message for r in records]),
        **_nested_columns([r.events for r in records], _EVENT_FIELDS),
        **_nested_columns([r.links for r in records], _LINK_FIELDS),
    }
    return pa.table(columns)


def budget_events_to_arrow(records: Sequence[BudgetEventRecord]) -> pa.Table:
    """A batch of budget events as the columns of one ``budget_events`` insert."""
    strings = [
        "event_id",
        "kind",
        "task_id",
        "task_name",
        "service_name",
        "policy",
        "limit_name",
        "channel",
        "message",
        "trace_id",
        "span_id",
        "source",
    ]
    columns: dict[str, pa.Array] = {"timestamp": _ts_array([r.timestamp_ns for r in records])}
    for name in strings:
        columns[name] = _string_array([getattr(r, name) for r in records])
    columns["limit_value"] = pa.array([float(r.limit_value) for r in records], pa.float64())
    columns["spent"] = pa.array([float(r.spent) for r in records], pa.float64())
    columns["attributes"] = _map_array([r.attributes for r in records])
    return pa.table(columns)

"""Thousands of randomly corrupted OTLP payloads: no crash, no 5xx, no hang; a 4xx, or
a 2xx where the corruption still parses. Bounded to a few seconds (fixed seed)."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import random
from urllib.parse import urlsplit

import grpc
import pytest
from google.protobuf import json_format
from support.otlp import call, request, running_collector

PROTOBUF_RUNS = 2500
JSON_RUNS = 1500
GRPC_RUNS = 800


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if not out:
            out += rng.randbytes(rng.randint(1, 16))
        elif choice < 0.4:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice < 0.55:
            del out[rng.randrange(len(out)) :]
        elif choice < 0.7:
            at = rng.randrange(len(out))
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif choice < 0.85:
            start = rng.randrange(len(out))
            out[start:start] = out[start : start + rng.randint(1, 64)]
        else:
            at = rng.randrange(len(out))
            del out[at : at + rng.randint(1, 32)]
    return bytes(out)


def _json_mutation(payload: dict, rng: random.Random) -> bytes:
    """Structural damage (wrong types, wrong ids, huge numbers) as well as byte damage."""
    text = json.dumps(payload)
    if rng.random() < 0.5:
        return _mutate(text.encode(), rng)
    spans = payload["resourceSpans"][0]["scopeSpans"][0]["spans"]
    target = rng.choice(spans)
    key = rng.choice([*target.keys(), "attributes"])
    target[key] = rng.choice([None, 5, -1, "zz", [], {}, "0" * 40, 1e308, True, [{"key": 3}], "ff" * 8])
    return json.dumps(payload).encode()


def test_corrupted_protobuf_and_json_never_give_5xx(tmp_path):
    rng = random.Random(20261204)
    valid = request(*[call(f"fuzz-{i}", response_id=f"r{i}") for i in range(5)])
    proto = valid.SerializeToString()
    as_json = json_format.MessageToDict(valid)
    # OTLP/JSON ids are hex, not base64.
    for rs in as_json["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    statuses: dict[int, int] = {}
    with running_collector(tmp_path) as collector:
        url = urlsplit(collector.http_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        for n in range(PROTOBUF_RUNS + JSON_RUNS):
            if n < PROTOBUF_RUNS:
                body, kind = _mutate(proto, rng), "application/x-protobuf"
            else:
                body, kind = _json_mutation(json.loads(json.dumps(as_json)), rng), "application/json"
            headers = {"Content-Type": kind}
            if rng.random() < 0.2:
                body = gzip.compress(body)
                if rng.random() < 0.5:
                    body = _mutate(body, rng)
                headers["Content-Encoding"] = "gzip"
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.close()
        # Still serving, and what did parse was accounted.
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("POST", "/v1/traces", body=proto, headers={"Content-Type": "application/x-protobuf"})
        assert conn.getresponse().status == 200
    assert sum(statuses.values()) == PROTOBUF_RUNS + JSON_RUNS
    assert all(200 <= status < 500 for status in statuses), statuses
    assert statuses.get(400, 0) > 1000  # most corruptions are caught...
    assert statuses.get(200, 0) > 100  # ...some still parse (a flipped byte inside a string)


def test_corrupted_grpc_requests_are_invalid_argument_never_internal(tmp_path):
    rng = random.Random(4317)
    proto = request(*[call(f"g-{i}", response_id=f"g{i}") for i in range(5)]).SerializeToString()
    codes: dict[str, int] = {}
    with running_collector(tmp_path) as collector, grpc.insecure_channel(collector.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        for _ in range(GRPC_RUNS):
            try:
                export(_mutate(proto, rng), timeout=10)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            codes[code] = codes.get(code, 0) + 1
        export(proto, timeout=10)  # still serving
    assert set(codes) <= {"OK", "INVALID_ARGUMENT"}, codes
    assert codes.get("INVALID_ARGUMENT", 0) > GRPC_RUNS // 3


ATTRIBUTE_RUNS = 300
_COUNT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "otel_llm.cost.usd",
)
_TEXT_KEYS = ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.provider.name", "otel_llm.task.name")
_BAD_VALUES = (
    "1e400",
    "-1e400",
    "9" * 400,
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-5",
    "",
    " ",
    "0x10",
    "\x00",
    "é" * 3,
)


def test_corrupted_attribute_values_are_stored_and_the_clean_calls_beside_them_counted(tmp_path):
    """Well-formed OTLP whose token counts, costs and names are garbage (huge, NaN,
    infinite, negative, not numbers, wrong types): every request is taken, and the clean
    call sent in each one is counted exactly."""
    rng = random.Random(5150)
    with running_collector(tmp_path, exporters={"storage": False}) as collector:
        url = urlsplit(collector.http_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        statuses: dict[int, int] = {}
        for n in range(ATTRIBUTE_RUNS):
            garbage: dict[str, object] = {}
            for key in rng.sample(_COUNT_KEYS, rng.randint(1, 3)):
                garbage[key] = rng.choice([*_BAD_VALUES, 1 << 62, -(1 << 62), 1e308, float("nan"), True])
            for key in rng.sample(_TEXT_KEYS, rng.randint(0, 2)):
                garbage[key] = rng.choice(_BAD_VALUES)
            body = request(call(f"junk-{n % 7}", **garbage), call("clean", 100, 10)).SerializeToString()
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()
        clean = collector.task("clean")
    assert statuses == {200: ATTRIBUTE_RUNS}
    # gpt-4o-mini: $0.15 / MTok input, $0.60 / MTok output.
    assert (clean["iterations"], clean["input_tokens"], clean["output_tokens"]) == (
        ATTRIBUTE_RUNS,
        100 * 300,
        10 * 300,
    )
    assert clean["cost_usd"] == pytest.approx(ATTRIBUTE_RUNS * (100 * 0.15e-6 + 10 * 0.60e-6), rel=1e-9)

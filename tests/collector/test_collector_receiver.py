"""The OTLP receiver on real servers: OTLP/HTTP (aiohttp) and OTLP/gRPC (grpcio), as the
OTLP specification says, with the real OpenTelemetry exporters where they apply."""

from __future__ import annotations

import gzip
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from support.otlp import call, kvs, request, running_collector

from otel_llm.collector.receiver import check_token

PROTOBUF = "application/x-protobuf"
# gpt-4o-mini: $0.15 / MTok input, $0.60 / MTok output.
COST_100_10 = 100 * 0.15e-6 + 10 * 0.60e-6


def post(url: str, body: bytes, content_type: str = PROTOBUF, **headers: str) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str, **headers: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return json.load(response)


@pytest.fixture
def collector(tmp_path: Path):
    policy = {"policies": [{"name": "small", "per_task": {"max_iterations": 3}}]}
    with running_collector(tmp_path, policy, processors={"budget": {"killed_task_max_spans": 2}}) as running:
        yield running


def test_protobuf_spans_are_priced_and_accounted_per_task(collector):
    body = request(call("t-1"), call("t-1", 200, 20)).SerializeToString()
    status, headers, reply = post(collector.http_url + "/v1/traces", body)
    assert status == 200
    assert headers["Content-Type"] == PROTOBUF
    assert not trace_service_pb2.ExportTraceServiceResponse.FromString(reply).HasField("partial_success")
    task = get_json(collector.http_url + "/v1/tasks/t-1")
    assert task["iterations"] == 2
    assert task["input_tokens"] == 300
    assert task["output_tokens"] == 30
    assert task["cost_usd"] == pytest.approx(3 * COST_100_10, rel=1e-12)
    assert task["state"] == "ok"


def test_gzip_body_is_accepted(collector):
    body = gzip.compress(request(call("t-gz")).SerializeToString())
    status, _, _ = post(collector.http_url + "/v1/traces", body, **{"Content-Encoding": "gzip"})
    assert status == 200
    assert get_json(collector.http_url + "/v1/tasks/t-gz")["iterations"] == 1


def test_otlp_json_with_hex_ids_and_integer_enums(collector):
    trace_id = "5b8efff798038103d269b633813fc60c"
    payload = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-agent"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat gpt-4o-mini",
                                "kind": 3,
                                "startTimeUnixNano": "1790000000000000000",
                                "endTimeUnixNano": "1790000000100000000",
                                "attributes": [
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 10}},
                                ],
                                "status": {"code": 1},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    status, headers, reply = post(
        collector.http_url + "/v1/traces", json.dumps(payload).encode(), "application/json"
    )
    assert status == 200, reply
    assert headers["Content-Type"] == "application/json"
    assert json.loads(reply) == {}
    # No task id: the trace is the task, named by its id in bare lower-case hex.
    task = get_json(collector.http_url + f"/v1/tasks/{trace_id}")
    assert task["iterations"] == 1
    assert task["cost_usd"] == pytest.approx(COST_100_10, rel=1e-12)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "says"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, None, "not a protobuf ExportTraceServiceRequest"),
        (b"{not json", "application/json", None, "not JSON"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}',
            "application/json",
            None,
            "traceId: 'xyz' is not hex",
        ),
        (b'{"resourceSpans": 5}', "application/json", None, "not an OTLP/JSON ExportTraceServiceRequest"),
        (b"not gzip at all", PROTOBUF, "gzip", "not valid gzip"),
        (gzip.compress(b"x" * 100)[:-10], PROTOBUF, "gzip", "not valid gzip"),
        (b"", PROTOBUF, "br", "unsupported Content-Encoding 'br'"),
    ],
)
def test_malformed_bodies_get_400_saying_what_is_wrong(collector, body, content_type, encoding, says):
    headers = {"Content-Encoding": encoding} if encoding else {}
    status, _, reply = post(collector.http_url + "/v1/traces", body, content_type, **headers)
    assert status == 400
    if content_type == PROTOBUF:
        message = status_pb2.Status.FromString(reply).message
    else:
        message = json.loads(reply)["message"]
    assert says in message


def test_unsupported_content_type_is_415(collector):
    status, _, _ = post(collector.http_url + "/v1/traces", b"x", "text/plain")
    assert status == 415


def test_oversize_body_is_413_before_it_is_read(tmp_path):
    with running_collector(
        tmp_path,
        receivers={
            "otlp": {
                "max_request_bytes": 1000,
                "grpc": {"endpoint": "127.0.0.1:0"},
                "http": {"endpoint": "127.0.0.1:0"},
            }
        },
    ) as small:
        status, _, reply = post(small.http_url + "/v1/traces", b"\0" * 1001)
        assert status == 413
        assert "over the 1000-byte limit" in status_pb2.Status.FromString(reply).message


def test_gzip_bomb_is_413_and_inflating_stops_at_the_limit(tmp_path):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    with running_collector(
        tmp_path,
        receivers={
            "otlp": {
                "max_request_bytes": 1024 * 1024,
                "grpc": {"endpoint": "127.0.0.1:0"},
                "http": {"endpoint": "127.0.0.1:0"},
            }
        },
    ) as small:
        status, _, reply = post(small.http_url + "/v1/traces", bomb, **{"Content-Encoding": "gzip"})
        assert status == 413
        assert "inflates to more than 1048576 bytes" in status_pb2.Status.FromString(reply).message


def test_default_limit_is_20_mib_after_decompression(collector):
    assert collector.config.receivers.otlp.max_request_bytes == 20 * 1024 * 1024
    status, _, _ = post(
        collector.http_url + "/v1/traces",
        gzip.compress(b"\0" * (20 * 1024 * 1024 + 1)),
        **{"Content-Encoding": "gzip"},
    )
    assert status == 413


def test_spans_of_a_killed_task_are_stored_tagged_then_refused_with_partial_success(collector):
    url = collector.http_url + "/v1/traces"
    status, _, reply = post(url, request(*[call("runaway") for _ in range(3)]).SerializeToString())
    assert status == 200
    assert not trace_service_pb2.ExportTraceServiceResponse.FromString(reply).HasField("partial_success")
    kills = get_json(collector.http_url + "/v1/kills?after=0")["kills"]
    assert [(k["task_id"], k["limit"], k["spent"], k["limit_value"]) for k in kills] == [
        ("runaway", "max_iterations", 3, 3)
    ]
    # killed_task_max_spans = 2: two more are stored (tagged), the rest refused for good.
    status, _, reply = post(url, request(*[call("runaway") for _ in range(5)]).SerializeToString())
    assert status == 200
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(reply).partial_success
    assert partial.rejected_spans == 3
    assert "killed by the otel-llm collector" in partial.error_message
    task = get_json(collector.http_url + "/v1/tasks/runaway")
    assert task["state"] == "killed"
    assert task["iterations"] == 8  # spend is still counted: the calls were made
    collector.storage.spans.flush()
    rows = collector.storage.backend.query(
        "SELECT SpanAttributes['otel_llm.collector.killed'] AS killed, count() AS n FROM otel_traces"
        " WHERE SpanAttributes['otel_llm.task.id'] = 'runaway' GROUP BY killed ORDER BY killed"
    ).dicts()
    assert rows == [{"killed": "", "n": 3}, {"killed": "true", "n": 2}]


def test_metrics_and_logs_are_accepted_over_http(collector):
    for signal, message in (
        ("metrics", metrics_service_pb2.ExportMetricsServiceRequest()),
        ("logs", logs_service_pb2.ExportLogsServiceRequest()),
    ):
        status, _, _ = post(f"{collector.http_url}/v1/{signal}", message.SerializeToString())
        assert status == 200
        status, _, _ = post(f"{collector.http_url}/v1/{signal}", b"\xff\xff")
        assert status == 400


def test_grpc_traces_metrics_and_logs(collector):
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        reply = trace_service_pb2_grpc.TraceServiceStub(channel).Export(
            request(call("t-grpc")), timeout=10, compression=grpc.Compression.Gzip
        )
        assert not reply.HasField("partial_success")
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(
            metrics_service_pb2.ExportMetricsServiceRequest(), timeout=10
        )
        logs_service_pb2_grpc.LogsServiceStub(channel).Export(
            logs_service_pb2.ExportLogsServiceRequest(), timeout=10
        )
    assert get_json(collector.http_url + "/v1/tasks/t-grpc")["iterations"] == 1


def test_malformed_grpc_request_is_invalid_argument_saying_why(collector):
    with grpc.insecure_channel(collector.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
            b"\xff\xff", timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a protobuf ExportTraceServiceRequest" in caught.value.details()


def test_grpc_message_over_the_limit_is_resource_exhausted(tmp_path):
    with running_collector(
        tmp_path,
        receivers={
            "otlp": {
                "max_request_bytes": 1000,
                "grpc": {"endpoint": "127.0.0.1:0"},
                "http": {"endpoint": "127.0.0.1:0"},
            }
        },
    ) as small:
        big = request(*[call("big") for _ in range(20)])
        with grpc.insecure_channel(small.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as caught:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(big, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_bearer_token_is_required_on_every_endpoint(tmp_path):
    with running_collector(tmp_path, auth={"bearer_token": "s3cret-token"}) as locked:
        body = request(call("t-auth")).SerializeToString()
        for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
            assert post(locked.http_url + path, body)[0] == 401
            assert post(locked.http_url + path, body, Authorization="Bearer wrong")[0] == 401
        for path in ("/v1/tasks", "/v1/kills", "/metrics", "/v1/tasks/t-auth"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                get_json(locked.http_url + path)
            assert caught.value.code == 401
        assert post(locked.http_url + "/v1/tasks/x/kill", b"{}", "application/json")[0] == 401
        assert post(locked.http_url + "/v1/traces", body, Authorization="Bearer s3cret-token")[0] == 200
        assert (
            get_json(locked.http_url + "/v1/tasks/t-auth", Authorization="Bearer s3cret-token")["iterations"]
            == 1
        )
        with grpc.insecure_channel(locked.grpc_endpoint) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(request(call("t-auth")), timeout=10, metadata=[("authorization", "Bearer nope")])
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            stub.Export(
                request(call("t-auth")), timeout=10, metadata=[("authorization", "Bearer s3cret-token")]
            )
        assert (
            get_json(locked.http_url + "/v1/tasks/t-auth", Authorization="Bearer s3cret-token")["iterations"]
            == 2
        )


def test_full_storage_queue_sheds_load_with_503_and_grpc_unavailable_with_retry_info(tmp_path):
    writer = {"batch_rows": 1000, "max_queue_rows": 1000, "flush_interval": 60.0}
    with running_collector(tmp_path, storage={"path": str(tmp_path / "ch"), "writer": writer}) as busy:
        first = request(*[call(f"q-{i}") for i in range(600)]).SerializeToString()
        assert post(busy.http_url + "/v1/traces", first)[0] == 200  # 600 rows wait for the flush interval
        status, headers, reply = post(busy.http_url + "/v1/traces", first)
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert "storage queue is full" in status_pb2.Status.FromString(reply).message
        # Nothing of the refused request was counted: the sender retries it.
        assert busy.processor.counts()["active_tasks"] == 600
        with grpc.insecure_channel(busy.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as caught:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                request(*[call(f"g-{i}") for i in range(600)]), timeout=10
            )
        error = caught.value
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        trailing = dict(error.trailing_metadata())
        details = status_pb2.Status.FromString(trailing["grpc-status-details-bin"])
        info = error_details_pb2.RetryInfo()
        assert details.details[0].Unpack(info)
        assert info.retry_delay.seconds == 1
        assert error_details_pb2.RetryInfo.FromString(trailing["google.rpc.retryinfo-bin"]) == info


def test_requests_past_max_concurrent_are_503_before_their_body_is_read(tmp_path):
    """A request holds its slot from its headers on: one more is refused at once with
    503 + Retry-After (not queued with its body in memory); the slot comes back after."""
    body = request(call("slow"), call("slow")).SerializeToString()
    receivers = {"otlp": {"max_concurrent_requests": 1, "retry_after": 3, "grpc": {"enabled": False}}}
    with running_collector(tmp_path, receivers=receivers, exporters={"storage": False}) as c:
        url = urlsplit(c.http_url)
        slow = socket.create_connection((url.hostname, url.port), timeout=10)
        head = (
            f"POST /v1/traces HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {PROTOBUF}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        slow.sendall(head.encode() + body[:10])  # headers and the first bytes only
        deadline = time.monotonic() + 10
        statuses = []
        while time.monotonic() < deadline:
            status, headers, reply = post(
                c.http_url + "/v1/traces", request(call("other")).SerializeToString()
            )
            statuses.append(status)
            if status == 503:
                break
            time.sleep(0.02)
        assert statuses[-1] == 503, statuses
        assert headers["Retry-After"] == "3"
        assert "too many export requests in flight" in status_pb2.Status.FromString(reply).message
        slow.sendall(body[10:])
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
        slow.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert c.task("slow")["iterations"] == 2
        assert post(c.http_url + "/v1/traces", request(call("after")).SerializeToString())[0] == 200


def test_credentials_in_spans_never_reach_otel_traces(tmp_path):
    """Headers, keys and passwords are replaced whole; URLs and error messages that quote
    a key keep everything but the key."""
    secret_call = call(
        "secrets",
        **{
            "http.request.header.authorization": "Bearer sk-live-0123456789abcdef",
            "http.request.header.x-api-key": "sk-ant-api03-0123456789abcdef",
            "openai.api_key": "sk-proj-0123456789abcdef",
            "url.full": "https://generativelanguage.googleapis.com/v1beta/models?key=AIzaSyA0123456789abcdef&alt=sse",
        },
    )
    secret_call.status.CopyFrom(
        Status(code=2, message="AuthenticationError: Incorrect API key provided: sk-proj-****cdef.")
    )
    secret_call.events.append(
        Span.Event(
            name="exception",
            time_unix_nano=secret_call.start_time_unix_nano,
            attributes=kvs(
                {"exception.message": "Error code: 401 - invalid x-api-key sk-ant-api03-AbCdEf123456"}
            ),
        )
    )
    body = request(secret_call, resource={"db.password": "hunter2-hunter2"}).SerializeToString()
    with running_collector(tmp_path) as c:
        assert post(c.http_url + "/v1/traces", body)[0] == 200
        c.storage.spans.flush()
        [row] = c.storage.backend.query(
            "SELECT SpanAttributes AS a, ResourceAttributes AS r, StatusMessage AS m,"
            " Events.Attributes[1] AS e FROM otel_traces"
        ).dicts()
        task = c.task("secrets")
    a = row["a"]
    assert a["http.request.header.authorization"] == "[redacted]"
    assert a["http.request.header.x-api-key"] == "[redacted]"
    assert a["openai.api_key"] == "[redacted]"
    assert a["url.full"] == "https://generativelanguage.googleapis.com/v1beta/models?[redacted]&alt=sse"
    assert a["gen_ai.usage.input_tokens"] == "100"  # a count, not a token
    assert row["r"]["db.password"] == "[redacted]"
    # The pattern errs on the side of hiding: "key provided" is key-shaped too.
    assert row["m"] == "AuthenticationError: Incorrect API [redacted]: [redacted]"
    assert row["e"]["exception.message"] == "Error code: 401 - invalid x-[redacted]"
    assert "0123456789abcdef" not in json.dumps(row, default=str)
    assert task["iterations"] == 1


def test_the_bearer_scheme_name_is_case_insensitive():
    assert [
        check_token("s3cret", header)
        for header in (
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "Basic s3cret",
            "Bearer",
            "Bearers3cret",
        )
    ] == [True, True, True, False, False, False]

"""Scale-out: two collectors, each task's spans routed to one of them by its
``otel_llm.task.id`` (the gateway's rule: ``collector/gateway.yaml``). Per-task budgets
and kills hold on each shard, and agents following both collectors obey either."""

from __future__ import annotations

import json
import urllib.request
import zlib
from pathlib import Path

import yaml
from support.agents import agent_env, finish, start
from support.otlp import call, request, running_collector

from otel_llm.collector.otlp import from_export_request
from otel_llm.sim import Simulator

ROOT = Path(__file__).resolve().parents[2]
POLICY = {"policies": [{"name": "cap", "per_task": {"max_iterations": 4}}]}


def shard_of(task_id: str, shards: int = 2) -> int:
    """Route by the task id, as the gateway's load-balancing exporter does (by hash)."""
    return zlib.crc32(task_id.encode()) % shards


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_gateway_config_routes_by_the_task_id_attribute():
    gateway = yaml.safe_load((ROOT / "collector" / "gateway.yaml").read_text())
    exporter = gateway["exporters"]["loadbalancing"]
    assert exporter["routing_key"] == "attributes"
    assert exporter["routing_attributes"] == ["otel_llm.task.id"]
    assert gateway["service"]["pipelines"]["traces"]["exporters"] == ["loadbalancing"]


def test_two_collectors_sharded_by_task_hold_budgets_and_kills(tmp_path):
    no_storage = {"exporters": {"storage": False}}
    with (
        Simulator() as sim,
        running_collector(tmp_path / "a", POLICY, **no_storage) as first,
        running_collector(tmp_path / "b", POLICY, **no_storage) as second,
    ):
        shards = (first, second)
        # Many tasks through the router: every task lives whole on one shard.
        tasks = [f"task-{n}" for n in range(40)]
        spans = [call(task) for task in tasks for _ in range(3)]
        routed: dict[int, list] = {0: [], 1: []}
        for span in spans:
            task_id = next(kv.value.string_value for kv in span.attributes if kv.key == "otel_llm.task.id")
            routed[shard_of(task_id)].append(span)
        assert routed[0]
        assert routed[1]
        for index, part in routed.items():
            shards[index].processor.process(from_export_request(request(*part)))
        for task in tasks:
            mine, other = shards[shard_of(task)], shards[1 - shard_of(task)]
            assert mine.processor.task(task)["iterations"] == 3
            assert other.processor.task(task) is None

        # Two real agents, one task each, on different shards; each follows both collectors.
        ids = ["agent-task-1", "agent-task-2"]
        while shard_of(ids[0]) == shard_of(ids[1]):
            ids[1] += "x"
        both = f"{first.http_url},{second.http_url}"
        processes = []
        for n, task_id in enumerate(ids):
            target = shards[shard_of(task_id)]
            env = agent_env(
                target,
                sim,
                service=f"agent-{n}",
                protocol="grpc" if n else "http",
                BAGGAGE=f"otel_llm.task.id={task_id}",
                OTEL_LLM_COLLECTOR_URL=both,
            )
            processes.append(start(env))
        outputs = [finish(p)[0] for p in processes]
        for task_id, lines in zip(ids, outputs, strict=True):
            target = shards[shard_of(task_id)]
            assert lines[-1].startswith("REFUSED "), lines
            assert "made 4 model calls of max_iterations 4" in lines[-1]
            assert f"(collector {target.http_url})" in lines[-1]
            [kill] = [k for k in get(target.http_url + "/v1/kills")["kills"] if k["task_id"] == task_id]
            assert (kill["limit"], kill["spent"]) == ("max_iterations", 4)
            other = shards[1 - shard_of(task_id)]
            assert other.processor.task(task_id) is None
            made = sum(1 for line in lines if line.startswith("CALL "))
            assert target.processor.task(task_id)["iterations"] == made

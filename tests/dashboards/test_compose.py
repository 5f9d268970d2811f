"""docker-compose.yml against the Compose Specification's JSON schema (vendored from
the compose-spec project, Apache-2.0: tests/dashboards/data/compose-spec.json and its
LICENSE), and its wiring: mounted paths exist, services it depends on exist and are
health-checked, the gateway's backends are services of the scale-out profile."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_a_broken_compose_file_is_caught_by_the_schema() -> None:
    broken = compose()
    broken["services"]["grafana"]["healthcheck"]["interval"] = ["10s"]
    broken["services"]["collector"]["portz"] = ["4318:4318"]
    errors = list(jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(broken))
    assert len(errors) >= 2


def test_every_mounted_path_and_build_file_exists() -> None:
    services = compose()["services"]
    mounted = []
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                mounted.append((name, source))
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
    assert len(mounted) >= 6
    for name, source in mounted:
        assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    dockerfile = (ROOT / "collector/Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"collector/Dockerfile copies {source}, which does not exist"


def test_services_are_health_checked_and_dependencies_defined() -> None:
    services = compose()["services"]
    for name in ("clickhouse", "collector", "grafana", "alertmanager", "otel-llm-collector-0"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            if how.get("condition") == "service_healthy":
                assert services[dependency].get("healthcheck"), (name, dependency)


def test_the_gateway_routes_to_the_scale_out_collectors() -> None:
    services = compose()["services"]
    gateway = yaml.safe_load((ROOT / "collector/gateway.yaml").read_text())
    hosts = gateway["exporters"]["loadbalancing"]["resolver"]["static"]["hostnames"]
    assert [h.split(":")[0] for h in hosts] == ["otel-llm-collector-0", "otel-llm-collector-1"]
    for host in hosts:
        assert services[host.split(":")[0]]["profiles"] == ["scale-out"]
    assert gateway["exporters"]["loadbalancing"]["routing_attributes"] == ["otel_llm.task.id"]
    assert services["gateway"]["profiles"] == ["scale-out"]


def test_compose_collector_config_is_a_valid_collector_config() -> None:
    from otel_llm.collector.config import parse_config

    data = yaml.safe_load((ROOT / "collector/config.compose.yaml").read_text())
    data["processors"]["budget"]["policy_file"] = str(ROOT / "collector/policy.compose.yaml")
    config = parse_config(data, "collector/config.compose.yaml")
    assert config.storage.backend == "clickhouse"
    assert config.storage.url == "http://clickhouse:8123"
    assert config.receivers.otlp.http.endpoint == "0.0.0.0:4318"

"""The collector's typed configuration: defaults in one place, errors that name the file
and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_llm.collector.config import Config, ConfigError, load_config, parse_config


def error_of(data, source: str = "config.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source)
    return str(caught.value)


def test_defaults_are_the_documented_ones():
    config = load_config(None)
    otlp = config.receivers.otlp
    assert (otlp.grpc.endpoint, otlp.http.endpoint) == ("127.0.0.1:4317", "127.0.0.1:4318")
    assert otlp.max_request_bytes == 20 * 1024 * 1024
    assert config.storage.backend == "chdb"
    assert config.storage.path == ".otel-llm/clickhouse"
    assert config.state.dir == ".otel-llm/collector"
    assert config.processors.budget.decision_cache_size > config.processors.budget.max_active_tasks
    assert config.auth.token() is None
    assert config == Config()


def test_a_partial_section_keeps_the_other_defaults_of_that_section():
    config = parse_config({"receivers": {"otlp": {"grpc": {"enabled": False}, "max_concurrent_requests": 4}}})
    assert config.receivers.otlp.grpc.endpoint == "127.0.0.1:4317"
    assert config.receivers.otlp.grpc.enabled is False
    assert config.receivers.otlp.http.endpoint == "127.0.0.1:4318"
    assert config.receivers.otlp.max_concurrent_requests == 4
    assert config.receivers.otlp.max_request_bytes == 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"receivers": {"otlp": {"max_request_bytes": "big"}}},
            'config.yaml: receivers.otlp.max_request_bytes: expected an integer > 0, got "big"',
        ),
        (
            {"receivers": {"otlp": {"http": {"endpont": "x"}}}},
            "config.yaml: receivers.otlp.http.endpont: unknown key; expected one of enabled, endpoint",
        ),
        (
            {"receivers": {"otlp": {"http": {"endpoint": "4318"}}}},
            "config.yaml: receivers.otlp.http.endpoint: expected host:port, got '4318'",
        ),
        (
            {"processors": {"budget": {"idle_timeout": 0}}},
            "config.yaml: processors.budget.idle_timeout: expected a number > 0 (seconds), got 0",
        ),
        (
            {"processors": {"budget": {"max_active_tasks": 10, "decision_cache_size": 5}}},
            "config.yaml: processors.budget.decision_cache_size: expected at least max_active_tasks (10), "
            "got 5",
        ),
        (
            {"processors": {"budget": {"price_unpriced_spans": "yes"}}},
            'config.yaml: processors.budget.price_unpriced_spans: expected true or false, got "yes"',
        ),
        (
            {"exporters": {"otlp": {"endpoint": "collector:4318"}}},
            "config.yaml: exporters.otlp.endpoint: expected an http(s):// URL",
        ),
        (
            {"exporters": {"otlp": {"signals": ["traces", "profiles"]}}},
            "config.yaml: exporters.otlp.signals: unknown signal 'profiles'",
        ),
        (
            {"alerts": {"link_template": "http://grafana/d/x"}},
            "config.yaml: alerts.link_template: expected a URL containing {task_id}",
        ),
        (
            {"auth": {"bearer_token_env": "OTEL_LLM_TEST_NO_SUCH_VARIABLE"}},
            "config.yaml: auth.bearer_token_env: $OTEL_LLM_TEST_NO_SUCH_VARIABLE is not set",
        ),
        (
            {"storage": {"backend": "postgres"}},
            "config.yaml: storage.backend must be 'chdb' or 'clickhouse', got 'postgres'",
        ),
        (
            {"receivers": {"otlp": {"grpc": {"enabled": False}, "http": {"enabled": False}}}},
            "config.yaml: receivers.otlp: enable grpc or http (or both)",
        ),
        ({"control": []}, "config.yaml: control: expected a mapping, got a list"),
        (["receivers"], "config.yaml: (top level): expected a mapping, got a list"),
    ],
)
def test_errors_name_the_file_and_the_key(data, message):
    assert error_of(data) == message


def test_a_file_that_is_not_yaml_or_not_there(tmp_path: Path):
    bad = tmp_path / "config.yaml"
    bad.write_text("receivers:\n  otlp: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config.yaml: not valid YAML at line 3, column 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"cannot read the collector config"):
        load_config(tmp_path / "missing.yaml")


def test_the_token_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_LLM_TEST_TOKEN", "t0k3n")
    config = parse_config({"auth": {"bearer_token_env": "OTEL_LLM_TEST_TOKEN"}})
    assert config.auth.token() == "t0k3n"
    assert "t0k3n" not in repr(config)

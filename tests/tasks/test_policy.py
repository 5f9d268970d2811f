"""The budget policy file and the environment limits: parsing, exact error messages,
matching, precedence (task kwargs > matching policy > environment)."""

from __future__ import annotations

import textwrap

import pytest

import otel_llm
from otel_llm import tasks
from otel_llm.policy import (
    BudgetConfig,
    Limits,
    PolicyError,
    config_from_env,
    load_policy_file,
    parse_policy,
)

GOOD = """\
warn_at: 0.7
policies:
  - name: coding-agent
    match: {service.name: coding-agent}
    per_task: {max_usd: 0.50, max_tokens: 400000, max_iterations: 30, max_seconds: 600, max_tool_calls: 100}
    on_exceed: kill
  - name: research
    match: {task.name: "research-*"}
    per_task: {max_usd: 2, max_iterations: 10}
    on_exceed: alert
    warn_at: 0.9
  - name: tenant-daily
    match: {tenant: "*"}
    group_by: tenant
    window: 1d
    max_usd: 100
alerts:
  webhook: {url: http://127.0.0.1:9000/hook}
  alertmanager: {url: http://127.0.0.1:9093}
"""


def write(tmp_path, text: str, name: str = "policy.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_file_parses_to_the_values_written(tmp_path):
    policy = load_policy_file(write(tmp_path, GOOD))
    assert policy.warn_at == 0.7
    coding, research, daily = policy.policies
    assert coding.per_task == Limits(
        max_usd=0.5, max_tokens=400000, max_iterations=30, max_seconds=600, max_tool_calls=100
    )
    assert coding.on_exceed == "kill"
    assert research.on_exceed == "alert"
    assert research.warn_at == 0.9
    assert (daily.group_by, daily.window, daily.window_seconds, daily.max_usd) == (
        "tenant",
        "1d",
        86400.0,
        100.0,
    )
    assert daily.per_task is None
    assert policy.alerts.webhook_url == "http://127.0.0.1:9000/hook"
    assert policy.alerts.alertmanager_url == "http://127.0.0.1:9093"
    assert policy.alerts.slack_url is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "policies:\n  - name: a\n    per_task: {max_usd: abc}\n",
            'policy.yaml: policies[0].per_task.max_usd: expected a number > 0, got "abc"',
        ),
        (
            "policies:\n  - name: a\n    per_task: {max_usd: '0.5'}\n",
            'policy.yaml: policies[0].per_task.max_usd: expected a number > 0, got "0.5"',
        ),
        (
            "policies:\n  - name: a\n    per_task: {max_iterations: 2.5}\n",
            "policy.yaml: policies[0].per_task.max_iterations: expected an integer > 0, got 2.5",
        ),
        (
            "policies:\n  - name: a\n    per_task: {max_tokens: -5}\n",
            "policy.yaml: policies[0].per_task.max_tokens: expected an integer > 0, got -5",
        ),
        (
            "policies:\n  - name: a\n    per_task: {max_usd: true}\n",
            "policy.yaml: policies[0].per_task.max_usd: expected a number > 0, got True",
        ),
        (
            "policies:\n  - name: a\n    per_task: {max_dollars: 1}\n",
            "policy.yaml: policies[0].per_task.max_dollars: unknown key; expected one of "
            "max_usd, max_tokens, max_iterations, max_seconds, max_tool_calls",
        ),
        (
            "policies:\n  - name: a\n    per_task: {max_usd: 1}\n    on_exceed: explode\n",
            'policy.yaml: policies[0].on_exceed: expected kill or alert, got "explode"',
        ),
        (
            "warn_at: 1.5\n",
            "policy.yaml: warn_at: expected a number > 0 and <= 1, got 1.5",
        ),
        (
            "policies:\n  - per_task: {max_usd: 1}\n",
            "policy.yaml: policies[0].name: expected a non-empty string, got nothing",
        ),
        (
            "policies:\n  - {name: a, per_task: {max_usd: 1}}\n  - {name: a, per_task: {max_usd: 2}}\n",
            'policy.yaml: policies[1].name: expected a name no other policy has, got "a"',
        ),
        (
            "policies:\n  - name: a\n    match: tenant\n    per_task: {max_usd: 1}\n",
            'policy.yaml: policies[0].match: expected a mapping of attribute to value, got "tenant"',
        ),
        (
            "policies:\n  - {name: a, window: 1 day, max_usd: 5}\n",
            'policy.yaml: policies[0].window: expected a duration such as 30s, 5m, 1h, 1d or 1w, got "1 day"',
        ),
        (
            "policies:\n  - {name: a, window: 1d}\n",
            "policy.yaml: policies[0].max_usd: expected a value: a window budget needs both window and "
            "max_usd, got nothing",
        ),
        (
            "policies:\n  - {name: a, match: {tenant: x}}\n",
            "policy.yaml: policies[0]: expected per_task limits, or a window budget (window and max_usd), "
            "got a mapping",
        ),
        (
            "policies: {name: a}\n",
            "policy.yaml: policies: expected a list of policies, got a mapping",
        ),
        (
            "polices: []\n",
            "policy.yaml: polices: unknown key; expected one of warn_at, policies, alerts, collector_url",
        ),
        (
            "alerts:\n  webhook: {url: ftp://x}\n",
            'policy.yaml: alerts.webhook.url: expected an http:// or https:// URL, got "ftp://x"',
        ),
        (
            "- just\n- a list\n",
            "policy.yaml: expected a mapping with warn_at, policies, alerts, got a list",
        ),
    ],
)
def test_bad_file_names_the_key_and_what_was_expected(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as error:
        load_policy_file(path)
    assert str(error.value) == message.replace("policy.yaml", str(path))


def test_unreadable_and_invalid_yaml_files_are_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match=r"nope.yaml: cannot read the budget policy file: No such file"):
        load_policy_file(missing)
    broken = write(tmp_path, "policies: [\n", "broken.yaml")
    with pytest.raises(PolicyError, match=r"broken.yaml: not valid YAML at line 2, column 1"):
        load_policy_file(broken)


def test_environment_limits_and_their_errors():
    config = config_from_env(
        {
            "OTEL_LLM_MAX_USD": "0.25",
            "OTEL_LLM_MAX_TOKENS": "1000",
            "OTEL_LLM_MAX_ITERATIONS": "5",
            "OTEL_LLM_MAX_SECONDS": "30",
            "OTEL_LLM_WARN_AT": "0.5",
            "OTEL_LLM_ON_EXCEED": "alert",
        }
    )
    assert config.env_limits == Limits(max_usd=0.25, max_tokens=1000, max_iterations=5, max_seconds=30.0)
    assert (config.env_warn_at, config.env_on_exceed) == (0.5, "alert")
    with pytest.raises(PolicyError) as error:
        config_from_env({"OTEL_LLM_MAX_USD": "abc"})
    assert str(error.value) == 'OTEL_LLM_MAX_USD: expected a number > 0, got "abc"'
    with pytest.raises(PolicyError) as error:
        config_from_env({"OTEL_LLM_MAX_ITERATIONS": "2.5"})
    assert str(error.value) == 'OTEL_LLM_MAX_ITERATIONS: expected an integer > 0, got "2.5"'
    with pytest.raises(PolicyError) as error:
        config_from_env({"OTEL_LLM_ON_EXCEED": "panic"})
    assert str(error.value) == 'OTEL_LLM_ON_EXCEED: expected kill or alert, got "panic"'
    assert config_from_env({}).empty


def test_policy_file_named_by_the_environment_is_loaded(tmp_path):
    path = write(tmp_path, GOOD)
    config = config_from_env({"OTEL_LLM_BUDGETS": str(path), "OTEL_LLM_MAX_SECONDS": "99"})
    assert config.policy.source == str(path)
    resolved = config.resolve("anything", {}, {"service.name": "coding-agent"})
    assert resolved.limits.max_seconds == 600  # the policy wins over the environment
    assert resolved.policies == ("coding-agent",)


def test_matching_by_resource_task_name_and_task_attributes():
    policy = parse_policy(
        {
            "policies": [
                {"name": "svc", "match": {"service.name": "coding-agent"}, "per_task": {"max_usd": 1}},
                {"name": "research", "match": {"task.name": "research-*"}, "per_task": {"max_usd": 0.5}},
                {"name": "acme", "match": {"tenant": "acme"}, "per_task": {"max_iterations": 3}},
            ]
        }
    )
    config = BudgetConfig(policy=policy, env_limits=Limits(max_tokens=5000))
    only_env = config.resolve("other", {}, {"service.name": "x"})
    assert (only_env.limits, only_env.policies) == (Limits(max_tokens=5000), ())
    both = config.resolve("research-web", {"tenant": "acme"}, {"service.name": "coding-agent"})
    assert both.limits == Limits(max_usd=0.5, max_tokens=5000, max_iterations=3)
    assert both.policies == ("svc", "research", "acme")
    assert both.on_exceed == "kill"


def test_explicit_task_arguments_override_the_policy(pipeline, tmp_path):
    tasks._reset_for_tests()
    try:
        path = write(tmp_path, GOOD)
        tasks.configure(environ={"OTEL_LLM_BUDGETS": str(path)}, tracer_provider=pipeline.tracer_provider)
        with otel_llm.task("research-web", max_iterations=50) as t:
            pass
        # research policy: max_usd 2 and max_iterations 10, alert, warn 0.9 (over the file's 0.7)
        assert t.limits == Limits(max_usd=2.0, max_iterations=50)
        assert t.warn_at == 0.9
        span = pipeline.span("invoke_agent research-web")
        assert span.attributes["otel_llm.budget.policies"] == ("research",)
        assert span.attributes["otel_llm.budget.on_exceed"] == "alert"
        assert span.attributes["otel_llm.budget.max_iterations"] == 50
    finally:
        tasks._reset_for_tests()


def test_bad_environment_fails_when_the_first_task_starts(monkeypatch, pipeline):
    tasks._reset_for_tests()
    monkeypatch.setenv("OTEL_LLM_MAX_USD", "lots")
    try:
        with pytest.raises(PolicyError, match='OTEL_LLM_MAX_USD: expected a number > 0, got "lots"'):
            tasks.enable_auto_tasks(tracer_provider=pipeline.tracer_provider)
    finally:
        tasks._reset_for_tests()

"""The policy file's ``alerts:`` section: every option parsed to its value, every mistake
named by its key, and no secret shown in an error."""

from __future__ import annotations

import pytest
import yaml

from otel_llm.collector.alerts import Alerter
from otel_llm.policy import Alerts, PolicyError, parse_policy, redact_url


def parse(text: str) -> Alerts:
    return parse_policy(yaml.safe_load(text), "policy.yaml").alerts


def test_every_alert_option_is_parsed() -> None:
    alerts = parse(
        """
alerts:
  webhook: {url: https://ops.example/hook, headers: {Authorization: Bearer s3cret}}
  slack: {url: https://hooks.slack.com/services/T0/B0/XYZ}
  alertmanager: {url: http://127.0.0.1:9093, headers: {X-Scope-OrgID: team-a}, resolve_after: 2h}
  retry: {attempts: 7, initial_backoff: 0.25, max_backoff: 1m}
  timeout: 2.5
  queue_size: 50
""".replace("250ms", "0.25")
    )
    assert alerts == Alerts(
        webhook_url="https://ops.example/hook",
        slack_url="https://hooks.slack.com/services/T0/B0/XYZ",
        alertmanager_url="http://127.0.0.1:9093",
        webhook_headers={"Authorization": "Bearer s3cret"},
        alertmanager_headers={"X-Scope-OrgID": "team-a"},
        resolve_after=7200.0,
        timeout=2.5,
        attempts=7,
        initial_backoff=0.25,
        max_backoff=60.0,
        queue_size=50,
    )
    assert alerts.targets == ("webhook", "slack", "alertmanager")


def test_defaults() -> None:
    alerts = parse("alerts: {alertmanager: {url: http://am:9093}}")
    assert (alerts.targets, alerts.resolve_after, alerts.timeout, alerts.attempts) == (
        ("alertmanager",),
        3600.0,
        5.0,
        5,
    )
    assert (alerts.initial_backoff, alerts.max_backoff, alerts.queue_size) == (0.5, 30.0, 1000)
    assert parse("warn_at: 0.5").targets == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "alerts: {slack: {url: hooks.slack.com/services/T0/B0/secret}}",
            'policy.yaml: alerts.slack.url: expected an http:// or https:// URL, got "hooks...."',
        ),
        (
            "alerts: {slack: {url: https://hooks.slack.com/services/T0/B0/secret, headers: {a: b}}}",
            "policy.yaml: alerts.slack.headers: unknown key; expected one of url",
        ),
        (
            "alerts: {webhook: {url: http://x/hook, resolve_after: 1h}}",
            "policy.yaml: alerts.webhook.resolve_after: unknown key; expected one of url, headers",
        ),
        (
            "alerts: {webhook: {url: http://x/hook, headers: [a]}}",
            "policy.yaml: alerts.webhook.headers: expected a mapping of header name to value, got a list",
        ),
        (
            'alerts: {webhook: {url: http://x/hook, headers: {"bad header": x}}}',
            'policy.yaml: alerts.webhook.headers: "bad header" is not a valid header name',
        ),
        (
            "alerts: {webhook: {url: http://x/hook, headers: {Authorization: 42}}}",
            "policy.yaml: alerts.webhook.headers.Authorization: expected a non-empty one-line string",
        ),
        (
            "alerts: {alertmanager: {url: http://am:9093, resolve_after: soon}}",
            "policy.yaml: alerts.alertmanager.resolve_after: expected a number of seconds > 0 or a "
            'duration such as 30s, 5m, 1h, got "soon"',
        ),
        (
            "alerts: {retry: {attempts: 0}}",
            "policy.yaml: alerts.retry.attempts: expected an integer > 0, got 0",
        ),
        (
            "alerts: {retry: {tries: 3}}",
            "policy.yaml: alerts.retry.tries: unknown key; expected one of attempts, initial_backoff, "
            "max_backoff",
        ),
        (
            "alerts: {retry: {initial_backoff: 10, max_backoff: 5}}",
            "policy.yaml: alerts.retry.max_backoff: expected at least initial_backoff (10 s), got 5",
        ),
        (
            "alerts: {retry: {initial_backoff: 60}}",
            "policy.yaml: alerts.retry.initial_backoff: expected at most max_backoff (30 s), got 60",
        ),
        (
            "alerts: {timeout: -1}",
            "policy.yaml: alerts.timeout: expected a number of seconds > 0 or a "
            "duration such as 30s, 5m, 1h, got -1",
        ),
        ("alerts: {queue_size: 1.5}", "policy.yaml: alerts.queue_size: expected an integer > 0, got 1.5"),
        (
            "alerts: {pagerduty: {url: http://x}}",
            "policy.yaml: alerts.pagerduty: unknown key; expected one of webhook, slack, alertmanager, "
            "retry, timeout, queue_size",
        ),
    ],
)
def test_mistakes_name_the_key(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse(text)
    assert str(error.value) == message
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/..."),
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        ("http://127.0.0.1:9093/", "http://127.0.0.1:9093"),
        ("http://user:pw@hook.example:8080/x?token=1", "http://...@hook.example:8080/..."),
        ("http://[::1]:9093/api/v2/alerts", "http://[::1]:9093/..."),
        ("https://ops.example?token=abc", "https://ops.example/..."),
        ("not a url at all", "not a ..."),
    ],
)
def test_redact_url_keeps_scheme_and_host_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_and_headers_can_come_from_the_environment() -> None:
    alerts = parse(
        """
alerts:
  slack: {url: "${SLACK_WEBHOOK_URL}"}
  webhook: {url: "https://ops.example/hook/${HOOK_ID}", headers: {Authorization: "Bearer ${HOOK_TOKEN}"}}
"""
    )
    assert alerts.slack_url == "${SLACK_WEBHOOK_URL}"  # the agent side never expands it
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ",
        "HOOK_ID": "42",
        "HOOK_TOKEN": "s3cret",
    }
    expanded = alerts.expanded(env)
    assert expanded.slack_url == "https://hooks.slack.com/services/T0/B0/XYZ"
    assert expanded.webhook_url == "https://ops.example/hook/42"
    assert expanded.webhook_headers == {"Authorization": "Bearer s3cret"}


def test_an_unset_variable_stops_the_alerter_naming_the_key(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OTEL_LLM_TEST_UNSET", raising=False)
    alerts = parse('alerts: {slack: {url: "${OTEL_LLM_TEST_UNSET}"}}')
    with pytest.raises(PolicyError) as error:
        Alerter(alerts, state_dir=tmp_path, link_template=None)
    assert str(error.value) == "alerts.slack.url: environment variable OTEL_LLM_TEST_UNSET is not set"
    monkeypatch.setenv("OTEL_LLM_TEST_UNSET", "hooks.slack.com/services/T0/B0/secret")
    with pytest.raises(PolicyError) as error:
        Alerter(alerts, state_dir=tmp_path, link_template=None)
    assert str(error.value) == (
        'alerts.slack.url: expected an http:// or https:// URL, got "hooks...." from the environment'
    )

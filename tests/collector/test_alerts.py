"""The alerter against a local webhook receiver (aiohttp on 127.0.0.1): the exact
generic-webhook and Slack bodies, once per task and threshold across restarts, retries
with backoff, a dead target that holds up nobody, and counted overflow."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.alerts import window_alert
from support.storage import wait_until
from support.webhook_receiver import Receiver

from otel_llm.collector.alerts import STATE_FILE, Alerter, BudgetAlert
from otel_llm.collector.selfmetrics import SelfMetrics
from otel_llm.policy import Alerts

AT = datetime(2026, 12, 4, 15, 40, tzinfo=UTC).timestamp()
DAY = datetime(2026, 12, 4, tzinfo=UTC).timestamp()
TASK = "4bf92f3577b34da6a3ce929d0e0e4736"
KILL = BudgetAlert(
    kind="kill",
    policy="coding-agent",
    limit="max_usd",
    spent=0.52,
    value=0.5,
    threshold=1.0,
    task_id=TASK,
    task_name="fix-bug",
    service="coding-agent",
    at=AT,
)
WARN = BudgetAlert(
    "warn", "coding-agent", "max_usd", 0.41, 0.5, 0.8, task_id=TASK, task_name="fix-bug", at=AT
)
WINDOW = window_alert(DAY, AT)
LINK = "https://grafana.example/d/otel-llm-tasks?var-task_id={task_id}"
FAST = {"timeout": 2.0, "initial_backoff": 0.02, "max_backoff": 0.2}


def sample(metrics: SelfMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def closing() -> Iterator[list[Alerter]]:
    """Alerters to close at the end of the test, even when it fails."""
    made: list[Alerter] = []
    yield made
    for alerter in made:
        alerter.close(timeout=0.5)


def make(closing: list[Alerter], alerts: Alerts, state_dir: Path, **kwargs) -> Alerter:
    alerter = Alerter(alerts, state_dir=state_dir, link_template=LINK, **kwargs)
    closing.append(alerter)
    return alerter


def test_webhook_gets_the_documented_json_body(receiver: Receiver, tmp_path: Path, closing) -> None:
    alerts = Alerts(webhook_url=receiver.url("/hook"), webhook_headers={"Authorization": "Bearer s3cret"})
    alerter = make(closing, alerts, tmp_path)
    alerter.start()
    alerter.send(KILL)
    (request,) = receiver.wait_for("/hook", 1)
    assert request.body == {
        "schema": "otel-llm.budget-alert/v1",
        "kind": "kill",
        "severity": "critical",
        "title": "Task killed: fix-bug",
        "description": 'Task "fix-bug" (4bf92f3577b34da6a3ce929d0e0e4736) has used $0.52 of its max_usd '
        "limit of $0.50 (104%) under policy coding-agent. The task is stopped: its next model call "
        "raises BudgetExceeded.",
        "policy": "coding-agent",
        "limit": "max_usd",
        "unit": "USD",
        "spent": 0.52,
        "value": 0.5,
        "threshold": 1.0,
        "percent": 104.0,
        "task": {"id": TASK, "name": "fix-bug"},
        "service": "coding-agent",
        "group": None,
        "window": None,
        "at": "2026-12-04T15:40:00.000Z",
        "link": f"https://grafana.example/d/otel-llm-tasks?var-task_id={TASK}",
        "dedup_key": f"task:{TASK}|max_usd|1|kill",
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer s3cret"
    expected_key = hashlib.sha256(f"task:{TASK}|max_usd|1|kill".encode()).hexdigest()[:32]
    assert request.headers["Idempotency-Key"] == expected_key
    assert request.headers["User-Agent"].startswith("otel-llm/")


def test_webhook_body_of_a_window_budget(receiver: Receiver, tmp_path: Path, closing) -> None:
    alerter = make(closing, Alerts(webhook_url=receiver.url("/hook")), tmp_path)
    alerter.start()
    alerter.send(WINDOW)
    (request,) = receiver.wait_for("/hook", 1)
    body = request.body
    assert body["task"] is None
    assert body["group"] == "tenant=acme"
    assert body["window"] == {
        "name": "1d",
        "start": "2026-12-04T00:00:00.000Z",
        "end": "2026-12-05T00:00:00.000Z",
    }
    assert (body["kind"], body["percent"], body["spent"], body["value"]) == (
        "window_exceeded",
        100.25,
        100.25,
        100.0,
    )
    assert body["description"] == (
        "Group tenant=acme has used $100.25 of its 1d max_usd limit of $100.00 (100.2%) "
        "under policy tenant-daily."
    )
    assert body["dedup_key"] == f"window:tenant-daily:tenant=acme@{DAY:.3f}|max_usd|1|window_exceeded"


def test_slack_gets_text_and_blocks(receiver: Receiver, tmp_path: Path, closing) -> None:
    alerter = make(closing, Alerts(slack_url=receiver.url("/services/T000/B000/XXXX")), tmp_path)
    alerter.start()
    # Slack's mrkdwn control characters in a task name are escaped (not in the plain-text header).
    alerter.send(
        BudgetAlert(
            "warn",
            "coding-agent",
            "max_tokens",
            320000,
            400000,
            0.8,
            task_id="t1",
            task_name="a<b & c",
            at=AT,
        )
    )
    (request,) = receiver.wait_for("/services/T000/B000/XXXX", 1)
    link = "https://grafana.example/d/otel-llm-tasks?var-task_id=t1"
    assert request.body == {
        "text": "Budget warning: a&lt;b &amp; c: 320,000 tokens of 400,000 tokens max_tokens (80%)",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": ":warning: Budget warning: a<b & c", "emoji": True},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": 'Task "a&lt;b &amp; c" (t1) has used 320,000 tokens of its max_tokens limit of '
                    "400,000 tokens (80%) under policy coding-agent, past the warning threshold of 80%.",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Spent*\n320,000 tokens"},
                    {"type": "mrkdwn", "text": "*Limit*\nmax_tokens 400,000 tokens"},
                    {"type": "mrkdwn", "text": "*Used*\n80%"},
                    {"type": "mrkdwn", "text": "*Policy*\ncoding-agent"},
                    {"type": "mrkdwn", "text": "*Task*\nt1"},
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"<{link}|Open in Grafana> · otel-llm · "
                        "<!date^1796398800^{date_short_pretty} {time_secs}|2026-12-04 15:40:00 UTC>",
                    }
                ],
            },
        ],
    }


def test_each_alert_is_sent_once_even_across_a_restart(receiver: Receiver, tmp_path: Path, closing) -> None:
    alerts = Alerts(webhook_url=receiver.url("/hook"), slack_url=receiver.url("/slack"))
    metrics = SelfMetrics()
    first = make(closing, alerts, tmp_path, metrics=metrics)
    first.start()
    first.send(KILL)
    first.send(KILL)
    receiver.wait_for("/hook", 1)
    receiver.wait_for("/slack", 1)
    first.close()
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert list(saved["alerts"]) == [KILL.dedup_key]
    assert "pending" not in saved["alerts"][KILL.dedup_key]

    again = make(closing, alerts, tmp_path, metrics=metrics)
    again.start()
    again.send(KILL)  # the restarted collector sees the same task cross the same limit
    again.send(WARN)  # another threshold of the same task is another alert
    receiver.wait_for("/hook", 2)
    again.close()
    assert [r.body["kind"] for r in receiver.requests("/hook")] == ["kill", "warn"]
    assert [r.body["text"][:14] for r in receiver.requests("/slack")] == ["Task killed: f", "Budget warning"]
    assert sample(metrics, "otel_llm_collector_deduplicated_alerts_total") == 2
    assert sample(metrics, "otel_llm_collector_sent_alerts_total", target="webhook") == 2
    assert sample(metrics, "otel_llm_collector_sent_alerts_total", target="slack") == 2


def test_an_alert_left_undelivered_is_delivered_by_the_next_collector(
    receiver: Receiver, tmp_path: Path, closing
) -> None:
    receiver.fail("/hook", 1000)
    alerts = Alerts(webhook_url=receiver.url("/hook"), **FAST, attempts=50)
    first = make(closing, alerts, tmp_path)
    first.start()
    first.send(KILL)
    receiver.wait_for("/hook", 2)
    first.close(timeout=0.2)  # still retrying: it stays owed
    saved = json.loads((tmp_path / STATE_FILE).read_text())["alerts"][KILL.dedup_key]
    assert saved["pending"] == ["webhook"]
    assert saved["alert"]["task_id"] == TASK

    failed_posts = len(receiver.requests("/hook"))
    receiver.fail("/hook", 0)
    second = make(closing, alerts, tmp_path)
    second.start()  # nothing is sent: the owed alert goes out by itself
    delivered = receiver.wait_for("/hook", failed_posts + 1)[failed_posts]
    assert delivered.body["dedup_key"] == KILL.dedup_key
    second.close()
    saved = json.loads((tmp_path / STATE_FILE).read_text())["alerts"][KILL.dedup_key]
    assert "pending" not in saved


def test_retries_with_growing_backoff_until_the_target_answers(
    receiver: Receiver, tmp_path: Path, closing, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.fail("/hook", 3, status=503)
    metrics = SelfMetrics()
    alerts = Alerts(webhook_url=receiver.url("/hook"), timeout=2.0, initial_backoff=0.05, max_backoff=1.0)
    alerter = make(closing, alerts, tmp_path, metrics=metrics)
    with caplog.at_level(logging.INFO, logger="otel_llm.collector.alerts"):
        alerter.start()
        alerter.send(KILL)
        posts = receiver.wait_for("/hook", 4)
        alerter.close()
    assert len(receiver.requests("/hook")) == 4
    assert {json.dumps(p.body, sort_keys=True) for p in posts} == {json.dumps(posts[0].body, sort_keys=True)}
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
    # Each delay is drawn from [d/2, d] with d = 0.05, 0.1, 0.2 s.
    assert [gap >= low for gap, low in zip(gaps, (0.025, 0.05, 0.1), strict=True)] == [True] * 3
    assert sample(metrics, "otel_llm_collector_alert_retries_total", target="webhook") == 3
    assert sample(metrics, "otel_llm_collector_sent_alerts_total", target="webhook") == 1
    assert sample(metrics, "otel_llm_collector_failed_alerts_total", target="webhook") == 0
    records = [r for r in caplog.records if r.name == "otel_llm.collector.alerts"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        (
            "WARNING",
            f"otel-llm alerts: webhook target http://127.0.0.1:{receiver.port}/... failed: "
            "HTTP 503 try later (retrying up to 4 more times); further failures of this target are not "
            "logged until it delivers again",
        ),
        ("INFO", f"otel-llm alerts: webhook target http://127.0.0.1:{receiver.port}/... delivers again"),
    ]


def test_retry_after_is_honoured(receiver: Receiver, tmp_path: Path, closing) -> None:
    receiver.fail("/hook", 1, status=429, retry_after="0.3")
    alerts = Alerts(webhook_url=receiver.url("/hook"), timeout=2.0, initial_backoff=0.01, max_backoff=1.0)
    alerter = make(closing, alerts, tmp_path)
    alerter.start()
    alerter.send(KILL)
    first, second = receiver.wait_for("/hook", 2)
    assert second.at - first.at >= 0.3


def test_gives_up_on_a_final_answer_and_after_the_last_attempt(
    receiver: Receiver, tmp_path: Path, closing
) -> None:
    receiver.fail("/gone", 10, status=404)
    receiver.fail("/down", 10, status=502)
    metrics = SelfMetrics()
    alerts = Alerts(webhook_url=receiver.url("/gone"), slack_url=receiver.url("/down"), **FAST, attempts=3)
    alerter = make(closing, alerts, tmp_path, metrics=metrics)
    alerter.start()
    alerter.send(KILL)
    receiver.wait_for("/down", 3)
    alerter.close()
    assert len(receiver.requests("/gone")) == 1  # a 404 is not retried
    assert len(receiver.requests("/down")) == 3
    assert sample(metrics, "otel_llm_collector_failed_alerts_total", target="webhook") == 1
    assert sample(metrics, "otel_llm_collector_failed_alerts_total", target="slack") == 1
    assert sample(metrics, "otel_llm_collector_alert_retries_total", target="slack") == 2
    # Given up is final: not owed to the next collector.
    assert "pending" not in json.loads((tmp_path / STATE_FILE).read_text())["alerts"][KILL.dedup_key]


def test_a_dead_target_holds_up_neither_send_nor_the_other_targets(
    receiver: Receiver, tmp_path: Path, closing
) -> None:
    receiver.hang("/slack")  # accepts the connection, never answers
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/api"  # nothing listens there
    metrics = SelfMetrics()
    alerts = Alerts(
        webhook_url=receiver.url("/hook"),
        slack_url=receiver.url("/slack"),
        alertmanager_url=refused,
        timeout=60.0,
        attempts=100,
        initial_backoff=5.0,
        max_backoff=60.0,
        queue_size=2,
    )
    alerter = make(closing, alerts, tmp_path, metrics=metrics)
    alerter.start()
    alerter.send(KILL)
    receiver.wait_for("/slack", 1)  # in flight, and it stays so
    for i in range(6):
        alerter.send(BudgetAlert("warn", "p", "max_usd", 0.8, 1.0, 0.8, task_id=f"task-{i}", at=AT))
        # Each one reaches the healthy target while Slack still has not answered the first.
        receiver.wait_for("/hook", i + 2)
    assert len(receiver.requests("/slack")) == 1
    # Slack holds one in flight and two queued: the other four were dropped, and counted.
    assert sample(metrics, "otel_llm_collector_dropped_alerts_total", target="slack") == 4
    # The receiver sees the 7th post before the webhook worker has read its answer and counted it.
    wait_until(lambda: sample(metrics, "otel_llm_collector_sent_alerts_total", target="webhook") == 7)
    assert sample(metrics, "otel_llm_collector_sent_alerts_total", target="webhook") == 7
    assert sample(metrics, "otel_llm_collector_sent_alerts_total", target="slack") == 0


def test_a_full_hand_off_queue_drops_and_counts(receiver: Receiver, tmp_path: Path, closing) -> None:
    metrics = SelfMetrics()
    alerter = make(
        closing, Alerts(webhook_url=receiver.url("/hook"), queue_size=3), tmp_path, metrics=metrics
    )
    for i in range(5):  # before start() nothing drains the hand-off
        alerter.send(BudgetAlert("warn", "p", "max_usd", 0.8, 1.0, 0.8, task_id=f"task-{i}", at=AT))
    assert sample(metrics, "otel_llm_collector_dropped_alerts_total", target="all") == 2
    assert sample(metrics, "otel_llm_collector_queued_items", queue="alerts") == 3
    alerter.start()
    posts = receiver.wait_for("/hook", 3)
    alerter.close()
    assert [p.body["task"]["id"] for p in posts] == ["task-0", "task-1", "task-2"]
    assert sample(metrics, "otel_llm_collector_queued_items", queue="alerts") == 0
    # A dropped alert was not remembered: sent again later, it goes out.
    again = make(closing, Alerts(webhook_url=receiver.url("/hook")), tmp_path)
    again.start()
    again.send(BudgetAlert("warn", "p", "max_usd", 0.8, 1.0, 0.8, task_id="task-4", at=AT))
    assert receiver.wait_for("/hook", 4)[3].body["task"]["id"] == "task-4"


def test_secret_webhook_paths_never_reach_the_log(
    receiver: Receiver, tmp_path: Path, closing, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "/services/T0001/B0001/aSecretToken123"
    receiver.fail(secret, 5, status=403)
    alerter = make(closing, Alerts(slack_url=receiver.url(secret), **FAST), tmp_path)
    with caplog.at_level(logging.DEBUG):
        alerter.start()
        alerter.send(KILL)
        receiver.wait_for(secret, 1)
        alerter.close()
    assert "aSecretToken123" not in caplog.text
    assert (
        f"slack target http://127.0.0.1:{receiver.port}/... failed: HTTP 403 try later (not retried)"
        in caplog.text
    )
    assert "aSecretToken123" not in repr(Alerts(slack_url=receiver.url(secret)))


def test_send_after_close_is_dropped_and_counted(tmp_path: Path) -> None:
    metrics = SelfMetrics()
    alerter = Alerter(
        Alerts(webhook_url="http://127.0.0.1:9/hook"), state_dir=tmp_path, link_template=None, metrics=metrics
    )
    alerter.start()
    alerter.close()
    alerter.send(KILL)
    assert sample(metrics, "otel_llm_collector_dropped_alerts_total", target="all") == 1


def test_a_corrupt_state_file_is_set_aside(receiver: Receiver, tmp_path: Path, closing, caplog) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    alerter = make(closing, Alerts(webhook_url=receiver.url("/hook")), tmp_path)
    assert (tmp_path / "alerts.json.corrupt").read_text() == "{not json"
    assert "is not a valid alerts state file" in caplog.text
    alerter.start()
    alerter.send(KILL)
    receiver.wait_for("/hook", 1)


def test_link_template_placeholders_are_url_encoded(tmp_path: Path) -> None:
    template = "http://g:3000/d/t?var-task_id={task_id}&var-name={task_name}&var-group={group}&from={from_ms}&to={to_ms}"
    alerter = Alerter(Alerts(), state_dir=tmp_path, link_template=template)
    alert = BudgetAlert("warn", "p", "max_usd", 1, 2, 0.5, task_id="a/b c", task_name="x&y=1", at=AT)
    assert alerter.link(alert) == (
        "http://g:3000/d/t?var-task_id=a%2Fb%20c&var-name=x%26y%3D1&var-group="
        f"&from={int((AT - 3600) * 1000)}&to={int((AT + 600) * 1000)}"
    )
    # A window alert's range is its window.
    assert alerter.link(WINDOW).endswith(f"&from={int(DAY * 1000)}&to={int((DAY + 86400) * 1000)}")


def test_an_unknown_link_placeholder_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"alerts.link_template: unknown placeholder \{task\}; expected some of \{task_id\}"
    ):
        Alerter(Alerts(), state_dir=tmp_path, link_template="http://g/d/x?var-task_id={task}")


def test_percent_and_dedup_key() -> None:
    assert KILL.percent == pytest.approx(104.0)
    assert WARN.dedup_key == f"task:{TASK}|max_usd|0.8|warn"
    assert WINDOW.dedup_key == f"window:tenant-daily:tenant=acme@{DAY:.3f}|max_usd|1|window_exceeded"
    # Another window of the same group is another alert; the spend does not matter.
    next_day = BudgetAlert(
        "window_exceeded",
        "tenant-daily",
        "max_usd",
        130.0,
        100.0,
        1.0,
        group="tenant=acme",
        window="1d",
        window_start=DAY + 86400,
    )
    assert next_day.dedup_key != WINDOW.dedup_key
    assert BudgetAlert("kill", "p", "max_usd", 9.0, 0.5, 1.0, task_id=TASK).dedup_key == KILL.dedup_key
    assert BudgetAlert("manual_kill", "", "", 0.0, 0.0, 1.0, task_id=TASK).percent == 0.0


def test_old_keys_are_forgotten_past_the_cap(receiver: Receiver, tmp_path: Path, closing) -> None:
    alerter = make(closing, Alerts(webhook_url=receiver.url("/hook")), tmp_path, max_remembered=2)
    alerter.start()
    alerts = [
        BudgetAlert("warn", "p", "max_usd", 0.8, 1.0, 0.8, task_id=f"task-{i}", at=AT + i) for i in range(4)
    ]
    for i, alert in enumerate(alerts):
        alerter.send(alert)
        receiver.wait_for("/hook", i + 1)
    alerter.close()
    # Sending the fourth forgot the two delivered keys that expire first.
    saved = json.loads((tmp_path / STATE_FILE).read_text())["alerts"]
    assert sorted(saved) == [alerts[2].dedup_key, alerts[3].dedup_key]
    again = make(closing, Alerts(webhook_url=receiver.url("/hook")), tmp_path, max_remembered=2)
    again.start()
    again.send(alerts[0])  # forgotten: sent again
    again.send(alerts[3])  # remembered: not
    assert receiver.wait_for("/hook", 5)[4].body["task"]["id"] == "task-0"
    again.close()
    assert len(receiver.requests("/hook")) == 5


def test_an_unwritable_state_dir_does_not_stop_alerts(
    receiver: Receiver, tmp_path: Path, closing, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the state directory should be")
    alerter = make(closing, Alerts(webhook_url=receiver.url("/hook")), blocked / "alerts")
    alerter.start()
    alerter.send(KILL)
    alerter.send(WARN)
    assert [r.body["kind"] for r in receiver.wait_for("/hook", 2)] == ["kill", "warn"]
    alerter.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "otel_llm.collector.alerts"]
    # Once when reading at start, once when writing (not once per write).
    assert len(warnings) == 2
    assert warnings[0].startswith(f"otel-llm alerts: cannot read {blocked / 'alerts' / STATE_FILE} (")
    assert warnings[0].endswith("earlier alerts may be sent again")
    assert warnings[1].startswith(f"otel-llm alerts: cannot write {blocked / 'alerts' / STATE_FILE} (")
    assert warnings[1].endswith("alerts go on, but a restart may repeat them")


def test_an_unknown_kind_is_dropped_and_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = SelfMetrics()
    alerter = Alerter(
        Alerts(webhook_url="http://127.0.0.1:9/hook"), state_dir=tmp_path, link_template=None, metrics=metrics
    )
    for _ in range(2):
        alerter.send(BudgetAlert("exceeded", "p", "max_usd", 2.0, 1.0, 1.0, task_id="t"))  # type: ignore[arg-type]
    alerter.close()
    assert sample(metrics, "otel_llm_collector_dropped_alerts_total", target="all") == 2
    assert [r.getMessage() for r in caplog.records] == [
        "otel-llm alerts: unknown alert kind 'exceeded' dropped; expected one of warn, kill, alert, "
        "window_warn, window_exceeded, manual_kill"
    ]

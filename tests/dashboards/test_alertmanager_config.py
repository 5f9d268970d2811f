"""alerts/alertmanager.yml is a valid Alertmanager config that routes the collector's
alert labels where it says (checked by the real amtool from the Debian package)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "alerts" / "alertmanager.yml"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


@pytest.fixture(scope="module")
def amtool() -> str:
    if not os.path.exists(AMTOOL):
        if os.environ.get("CI") == "true":
            pytest.fail("amtool missing: `make sysdeps` installs prometheus-alertmanager")
        pytest.skip("amtool not installed (make sysdeps)")
    return AMTOOL


def route(amtool: str, *labels: str) -> str:
    out = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return out.stdout.strip()


def test_config_is_valid(amtool: str) -> None:
    out = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=LLMTaskKilled", "source=otel-llm", "kind=kill", "task_id=t-1"), "oncall"),
        (("alertname=LLMTaskKilledManually", "source=otel-llm", "kind=manual_kill"), "oncall"),
        (("alertname=LLMWindowBudgetExceeded", "source=otel-llm", "kind=window_exceeded"), "finance"),
        (("alertname=LLMTaskBudgetWarning", "source=otel-llm", "kind=warn", "policy=coding-agent"), "team"),
        (("alertname=Cost per task p95 above its 7-day baseline", "source=otel-llm", "kind=drift"), "team"),
        # Grafana's kill count: the collector already paged oncall once per killed task.
        (("alertname=A budget killed a task", "source=otel-llm", "kind=kill_count"), "team"),
    ],
)  # fmt: skip
def test_collector_and_grafana_alerts_reach_their_receiver(
    amtool: str, labels: tuple[str, ...], receiver: str
) -> None:
    assert route(amtool, *labels) == receiver

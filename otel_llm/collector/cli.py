"""``otel-llm collector``, ``otel-llm tasks`` and ``otel-llm kill``.

The two clients find the collector at ``--url``, else ``$OTEL_LLM_COLLECTOR_URL``, else
``http://127.0.0.1:4318``, and send ``$OTEL_LLM_COLLECTOR_TOKEN`` as a bearer token
when it is set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from otel_llm.tasks.collector import ENV_COLLECTOR_TOKEN, ENV_COLLECTOR_URL

__all__ = ["ENV_TOKEN", "ENV_URL", "add_commands", "main"]

# The agent side's names for the collector's address and token: one definition.
ENV_URL = ENV_COLLECTOR_URL
ENV_TOKEN = ENV_COLLECTOR_TOKEN
DEFAULT_URL = "http://127.0.0.1:4318"


def add_commands(commands: Any) -> None:
    """Register the three subcommands on the ``otel-llm`` parser."""
    run = commands.add_parser(
        "collector", help="run the collector sidecar (OTLP in, budgets, ClickHouse out)"
    )
    run.add_argument("--config", metavar="PATH", help="collector config YAML (default: embedded defaults)")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    tasks = commands.add_parser("tasks", help="list the collector's live tasks, spend against limits")
    tasks.add_argument("--url", help=f"collector URL (default ${ENV_URL} or {DEFAULT_URL})")
    tasks.add_argument(
        "--state",
        choices=("ok", "warn", "exceeded", "killed", "finished", "all"),
        help="only tasks in this state",
    )
    tasks.add_argument("--limit", type=int, default=50)
    tasks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    kill = commands.add_parser("kill", help="stop a task: its next model call raises BudgetExceeded")
    kill.add_argument("task_id")
    kill.add_argument("--reason", default="", help="why (shown to the agent and in budget_events)")
    kill.add_argument("--url", help=f"collector URL (default ${ENV_URL} or {DEFAULT_URL})")


def _request(url: str | None, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    base = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
    headers = {"Accept": "application/json"}
    token = os.environ.get(ENV_TOKEN)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _against(limits: dict[str, float], limit: str, shown: str) -> str:
    return f"{shown} / {limits[limit]:g}" if limit in limits else shown


def _tasks(args: argparse.Namespace) -> int:
    query = {"limit": str(args.limit)}
    if args.state:
        query["state"] = args.state
    found = _request(args.url, "/v1/tasks?" + urllib.parse.urlencode(query))["tasks"]
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"otel-llm tasks ({len(found)})")
    for column in ("task", "name", "service", "state", "cost", "tokens", "calls", "tools", "seconds"):
        table.add_column(
            column, justify="right" if column in ("cost", "tokens", "calls", "tools", "seconds") else "left"
        )
    styles = {"ok": "green", "warn": "yellow", "exceeded": "red", "killed": "bold red"}
    for task in found:
        limits = task.get("limits", {})

        state = task["state"] + (" (done)" if task.get("finished") else "")
        table.add_row(
            task["task_id"],
            task.get("task_name") or "",
            task.get("service") or "",
            f"[{styles.get(task['state'], '')}]{state}[/]",
            _against(limits, "max_usd", _money(task["cost_usd"])),
            _against(limits, "max_tokens", f"{task['input_tokens'] + task['output_tokens']:,}"),
            _against(limits, "max_iterations", str(task["iterations"])),
            _against(limits, "max_tool_calls", str(task["tool_calls"])),
            _against(limits, "max_seconds", f"{task['seconds']:.1f}"),
        )
    console = Console()
    if not console.is_terminal:  # piped: do not wrap task ids at 80 columns
        console = Console(width=200)
    console.print(table)
    return 0


def _kill(args: argparse.Namespace) -> int:
    quoted = urllib.parse.quote(args.task_id, safe="")
    decision = _request(args.url, f"/v1/tasks/{quoted}/kill", "POST", {"reason": args.reason})
    print(f"killed task {decision['task_id']} (decision {decision['cursor']}): {decision['reason']}")
    return 0


def _collector(args: argparse.Namespace) -> int:
    from otel_llm.collector.config import ConfigError, load_config
    from otel_llm.collector.service import run
    from otel_llm.policy import PolicyError

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        return run(config)
    except (ConfigError, PolicyError) as exc:
        print(f"otel-llm collector: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"otel-llm collector: cannot start: {exc}", file=sys.stderr)
        return 1


def main(args: argparse.Namespace) -> int:
    try:
        if args.command == "collector":
            return _collector(args)
        if args.command == "tasks":
            return _tasks(args)
        if args.command == "kill":
            return _kill(args)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        print(f"otel-llm {args.command}: the collector answered {exc.code}: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"otel-llm {args.command}: cannot reach the collector: {exc}", file=sys.stderr)
        return 1
    return 2

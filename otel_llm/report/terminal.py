"""The report in the terminal, as rich tables."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from otel_llm.report.data import ReportData
from otel_llm.report.present import BEFORE_AFTER, DRIFT, TASK_COLUMNS, change, count, fmt, ratio, seconds, usd

__all__ = ["print_report"]


def _compare_table(title: str, rows: list[dict], a: str, b: str, a_label: str, b_label: str) -> Table:
    by_metric = {r["metric"]: r for r in rows}
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column(a_label, justify="right")
    table.add_column(b_label, justify="right")
    table.add_column("change", justify="right")
    for metric, label, kind, worse_up in BEFORE_AFTER if a == "a" else DRIFT:
        row = by_metric.get(metric)
        if row is None:
            continue
        delta = row["change"]
        style = ""
        if delta is not None and abs(delta) >= 0.1:
            style = "red" if (delta > 0) == worse_up else "green"
        table.add_row(
            label,
            fmt(kind, row[a]),
            fmt(kind, row[b]),
            f"[{style}]{change(delta)}[/]" if style else change(delta),
        )
    return table


def _has_baseline(data: ReportData) -> bool:
    """Whether the 7 days before the window hold any task (a drift table needs them)."""
    return any(r["metric"] == "tasks" and r["baseline"] for r in data.results["drift"])


def print_report(data: ReportData, console: Console | None = None) -> None:
    # Wide enough for the task table when the output is a file or a pipe (rich takes 80).
    console = console or Console(width=None if sys.stdout.isatty() else 140)
    s, t = data.one("summary"), data.one("task_cost")
    window = f"{data.start:%Y-%m-%d %H:%M} to {data.end:%Y-%m-%d %H:%M} UTC"
    console.rule(f"otel-llm report  {window}" + (f"  service {data.service}" if data.service else ""))
    head = Table.grid(padding=(0, 3))
    for _ in range(4):
        head.add_column()
        head.add_column(justify="right")
    head.add_row(
        "tasks",
        count(s.get("tasks")),
        "model calls",
        count(s.get("calls")),
        "cost",
        usd(s.get("cost_usd")),
        "errors",
        ratio(s.get("error_rate")),
    )
    head.add_row(
        "cost/task p50",
        usd(t.get("cost_p50_usd")),
        "cost/task p95",
        usd(t.get("cost_p95_usd")),
        "calls/task p50",
        count(t.get("calls_p50")),
        "calls/task p95",
        count(t.get("calls_p95")),
    )
    head.add_row(
        "cache hit",
        ratio(s.get("cache_hit_ratio")),
        "cache savings",
        usd(s.get("cache_savings_usd")),
        "cache read tok",
        count(s.get("cache_read_input_tokens")),
        "cache write tok",
        count(s.get("cache_creation_input_tokens")),
    )
    console.print(head)

    tasks = Table(title="Costliest tasks", title_justify="left")
    for _, label, _ in TASK_COLUMNS:
        tasks.add_column(
            label, justify="right" if label in ("calls", "input tok", "output tok", "cost") else "left"
        )
    for row in data.results["top_tasks"]:
        tasks.add_row(
            *[render(row.get(key)) if row.get(key) is not None else "-" for key, _, render in TASK_COLUMNS]
        )
    console.print(tasks)

    cache = Table(title=f"Prompt cache: net savings {usd(s.get('cache_savings_usd'))}", title_justify="left")
    for label in ("prefix", "calls", "hit ratio", "reads/write", "break-even", "net savings", "verdict"):
        cache.add_column(label, justify="left" if label in ("prefix", "verdict") else "right")
    for row in data.results["cache_by_prefix"]:
        verdict = (
            "loses money" if row["loses_money"] else ("pays off" if row["pays_off"] else "below break-even")
        )
        rpw = row["reads_per_write"]
        cache.add_row(
            row["prefix_hash"][:12],
            count(row["calls"]),
            ratio(row["cache_hit_ratio"]),
            "-" if rpw is None else f"{rpw:.2f}",
            "-"
            if row["break_even_reads_per_write_gross"] is None
            else f"{row['break_even_reads_per_write_gross']:.2f}",
            usd(row["cache_savings_usd"]),
            verdict,
        )
    console.print(cache)

    models = Table(title="Models", title_justify="left")
    for label in ("model", "calls", "share of calls", "cost", "share of cost"):
        models.add_column(label, justify="left" if label == "model" else "right")
    for row in data.results["model_mix"]:
        models.add_row(
            row["model"],
            count(row["calls"]),
            ratio(row["call_share"]),
            usd(row["cost_usd"]),
            ratio(row["cost_share"]),
        )
    esc = data.one("escalations")
    console.print(models)
    console.print(
        f"escalations: {count(esc.get('escalations'))} of {count(esc.get('transitions'))} follow-up calls "
        f"({ratio(esc.get('escalation_rate'))}) went to a dearer model"
    )
    ttft = data.results["ttft"]
    if ttft:
        console.print(
            "TTFT p95: " + ", ".join(f"{r['model']} {seconds(r['ttft_p95_seconds'])}" for r in ttft)
        )
    killed = data.results["killed_tasks"]
    if killed:
        kills = Table(title="Killed by a budget", title_justify="left")
        for label in ("task", "limit", "spent", "limit value", "cost at kill", "calls"):
            kills.add_column(label)
        for row in killed:
            kills.add_row(
                row["task_id"],
                row["limit_name"],
                count(row["spent"]),
                count(row["limit_value"]),
                usd(row["cost_at_kill_usd"]),
                count(row["calls_at_kill"]),
            )
        console.print(kills)
    if data.compare is not None:
        console.print(
            _compare_table(
                f"Before / after: {data.compare.before} -> {data.compare.after}",
                data.results["version_compare"],
                "a",
                "b",
                data.compare.before,
                data.compare.after,
            )
        )
    if _has_baseline(data):
        console.print(
            _compare_table(
                "Against the 7 days before", data.results["drift"], "baseline", "current", "baseline", "now"
            )
        )

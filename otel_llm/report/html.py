"""The report as one self-contained HTML page: Jinja2 for the page, Plotly for the
charts, with plotly.js embedded once in the page (it opens offline, no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from otel_llm.report import present
from otel_llm.report.data import ReportData

__all__ = ["render_html", "write_html"]

_PALETTE = ["#3b6fd8", "#e4794a", "#2fa37a", "#b250c4", "#d8b13b", "#5aa9c9", "#8a8f98", "#c94f6d"]
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 320,
    "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
    "font": {"family": "Inter, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#1f2937"},
    "legend": {"orientation": "h", "y": -0.2},
    "colorway": _PALETTE,
}


def _chart(fig: go.Figure, div_id: str, title: str) -> str:
    fig.update_layout(title={"text": title, "x": 0, "font": {"size": 14}}, **_LAYOUT)
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displayModeBar": False, "responsive": True},
    )


def _charts(data: ReportData) -> dict[str, str]:
    out: dict[str, str] = {}
    cost = data.results["cost_over_time"]
    if cost:
        fig = go.Figure()
        for series in sorted({r["series"] for r in cost}):
            rows = [r for r in cost if r["series"] == series]
            fig.add_bar(x=[r["time"] for r in rows], y=[r["cost_usd"] for r in rows], name=series)
        fig.update_layout(barmode="stack", yaxis_tickprefix="$")
        out["cost"] = _chart(fig, "chart-cost", "Spend by service / model")
    cache = data.results["cache_over_time"]
    if cache:
        fig = go.Figure()
        times = [r["time"] for r in cache]
        fig.add_scatter(
            x=times, y=[r["cache_hit_ratio"] for r in cache], name="hit ratio", mode="lines+markers"
        )
        fig.update_layout(yaxis_tickformat=".0%", yaxis_range=[0, 1])
        out["cache"] = _chart(fig, "chart-cache", "Prompt-cache hit ratio")
    latency = data.results["latency_over_time"]
    if latency:
        fig = go.Figure()
        for key, name in (("ttft_p50_seconds", "TTFT p50"), ("ttft_p95_seconds", "TTFT p95"),
                          ("ttft_p99_seconds", "TTFT p99")):  # fmt: skip
            fig.add_scatter(
                x=[r["time"] for r in latency], y=[r[key] for r in latency], name=name, mode="lines+markers"
            )
        slo = [r["ttft_slo_seconds"] for r in latency]
        fig.add_scatter(x=[r["time"] for r in latency], y=slo, name="SLO", mode="lines+markers",
                        line={"dash": "dash", "color": "#c94f6d"})  # fmt: skip
        fig.update_layout(yaxis_ticksuffix=" s")
        out["latency"] = _chart(fig, "chart-latency", "Time to first token")
    growth = data.results["context_growth"]
    if growth:
        fig = go.Figure()
        x = [r["iteration"] for r in growth]
        fig.add_bar(x=x, y=[r["cache_read_tokens_avg"] for r in growth], name="read from cache")
        fig.add_bar(x=x, y=[r["uncached_input_tokens_avg"] for r in growth], name="sent uncached")
        written = [
            r["input_tokens_avg"] - r["cache_read_tokens_avg"] - r["uncached_input_tokens_avg"]
            for r in growth
        ]
        fig.add_bar(x=x, y=written, name="written to cache")
        fig.update_layout(barmode="stack", xaxis_title="model call number in the task", yaxis_title="tokens")
        out["growth"] = _chart(fig, "chart-growth", "Context growth per iteration (average input tokens)")
    loops = data.results["loop_length"]
    if loops:
        fig = go.Figure(
            go.Bar(x=[r["loop_length"] for r in loops], y=[r["tasks"] for r in loops], name="tasks")
        )
        fig.update_layout(xaxis_title="model calls per task", yaxis_title="tasks", xaxis_type="category")
        out["loops"] = _chart(fig, "chart-loops", "Loop length")
    mix = data.results["model_mix"]
    if mix:
        fig = go.Figure(
            go.Pie(labels=[r["model"] for r in mix], values=[r["cost_usd"] for r in mix], hole=0.5)
        )
        out["mix"] = _chart(fig, "chart-mix", "Cost by model")
    return out


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("otel_llm.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(usd=present.usd, ratio=present.ratio, seconds=present.seconds, count=present.count,
                       change=present.change, fmt=lambda v, kind: present.fmt(kind, v))  # fmt: skip
    return env


def render_html(data: ReportData) -> str:
    """The page as text."""
    compare = None
    if data.compare is not None:
        compare = {r["metric"]: r for r in data.results["version_compare"]}
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            data=data,
            summary=data.one("summary"),
            task_cost=data.one("task_cost"),
            escalations=data.one("escalations"),
            charts=_charts(data),
            plotly_js=get_plotlyjs(),
            before_after=present.BEFORE_AFTER,
            compare=compare,
            drift={r["metric"]: r for r in data.results["drift"]},
            task_columns=present.TASK_COLUMNS,
        )
    )


def write_html(data: ReportData, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path

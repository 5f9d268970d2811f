"""``otel-llm report`` on the sample workload: the terminal tables, the HTML page in
headless Chromium (no console errors, charts drawn, numbers equal to the queries'),
and the PNG screenshot."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from support.cdp import Browser, chromium_or_skip

from otel_llm.cli import main
from otel_llm.report import present
from otel_llm.report.data import Compare, ReportData, collect, parse_compare, parse_since
from otel_llm.report.html import write_html
from otel_llm.report.sample import Sample, generate
from otel_llm.report.terminal import print_report
from otel_llm.storage import queries
from otel_llm.storage.backend import Backend, open_backend
from otel_llm.storage.config import StorageConfig
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import spans_to_arrow


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Sample]]:
    backend = open_backend(StorageConfig(path=str(tmp_path_factory.mktemp("ch") / "ch")))
    apply_schema(backend)
    sample = generate()
    backend.insert_arrow("otel_traces", spans_to_arrow(sample.spans))
    yield backend, sample
    backend.close()


@pytest.fixture(scope="module")
def report(loaded: tuple[Backend, Sample]) -> ReportData:
    backend, sample = loaded
    start = sample.now - dt.timedelta(days=8)
    return collect(backend, start, sample.now, compare=Compare("1.0.0", "1.1.0"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser(chromium_or_skip())
    yield b
    b.close()


def test_arguments_are_checked_with_clear_errors() -> None:
    assert parse_since("24h") == dt.timedelta(hours=24)
    assert parse_since("7d") == dt.timedelta(days=7)
    with pytest.raises(ValueError, match="--since takes a positive number and a unit"):
        parse_since("yesterday")
    assert parse_compare("service.version=1.0.0,1.1.0") == Compare("1.0.0", "1.1.0")
    with pytest.raises(ValueError, match=r"--compare takes service.version=A,B"):
        parse_compare("version=1")


def test_terminal_report_has_the_per_task_cache_and_before_after_tables(report: ReportData) -> None:
    out = io.StringIO()
    print_report(report, Console(file=out, width=160))
    text = out.getvalue()
    top = report.results["top_tasks"][0]
    assert top["task_id"] in text
    assert "Costliest tasks" in text
    assert f"Prompt cache: net savings {present.usd(report.one('summary')['cache_savings_usd'])}" in text
    assert "Before / after: 1.0.0 -> 1.1.0" in text
    before_after = {r["metric"]: r for r in report.results["version_compare"]}
    row = before_after["cost_per_task_p50_usd"]
    assert f"{present.usd(row['a'])} │ {present.usd(row['b'])} │ {present.change(row['change'])}" in text
    assert "loses money" in text  # the 1.1.0 prefix writes and never reads


def test_html_opens_offline_without_console_errors_and_shows_the_queries_numbers(
    report: ReportData, loaded: tuple[Backend, Sample], browser: Browser, tmp_path: Path
) -> None:
    backend, sample = loaded
    html = write_html(report, tmp_path / "report.html")
    text = html.read_text()
    assert "<script src=" not in text  # nothing fetched: plotly.js is inside the page
    browser.load(html.as_uri())
    assert browser.errors() == []
    charts = browser.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => [d.id,"
        " d.querySelectorAll('svg.main-svg').length, d.querySelectorAll('.point, .trace, .slice').length])"
    )
    ids = {c[0] for c in charts}
    assert ids == {"chart-cost", "chart-cache", "chart-latency", "chart-growth", "chart-loops", "chart-mix"}
    assert all(svgs >= 1 and marks > 0 for _, svgs, marks in charts), charts
    # The numbers on the page are the named queries' numbers.
    start = sample.now - dt.timedelta(days=8)
    summary = queries.run(backend, "summary", start=start, end=sample.now)[0]
    task_cost = queries.run(backend, "task_cost", start=start, end=sample.now)[0]
    shown = browser.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('[data-figure]'))"
        ".map(e => [e.dataset.figure, e.textContent]))"
    )
    assert shown["cost_usd"] == present.usd(summary["cost_usd"])
    assert shown["tasks"] == present.count(summary["tasks"])
    assert shown["calls"] == present.count(summary["calls"])
    assert shown["cost_p95_usd"] == present.usd(task_cost["cost_p95_usd"])
    assert shown["cache_hit_ratio"] == present.ratio(summary["cache_hit_ratio"])
    compare = queries.run(backend, "version_compare", start=start, end=sample.now, version_a="1.0.0",
                          version_b="1.1.0")  # fmt: skip
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('#before-after tr[data-metric]'))"
        ".map(r => [r.dataset.metric, Array.from(r.cells).map(c => c.textContent.trim())])"
    )
    by_metric = {r["metric"]: r for r in compare}
    for metric, row in cells:
        kind = next(k for m, _, k, _ in present.BEFORE_AFTER if m == metric)
        want = by_metric[metric]
        assert row[1:] == [
            present.fmt(kind, want["a"]),
            present.fmt(kind, want["b"]),
            present.change(want["change"]),
        ]
    assert {m for m, _ in cells} >= {"cost_per_task_p50_usd", "task_latency_p50_seconds", "task_success_rate"}
    killed = browser.evaluate("document.querySelector('#kills td').textContent")
    assert killed == sample.killed_task


def test_report_command_writes_html_and_a_screenshot(tmp_path: Path) -> None:
    chromium_or_skip()
    png, html = tmp_path / "shot.png", tmp_path / "out" / "report.html"
    # Its own process: chDB opens one data directory per process, and this module's is taken.
    done = subprocess.run(
        [sys.executable, "-m", "otel_llm.cli", "report", "--sample", "--html", str(html),
         "--screenshot", str(png)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"HTML report: {html.resolve()}" in out
    assert "Before / after: 1.0.0 -> 1.1.0" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 2600)
    assert len(data) > 100_000  # a drawn page, not a blank one


def test_report_without_a_store_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--path", str(tmp_path / "nothing")]) == 1
    assert "no store at" in capsys.readouterr().err
    assert main(["report", "--since", "soon", "--sample"]) == 2

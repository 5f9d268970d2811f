"""``otel-llm report``: the Grafana picture without Grafana, in the terminal and as HTML."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

__all__ = ["add_commands", "main"]


def add_commands(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="cost, tasks, caching, latency and drift: tables in the terminal and an HTML page",
        description="Read the store (embedded chDB or a ClickHouse server) with the dashboards' queries.",
    )
    report.add_argument("--since", default="24h", help="window ending now: 30m, 24h, 7d, 2w (default 24h)")
    report.add_argument("--compare", help="before/after table: service.version=A,B")
    report.add_argument("--service", default="", help="one service only")
    report.add_argument("--html", type=Path, help="write the self-contained HTML report here")
    report.add_argument(
        "--screenshot", type=Path, help="write a PNG of the HTML report here (needs Chromium)"
    )
    report.add_argument("--path", default=".otel-llm/clickhouse", help="embedded store directory")
    report.add_argument("--clickhouse-url", help="read a ClickHouse server instead (http(s)://host:port)")
    report.add_argument("--database", default="otel")
    report.add_argument(
        "--sample", action="store_true", help="report on a generated sample workload (no store needed)"
    )


def main(args: argparse.Namespace) -> int:
    from otel_llm.report.browser import BrowserError, screenshot
    from otel_llm.report.data import collect, parse_compare, parse_since
    from otel_llm.report.html import write_html
    from otel_llm.report.terminal import print_report
    from otel_llm.storage import StorageConfig, apply_schema, open_backend
    from otel_llm.storage.errors import StorageError

    try:
        since = parse_since(args.since)
        compare = parse_compare(args.compare) if args.compare else None
    except ValueError as exc:
        print(f"otel-llm report: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="otel-llm-report-") as scratch:
        if args.sample:
            config = StorageConfig(path=str(Path(scratch) / "ch"))
        elif args.clickhouse_url:
            config = StorageConfig(backend="clickhouse", url=args.clickhouse_url, database=args.database)
        else:
            if not Path(args.path).exists():
                print(f"otel-llm report: no store at {args.path} (run the collector, or pass --path, "
                      "--clickhouse-url or --sample)", file=sys.stderr)  # fmt: skip
                return 1
            config = StorageConfig(path=args.path, database=args.database)
        try:
            with open_backend(config) as backend:
                apply_schema(backend)
                end = dt.datetime.now(dt.UTC)
                if args.sample:
                    from otel_llm.report.sample import generate
                    from otel_llm.storage.records import spans_to_arrow

                    sample = generate()
                    backend.insert_arrow("otel_traces", spans_to_arrow(sample.spans))
                    end = sample.now
                    if compare is None:
                        compare = parse_compare("service.version=1.0.0,1.1.0")
                        since = max(since, dt.timedelta(days=8))
                data = collect(backend, end - since, end, service=args.service, compare=compare)
        except StorageError as exc:
            print(f"otel-llm report: {exc}", file=sys.stderr)
            if not args.clickhouse_url and not args.sample:
                # chDB locks its directory: a running embedded collector keeps others out.
                hint = (
                    "otel-llm report: if a running collector holds this embedded store, stop it first, "
                    "or run the collector on a ClickHouse server and pass --clickhouse-url"
                )
                print(hint, file=sys.stderr)
            return 1
        print_report(data)
        html = args.html or (Path(scratch) / "report.html" if args.screenshot else None)
        if html is not None:
            write_html(data, html)
            if args.html:
                print(f"HTML report: {html.resolve()}")
        if args.screenshot:
            try:
                print(f"screenshot: {screenshot(html, args.screenshot).resolve()}")
            except BrowserError as exc:
                print(f"otel-llm report: {exc}", file=sys.stderr)
                return 1
    return 0

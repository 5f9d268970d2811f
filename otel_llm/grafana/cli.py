"""``otel-llm grafana generate`` and ``otel-llm grafana provision``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_commands", "main"]


def add_commands(commands: argparse._SubParsersAction) -> None:
    grafana = commands.add_parser(
        "grafana",
        help="Grafana dashboards and alert rules",
        description="Grafana dashboards and alert rules.",
    )
    sub = grafana.add_subparsers(dest="grafana_command", required=True, metavar="SUBCOMMAND")
    generate = sub.add_parser("generate", help="write dashboards/ and alerts/grafana/ from the code")
    generate.add_argument("--root", default=".", help="repository root to write under (default: .)")
    provision = sub.add_parser(
        "provision",
        help="push datasource, folder, dashboards and alert rules to a running Grafana",
        description="Idempotent: objects are created or updated by uid.",
    )
    provision.add_argument("--url", required=True, help="Grafana base URL, e.g. http://localhost:3000")
    provision.add_argument(
        "--token",
        default=os.environ.get("GRAFANA_TOKEN", ""),
        help="service-account token (default: $GRAFANA_TOKEN)",
    )
    provision.add_argument("--clickhouse-host", default="clickhouse", help="as Grafana reaches it")
    provision.add_argument("--clickhouse-port", type=int, default=9000, help="native protocol port")
    provision.add_argument("--clickhouse-user", default="default")
    provision.add_argument("--database", default="otel")


def main(args: argparse.Namespace) -> int:
    if args.grafana_command == "generate":
        from otel_llm.grafana.files import generate

        for path in generate(Path(args.root)):
            print(path)
        return 0
    from otel_llm.grafana.provision import ProvisionError, provision

    if not args.token:
        print("otel-llm grafana provision: --token (or $GRAFANA_TOKEN) is required", file=sys.stderr)
        return 2
    try:
        done = provision(
            args.url,
            args.token,
            clickhouse_host=args.clickhouse_host,
            clickhouse_port=args.clickhouse_port,
            clickhouse_user=args.clickhouse_user,
            clickhouse_password=os.environ.get("OTEL_LLM_CLICKHOUSE_PASSWORD", ""),
            database=args.database,
        )
    except ProvisionError as exc:
        print(f"otel-llm grafana provision: {exc}", file=sys.stderr)
        return 1
    for kind, items in done.actions.items():
        for uid, action in items:
            print(f"{kind:14} {uid:40} {action}")
    return 0

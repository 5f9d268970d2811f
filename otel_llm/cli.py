"""The ``otel-llm`` command.

Subcommands arrive with the components they drive; today:

- ``otel-llm sim``: serve the provider simulator (OpenAI and Anthropic wire formats).
- ``otel-llm collector [--config PATH]``, ``otel-llm tasks``, ``otel-llm kill TASK_ID``:
  the collector sidecar and its control API (:mod:`otel_llm.collector.cli`).
- ``otel-llm grafana generate|provision``: dashboards and alert rules
  (:mod:`otel_llm.grafana.cli`).
- ``otel-llm report``: the report in the terminal and as HTML (:mod:`otel_llm.report.cli`).
- ``otel-llm demo``: the example agents end to end (:mod:`otel_llm.demo`; what
  ``make demo`` runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from otel_llm import __version__


def build_parser() -> argparse.ArgumentParser:
    from otel_llm.sim import cli as sim_cli

    parser = argparse.ArgumentParser(
        prog="otel-llm", description="Cost and budget observability for LLM agents."
    )
    parser.add_argument("--version", action="version", version=f"otel-llm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "sim",
        parents=[sim_cli.build_parser()],
        add_help=False,
        help="serve the provider simulator on loopback",
        description="Serve a fake OpenAI + Anthropic API on loopback.",
    )
    from otel_llm.collector import cli as collector_cli

    collector_cli.add_commands(commands)
    from otel_llm.grafana import cli as grafana_cli

    grafana_cli.add_commands(commands)
    from otel_llm.report import cli as report_cli

    report_cli.add_commands(commands)
    commands.add_parser(
        "demo",
        help="run the example agents end to end",
        description="Run the example agents under opentelemetry-instrument into the collector, "
        "against the provider simulator (or the real APIs when their keys are set).",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    if args.command == "sim":
        from otel_llm.sim import cli as sim_cli

        return sim_cli.main(args_list[1:])
    if args.command in ("collector", "tasks", "kill"):
        from otel_llm.collector import cli as collector_cli

        return collector_cli.main(args)
    if args.command == "grafana":
        from otel_llm.grafana import cli as grafana_cli

        return grafana_cli.main(args)
    if args.command == "report":
        from otel_llm.report import cli as report_cli

        return report_cli.main(args)
    if args.command == "demo":
        from otel_llm import demo

        return demo.main()
    return 2


if __name__ == "__main__":
    sys.exit(main())

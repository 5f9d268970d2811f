"""``python -m otel_llm.sim`` / ``otel-llm sim``: serve the provider simulator until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from otel_llm.sim.server import Simulator


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments (exposed so a parent CLI can reuse them)."""
    parser = argparse.ArgumentParser(prog="otel-llm sim", description="Serve a fake OpenAI + Anthropic API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port, 0 for a free one (default 0)")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first byte (default 0)")
    parser.add_argument("--per-token", type=float, default=0.0, help="seconds per output token (default 0)")
    parser.add_argument(
        "--output-tokens", type=int, default=20, help="length of generated replies (default 20)"
    )
    parser.add_argument(
        "--reasoning-tokens", type=int, default=16, help="reasoning tokens of reasoning models (default 16)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; prints the URL and the environment to point SDKs at it."""
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Simulator(
        host=args.host,
        port=args.port,
        ttft=args.ttft,
        per_token=args.per_token,
        default_output_tokens=args.output_tokens,
        default_reasoning_tokens=args.reasoning_tokens,
    ) as sim:
        print(f"otel-llm simulator listening on {sim.url}", flush=True)
        print(f"  OPENAI_BASE_URL={sim.openai_base_url}", flush=True)
        print(f"  ANTHROPIC_BASE_URL={sim.url}", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0

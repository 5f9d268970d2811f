"""Start-up cost of otel-llm's instrumentors: ``opentelemetry-instrument python -c pass``.

A program that uses none of the instrumented libraries must not pay for importing them.
The instrumentors wrap the OpenAI SDK, the Anthropic SDK and LiteLLM when the program
imports them (post-import hooks), so loading them costs only otel-llm's own modules.

Variants, each a fresh process, run alternately so machine load hits them alike:

* ``python``: ``python -c pass``, no OpenTelemetry at all (a reference),
* ``without``: ``opentelemetry-instrument python -c pass`` with otel-llm's entry points
  disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``): the distro, the SDK and the
  exporters alone,
* ``with``: the same with otel-llm's three instrumentors loaded,
* ``without+openai`` / ``with+openai``: both, for a program that imports ``openai``: the
  SDK's own import is paid either way; the difference is the wrapping (and the import of
  otel-llm's OpenAI patch module) at that moment.

Target (issue 9): ``with`` within 0.3 s of ``without`` (median wall time).

Usage::

    python bench/startup.py                # 9 rounds, table + bench/results/startup.json
    python bench/startup.py --rounds 3     # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "startup.json"
TARGET_S = 0.3
OURS = "otel_llm_openai,otel_llm_anthropic,otel_llm_litellm"
# Other instrumentors the dev environment may hold (traceloop's OpenAI one) stay off in
# every variant: this measures otel-llm's.
OTHERS = "openai"


def _env(disabled: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
        OTEL_SERVICE_NAME="startup-bench",
        # Nothing listens: the exporters are built (their import is part of the cost)
        # but never send, as the program exits before the first batch.
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    return env


def variants() -> dict[str, tuple[list[str], dict[str, str]]]:
    instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    python = sys.executable
    return {
        "python": ([python, "-c", "pass"], _env(OTHERS)),
        "without": ([instrument, python, "-c", "pass"], _env(f"{OTHERS},{OURS}")),
        "with": ([instrument, python, "-c", "pass"], _env(OTHERS)),
        "without+openai": ([instrument, python, "-c", "import openai"], _env(f"{OTHERS},{OURS}")),
        "with+openai": ([instrument, python, "-c", "import openai"], _env(OTHERS)),
    }


def _run_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr}")
    return elapsed


def measure(rounds: int) -> dict[str, list[float]]:
    runs = variants()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for argv, env in runs.values():  # one warm-up each: the OS page cache
        _run_once(argv, env)
    for _ in range(rounds):
        for name, (argv, env) in runs.items():
            times[name].append(_run_once(argv, env))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    times = measure(args.rounds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    added = medians["with"] - medians["without"]
    passed = added <= TARGET_S

    table = Table(title=f"opentelemetry-instrument start-up, median of {args.rounds} runs (wall seconds)")
    for column in ("variant", "median s", "min s", "max s", "vs without s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, values in times.items():
        table.add_row(
            name,
            f"{medians[name]:.3f}",
            f"{min(values):.3f}",
            f"{max(values):.3f}",
            f"{medians[name] - medians['without']:+.3f}",
        )
    console = Console()
    console.print(table)
    verdict = "PASS" if passed else "MISS"
    console.print(f"{verdict}: otel-llm's instrumentors add {added:+.3f} s (target <= {TARGET_S} s)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "startup",
        "command": "opentelemetry-instrument python -c pass",
        "rounds": args.rounds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "seconds": {name: {"median": medians[name], "runs": values} for name, values in times.items()},
        "added_s": added,
        "target_s": TARGET_S,
        "pass": passed,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written: {args.out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

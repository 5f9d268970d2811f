"""What the example agents do: five tasks, each in its own ``otel_llm.task``, the scripted
model that plays them on the provider simulator, the human escalation hook, and the
per-task table.

Two versions of the same agent (``--version``), the seed exercise of the cost lessons:

- version 1: no prompt caching, the tool calls one model turn asks for run one after
  another, no caps (only a collector's policy, or the safety net of
  :data:`SAFETY_TURNS` turns, stops a loop);
- version 2 (default): a cache breakpoint on the stable prefix (Anthropic; OpenAI caches
  by itself), independent tool calls run together in a thread pool, iteration, token
  and spend caps per task with escalation to a human.

One task (``runaway``) never converges: its model keeps asking for another search. In
version 2 the guard stops it at ``max_iterations``; ``on_exceed`` hands it to a
(scripted) human on call, who grants three more calls once and then says stop.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import otel_llm
from otel_llm import Grant, TaskState, TaskSummary

# A long, stable system prompt (~1,500 tokens): the prefix that prompt caching can reuse.
RULES = " ".join(
    f"Rule {n}: use the tools to look before you answer, quote paths exactly, change only what "
    "the task asks for, and stop as soon as the task is done."
    for n in range(1, 41)
)
SYSTEM = f"You are a careful coding agent working in a small billing repository.\n{RULES}"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    prompt: str
    limits: dict[str, Any] = field(default_factory=dict)
    escalate: bool = False


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "locate-spend-cap",
        "Where does the code cap spending per invoice run? Name the file and the constant.",
        {"max_usd": 0.05, "max_iterations": 6},
    ),
    TaskSpec(
        "fix-readme-typo",
        "The README misspells 'calculator'. Fix the typo.",
        {"max_usd": 0.05, "max_iterations": 6},
    ),
    TaskSpec(
        "review-modules",
        "Read src/calc.py, src/budget.py and README.md and summarize what each is for.",
        {"max_usd": 0.05, "max_iterations": 4},
    ),
    TaskSpec(
        "fix-add-bug",
        "add(2, 3) returns -1. Find the bug and fix it.",
        {"max_usd": 0.08, "max_iterations": 8, "max_tool_calls": 10},
    ),
    TaskSpec(
        "runaway",
        "Find the file that documents the quantum billing mode.",
        {"max_usd": 0.50, "max_iterations": 6},
        escalate=True,
    ),
)


VERSIONS = (1, 2)
# Version 1 has no caps: a loop that never converges would run until killed from outside
# (the collector). This many turns end it anyway, so the example never hangs.
SAFETY_TURNS = 60
# Version 2's token cap, on top of each task's own limits.
MAX_TOKENS_PER_TASK = 60_000


# -- the scripted model (simulator) -------------------------------------------------------

Step = Callable[[int], Any]


def _plans() -> dict[str, list[Any]]:
    from otel_llm.sim import Reply

    return {
        "locate-spend-cap": [
            Reply.tool_call("search", {"query": "MAX_SPEND"}),
            Reply.tool_call("read_file", {"path": "src/budget.py"}),
            Reply.text("Spending is capped by MAX_SPEND = 5.00 in src/budget.py."),
        ],
        "fix-readme-typo": [
            Reply.tool_call("read_file", {"path": "README.md"}),
            Reply.tool_call("edit_file", {"path": "README.md", "old": "calcualtor", "new": "calculator"}),
            Reply.text("Fixed: README.md now says 'calculator'."),
        ],
        "review-modules": [
            Reply.tool_calls(
                [
                    ("read_file", {"path": "src/calc.py"}),
                    ("read_file", {"path": "src/budget.py"}),
                    ("read_file", {"path": "README.md"}),
                ]
            ),
            Reply.text("calc.py: arithmetic; budget.py: the spend cap; README: usage."),
        ],
        "fix-add-bug": [
            Reply.tool_call("search", {"query": "def add"}),
            Reply.tool_call("read_file", {"path": "src/calc.py"}),
            Reply.tool_call(
                "edit_file",
                {
                    "path": "src/calc.py",
                    "old": "def add(a: float, b: float) -> float:\n    return a - b",
                    "new": "def add(a: float, b: float) -> float:\n    return a + b",
                },
            ),
            Reply.text("add() subtracted; it now returns a + b."),
        ],
    }


def _conversation(request: Any) -> tuple[str, int]:
    """The first user text and how many assistant turns came before, for either provider."""
    body = request.body or {}
    messages = body.get("messages") or []
    first = ""
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
            first = str(content)
            break
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    return first, turns


def scripted_model() -> Callable[[Any], Any]:
    """``sim.script`` function: answers each task's calls from its plan, by turn."""
    from otel_llm.sim import Reply

    plans = _plans()

    def reply(request: Any) -> Any:
        first, turn = _conversation(request)
        found = re.search(r"\[task:([\w-]+)\]", first)
        name = found.group(1) if found else ""
        if name == "runaway":  # never converges: one more search, forever
            return Reply.tool_call("search", {"query": f"quantum billing, attempt {turn + 1}"})
        plan = plans.get(name)
        if plan is None:
            return None
        return plan[min(turn, len(plan) - 1)]

    return reply


def user_prompt(spec: TaskSpec) -> str:
    return f"{spec.prompt} [task:{spec.name}]"


# -- escalation -----------------------------------------------------------------------------


class OnCallHuman:
    """The ``on_exceed`` hook: hand the task to a human. Here the human is scripted (grants
    three more model calls the first time, then says stop); a real one could be paged and
    answer through a chat button, or ``input()`` at a terminal."""

    def __init__(self) -> None:
        self.asked: list[TaskState] = []

    def __call__(self, state: TaskState) -> Grant | None:
        self.asked.append(state)
        print(
            f"  escalated {state.task_name}: {state.limit} reached "
            f"({state.spent:g} of {state.limit_value:g}, ${state.cost_usd:.4f} spent)",
            file=sys.stderr,
        )
        if len(self.asked) == 1:
            print("  on-call human: granted 3 more model calls", file=sys.stderr)
            return Grant(max_iterations=3, reason="on-call: one more try")
        print("  on-call human: stop it", file=sys.stderr)
        return None


# -- the table ------------------------------------------------------------------------------


def format_table(summaries: list[TaskSummary]) -> str:
    header = ("task", "outcome", "calls", "input", "output", "cache hit", "cost $", "tools", "wall s")
    rows = [header]
    for s in summaries:
        rows.append(
            (
                s.name,
                s.outcome_text,
                str(s.iterations),
                f"{s.input_tokens:,}",
                f"{s.output_tokens:,}",
                f"{s.cache_hit_ratio:.0%}",
                f"{s.cost_usd:.4f}",
                str(s.tool_calls),
                f"{s.wall_seconds:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


# -- running ------------------------------------------------------------------------------


@contextmanager
def model_endpoint(provider: str) -> Iterator[str | None]:
    """The base URL to call: ``None`` when the provider's key is set (the SDK then calls
    the real API, or the endpoint its base URL variable names, e.g. a simulator that
    ``otel-llm demo`` started with the scripted model), else a simulator started here
    with the scripted model."""
    key = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}[provider]
    if os.environ.get(key):
        yield None
        return
    from otel_llm.sim import Simulator

    with Simulator() as sim:
        sim.script(scripted_model())
        yield sim.openai_base_url if provider == "openai" else sim.url


def ensure_instrumented(provider: str) -> None:
    """Under ``opentelemetry-instrument`` the instrumentors are already on; run plainly,
    the example turns its provider's on itself, so the budget guard is active."""
    if provider == "openai":
        from otel_llm.instrumentation.openai import OpenAIInstrumentor as Instrumentor
    else:
        from otel_llm.instrumentation.anthropic import AnthropicInstrumentor as Instrumentor
    instrumentor = Instrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


RunTask = Callable[[TaskSpec, OnCallHuman, int], TaskSummary]


def run_all(run_task: RunTask, version: int = 2) -> list[TaskSummary]:
    human = OnCallHuman()
    summaries = []
    for spec in TASKS:
        summaries.append(run_task(spec, human, version))
    return summaries


def main(provider: str, run_task: RunTask) -> list[TaskSummary]:
    parser = argparse.ArgumentParser(description=f"{provider} tool-using agent, five tasks")
    parser.add_argument("--json", metavar="PATH", help="also write the per-task summaries as JSON")
    parser.add_argument(
        "--version",
        type=int,
        choices=VERSIONS,
        default=2,
        help="1: no caching, tools one after another, no caps; 2 (default): cache breakpoint, "
        "tools in parallel, caps with escalation",
    )
    args = parser.parse_args()
    ensure_instrumented(provider)
    summaries = run_all(run_task, args.version)
    print(format_table(summaries))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([{**asdict(s), "cache_hit_ratio": s.cache_hit_ratio} for s in summaries], out, indent=2)
    return summaries


def task_for(spec: TaskSpec, human: OnCallHuman, version: int = 2) -> otel_llm.Task:
    """Version 2: the task's caps (and a token cap), escalating to ``human`` where the
    spec says so. Version 1: no caps at all."""
    if version == 1:
        return otel_llm.task(spec.name)
    limits = {"max_tokens": MAX_TOKENS_PER_TASK, **spec.limits}
    return otel_llm.task(spec.name, **limits, on_exceed=human if spec.escalate else None)


def turns(version: int) -> Iterator[int]:
    """The agent loop's turns: endless in version 2 (the caps stop it), at most
    :data:`SAFETY_TURNS` in version 1 (its safety net, see there)."""
    turn = 0
    while version != 1 or turn < SAFETY_TURNS:
        yield turn
        turn += 1
    print(f"  gave up after {SAFETY_TURNS} turns (version 1 has no caps)", file=sys.stderr)

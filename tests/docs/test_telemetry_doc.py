"""docs/telemetry.md and the code name the same telemetry: every attribute, event,
metric, instrumentation scope and environment variable the code defines has a row in one
of the document's tables, and every row names something the code defines.

The document's tables are told apart by the title of their first column (``attribute``,
``key``, ``metric attribute``: attribute names; ``event``; ``metric``; ``scope``;
``variable``); the names are the backticked words of a row's first cell. The code's names
are collected from where they are defined: our attributes and events from
``otel_llm/attributes.py`` (plus the names built from it: limit keys, task usage totals),
the standard ones from the semantic-conventions constants the agent-side modules use, the
metrics from the instruments, environment variables from every string constant in
``otel_llm`` that is a whole ``OTEL_LLM_*`` name, plus the few standard ones we read."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from otel_llm import attributes
from otel_llm.instrumentation import inference, instruments
from otel_llm.policy import ENV_LIMITS
from otel_llm.tasks import SCOPE as TASKS_SCOPE
from otel_llm.tasks.budget import LIMIT_KEYS
from otel_llm.tasks.propagation import ENV_KEYS
from otel_llm.usage import Usage

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "telemetry.md"
PACKAGE = ROOT / "otel_llm"
# Where the inference, task and tool spans are made: the standard attributes they use.
AGENT_SIDE = ("instrumentation", "tasks", "usage.py", "pricing.py")

TABLE_KINDS = {
    "attribute": "attribute",
    "key": "attribute",
    "metric attribute": "attribute",
    "event": "event",
    "metric": "metric",
    "scope": "scope",
    "variable": "variable",
}
STANDARD_EVENTS = {"exception"}  # Span.record_exception


def doc_tables(text: str) -> dict[str, dict[str, str]]:
    """Kind -> {name: the heading of the section it is listed under}."""
    out: dict[str, dict[str, str]] = {kind: {} for kind in set(TABLE_KINDS.values())}
    heading, kind, previous = "", None, None
    for line in text.splitlines():
        if line.startswith("#"):
            heading, kind = line.lstrip("# ").strip(), None
            continue
        if not line.startswith("|"):
            kind, previous = None, None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if set(cells[0]) <= {"-", " ", ":"}:  # the separator: the row before was the header
            kind = TABLE_KINDS.get(previous.lower()) if previous is not None else None
            continue
        previous = cells[0]
        if kind is not None:
            for name in re.findall(r"`([^`]+)`", cells[0]):
                if "{" not in name:  # a template such as {gen_ai.operation.name}
                    out[kind].setdefault(name, heading)
    return out


def _module_files(*parts: str) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _semconv_attributes_used() -> dict[str, str]:
    """Standard attribute names the agent-side modules use, from the semconv constants
    they reference (``gen_ai.GEN_AI_REQUEST_MODEL``...): name -> first file using it."""
    found: dict[str, str] = {}
    for path in _module_files(*AGENT_SIDE):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry.semconv"):
                for alias in node.names:
                    if alias.name.endswith("_attributes"):  # not the metric-name modules
                        module = importlib.import_module(f"{node.module}.{alias.name}")
                        aliases[alias.asname or alias.name] = module
        for node in ast.walk(tree):
            owner = node.value if isinstance(node, ast.Attribute) else None
            if isinstance(owner, ast.Name) and owner.id in aliases:
                value = getattr(aliases[owner.id], node.attr, None)
                if isinstance(value, str) and node.attr.isupper():
                    found.setdefault(value, str(path.relative_to(ROOT)))
    return found


def code_names() -> dict[str, dict[str, str]]:
    """Kind -> {name: where the code defines it}."""
    ours: dict[str, str] = {}
    events: dict[str, str] = {}
    for constant, value in vars(attributes).items():
        if not constant.isupper() or not isinstance(value, str) or value.endswith("."):
            continue
        where = f"otel_llm/attributes.py {constant}"
        (events if constant.startswith("EVENT_") else ours).setdefault(value, where)
    for limit, key in LIMIT_KEYS.items():
        ours.setdefault(key, f"otel_llm/tasks/budget.py LIMIT_KEYS[{limit!r}]")
    for key in Usage(1, 1, 1, 1, 1, 1, 1).total_attributes():
        ours.setdefault(key, "otel_llm/usage.py Usage.total_attributes()")
    attributes_found = {**ours, **_semconv_attributes_used()}

    metrics: dict[str, str] = {}
    source = Path(instruments.__file__)
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "name":
            metric = eval(ast.unparse(node.value), vars(instruments))
            metrics[metric] = str(source.relative_to(ROOT))

    variables: dict[str, str] = {}
    for path in _module_files("."):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and re.fullmatch(r"OTEL_LLM_[A-Z0-9_]+", text):
                variables.setdefault(text, str(path.relative_to(ROOT)))
    for limit, variable in ENV_LIMITS.items():
        variables.setdefault(variable, f"otel_llm/policy.py ENV_LIMITS[{limit!r}]")
    variables.setdefault(inference.CAPTURE_CONTENT_ENV, "otel_llm/instrumentation/inference.py")
    for variable in ENV_KEYS.values():
        variables.setdefault(variable, "otel_llm/tasks/propagation.py ENV_KEYS")

    scopes = {
        inference.SCOPE: "otel_llm/instrumentation/inference.py SCOPE",
        TASKS_SCOPE: "otel_llm/tasks/settings.py SCOPE",
    }
    return {
        "attribute": attributes_found,
        "event": events,
        "metric": metrics,
        "scope": scopes,
        "variable": variables,
    }


def test_the_document_parses_into_every_kind_of_table():
    documented = doc_tables(DOC.read_text(encoding="utf-8"))
    assert {kind: bool(names) for kind, names in documented.items()} == dict.fromkeys(documented, True)


@pytest.mark.parametrize("kind", ["attribute", "event", "metric", "scope", "variable"])
def test_the_document_and_the_code_name_the_same(kind: str):
    documented = doc_tables(DOC.read_text(encoding="utf-8"))[kind]
    defined = code_names()[kind]
    known = set(defined) | (STANDARD_EVENTS if kind == "event" else set())
    problems = [
        f"{kind} {name!r} is defined in the code ({where}) but has no row in docs/telemetry.md: "
        f"add it to a table whose first column is titled {_titles(kind)}"
        for name, where in sorted(defined.items())
        if name not in documented and name not in STANDARD_EVENTS
    ] + [
        f"{kind} {name!r} is listed in docs/telemetry.md (section {section!r}) but the code defines "
        "no such name: remove the row, or define the name in the code"
        for name, section in sorted(documented.items())
        if name not in known
    ]
    assert not problems, "\n".join(problems)


def _titles(kind: str) -> str:
    return " or ".join(repr(title) for title, k in TABLE_KINDS.items() if k == kind)


def test_a_missing_row_and_a_stray_row_are_both_reported():
    """The checker itself: a table that drops a name and adds an unknown one."""
    text = DOC.read_text(encoding="utf-8")
    edited = text.replace("| `otel_llm.cost.usd` |", "| `otel_llm.cost.total` |", 1)
    assert edited != text
    documented = doc_tables(edited)["attribute"]
    assert "otel_llm.cost.usd" not in documented
    assert documented["otel_llm.cost.total"] == "Inference span attributes"

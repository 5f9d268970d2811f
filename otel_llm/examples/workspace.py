"""The agents' tools: read a file, search, edit, over a private copy of ``otel_llm/examples/data``.

Each tool call runs inside ``otel_llm.tool(name)``: an ``execute_tool {name}`` span,
counted toward the current task, grouped into the batch of tools that one model turn
asked for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import otel_llm

DATA = Path(__file__).resolve().parent / "data"
# Seconds each tool call takes on top of its work (a real tool waits on a disk, a network
# or a subprocess): set by ``otel-llm demo`` so running tools together visibly saves time.
ENV_TOOL_SECONDS = "OTEL_LLM_EXAMPLE_TOOL_SECONDS"

# One description per tool, shaped by each provider's wrapper in the agents.
TOOLS: list[dict[str, Any]] = [
    {
        "name": "read_file",
        "description": "Read a text file of the repository. Paths are relative to its root.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "e.g. src/calc.py"}},
            "required": ["path"],
        },
    },
    {
        "name": "search",
        "description": "Search every file for a text; returns path:line: text for each match.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
    {
        "name": "edit_file",
        "description": "Replace the first occurrence of `old` with `new` in a file.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}},
            "required": ["path", "old", "new"],
        },
    },
]


class Workspace:
    """A throw-away copy of the example repository (the originals are never edited)."""

    def __init__(self, source: Path = DATA) -> None:
        self.tool_seconds = float(os.environ.get(ENV_TOOL_SECONDS) or 0)
        self._tmp = tempfile.TemporaryDirectory(prefix="otel-llm-agent-")
        self.root = Path(self._tmp.name) / "repo"
        # Installed from a wheel, the package's data/src/*.py were byte-compiled: the
        # workspace is the repository as written, without them.
        shutil.copytree(source, self.root, ignore=shutil.ignore_patterns("__pycache__"))

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"{relative}: outside the repository")
        return path

    def read_file(self, path: str) -> str:
        target = self._path(path)
        if not target.is_file():
            return f"error: no file {path}"
        return target.read_text()

    def search(self, query: str) -> str:
        hits = []
        for file in sorted(p for p in self.root.rglob("*") if p.is_file()):
            for number, line in enumerate(file.read_text().splitlines(), 1):
                if query.lower() in line.lower():
                    hits.append(f"{file.relative_to(self.root)}:{number}: {line.strip()}")
        return "\n".join(hits) or f"no match for {query!r}"

    def edit_file(self, path: str, old: str, new: str) -> str:
        target = self._path(path)
        text = target.read_text() if target.is_file() else ""
        if old not in text:
            return f"error: {old!r} not found in {path}"
        target.write_text(text.replace(old, new, 1))
        return f"edited {path}"

    def run(self, name: str, arguments: Mapping[str, Any], call_id: str | None = None) -> str:
        """Run one tool call the model asked for, as an ``execute_tool`` span."""
        with otel_llm.tool(name, call_id=call_id):
            if self.tool_seconds > 0:
                time.sleep(self.tool_seconds)
            if name == "read_file":
                return self.read_file(str(arguments.get("path", "")))
            if name == "search":
                return self.search(str(arguments.get("query", "")))
            if name == "edit_file":
                return self.edit_file(
                    str(arguments.get("path", "")),
                    str(arguments.get("old", "")),
                    str(arguments.get("new", "")),
                )
            return f"error: no tool {name}"

    def run_batch(
        self, calls: Sequence[tuple[str, Mapping[str, Any], str | None]], parallel: bool
    ) -> list[str]:
        """Run the tool calls of one model turn, ``(name, arguments, call_id)`` each:
        together in a thread pool when ``parallel`` (they are independent), else one
        after another. Results in the order of ``calls``."""
        if not parallel or len(calls) < 2:
            return [self.run(name, arguments, call_id) for name, arguments, call_id in calls]
        # Work submitted inside a task belongs to it (otel_llm carries the task into the pool).
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(lambda call: self.run(*call), calls))

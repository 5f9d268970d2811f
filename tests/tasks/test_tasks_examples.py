"""The example agents run end to end against the simulator, and a task joined over HTTP
by a second process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import propagate, trace

import otel_llm
from otel_llm import examples, tasks

EXAMPLES = examples.DIRECTORY
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}


@pytest.mark.parametrize("agent", ["openai_agent.py", "anthropic_agent.py"])
def test_example_agent_runs_five_tasks_and_the_runaway_is_stopped_and_escalated(tmp_path, agent):
    out = tmp_path / "summary.json"
    # Each tool takes 0.2 s, so reads run together really overlap: instant ones may not,
    # and then the batch is rightly flagged as sequential.
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / agent), "--json", str(out)],
        env=_clean_env() | {"OTEL_LLM_EXAMPLE_TOOL_SECONDS": "0.2"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())}
    assert list(rows) == ["locate-spend-cap", "fix-readme-typo", "review-modules", "fix-add-bug", "runaway"]
    expected_calls = {"locate-spend-cap": 3, "fix-readme-typo": 3, "review-modules": 2, "fix-add-bug": 4}
    for name, calls in expected_calls.items():
        assert (rows[name]["outcome"], rows[name]["iterations"]) == ("done", calls)
        assert rows[name]["cost_usd"] > 0
    assert rows["review-modules"]["tool_calls"] == 3
    # Version 2 (the default) runs the 3 independent reads together (version 1, one by one,
    # is checked by tests/demo).
    assert rows["review-modules"]["sequential_tool_batches"] == 0
    runaway = rows["runaway"]
    # 6 calls, escalated, 3 more granted by the on-call human, escalated again, stopped
    assert (runaway["outcome"], runaway["stopped_by"], runaway["iterations"], runaway["grants"]) == (
        "stopped",
        "max_iterations",
        9,
        1,
    )
    assert result.stderr.count("escalated runaway: max_iterations reached") == 2
    assert "stopped at max_iterations" in result.stdout


SERVER = textwrap.dedent(
    """
    import json
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from opentelemetry import context, propagate
    from otel_llm import tasks
    from otel_llm.tasks.budget import BudgetExceeded

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            headers = {name.lower(): value for name, value in self.headers.items()}
            token = context.attach(propagate.extract(headers))
            try:
                call = tasks.enter_call("openai", "gpt-4o", max_tokens=10, input_estimate=10)
                call.exit_call(None, None, None)
                body = {"admitted": True, **call.span_attributes}
            except BudgetExceeded as exc:
                body = {"admitted": False, "task_id": exc.task_id, "limit": exc.limit}
            finally:
                context.detach(token)
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def test_a_second_process_reached_over_http_joins_the_task_and_its_limits(pipeline):
    import urllib.request

    tasks._reset_for_tests()
    tasks.configure(environ={}, tracer_provider=pipeline.tracer_provider)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], env=_clean_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())

        def post() -> dict:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", headers=headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        with otel_llm.task("support-ticket", max_iterations=2) as t:
            answers = [post(), post(), post()]
            assert trace.get_current_span().is_recording()
    finally:
        server.kill()
        server.wait()
        tasks._reset_for_tests()
    first, second, third = answers
    assert first["admitted"]
    assert second["admitted"]
    assert (first["otel_llm.task.id"], first["otel_llm.task.name"]) == (t.task_id, "support-ticket")
    assert [first["otel_llm.task.iteration"], second["otel_llm.task.iteration"]] == [1, 2]
    assert first["otel_llm.budget.max_iterations"] == 2
    assert third == {"admitted": False, "task_id": t.task_id, "limit": "max_iterations"}

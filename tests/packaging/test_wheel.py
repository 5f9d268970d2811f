"""otel-llm installed from its wheel: the example agents and their data come with the
package, so ``otel-llm demo`` runs in a fresh virtualenv, away from any checkout.

The wheel is built from a copy of the sources without build isolation and installed with
no index (nothing is downloaded); the fresh environment borrows its dependencies from
this one's site-packages through a ``.pth`` line, which is a plain path: ``.pth`` files
inside it (an editable install of this checkout) are not run, so ``otel_llm`` can only
come from the installed wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _run(*command: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=600, check=False, **kwargs
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_", "PYTHON"))
    }


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; returns its bin directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "otel_llm", source / "otel_llm", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, source)
    (wheel,) = dist.glob("otel_llm-*.whl")
    env_dir = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", env_dir)
    python = env_dir / "bin" / "python"
    _run(*pip, "--python", python, "install", "--no-index", "--no-deps", wheel)
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    borrowed = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    Path(site, "borrowed-dependencies.pth").write_text("\n".join(borrowed) + "\n")
    return env_dir / "bin"


PROBE = """
import json, otel_llm, otel_llm.examples as e
data = [p for p in (e.DIRECTORY / "data").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
print(json.dumps({
    "package": otel_llm.__file__,
    "scripts": [str(p) for p in (e.QUICKSTART, *e.AGENTS)],
    "data": sorted(str(p.relative_to(e.DIRECTORY)) for p in data),
}))
"""


def test_the_installed_package_holds_the_examples_and_their_data(venv: Path, tmp_path: Path):
    shown = json.loads(_run(venv / "python", "-c", PROBE, cwd=tmp_path, env=_clean_env()).stdout)
    site = str(venv.parent)
    assert shown["package"].startswith(site), shown["package"]
    names = [Path(p).name for p in shown["scripts"]]
    assert names == ["quickstart.py", "openai_agent.py", "anthropic_agent.py"]
    assert all(p.startswith(site) and Path(p).is_file() for p in shown["scripts"])
    assert shown["data"] == [
        "data/README.md",
        "data/notes/meeting.md",
        "data/src/budget.py",
        "data/src/calc.py",
    ]


def test_otel_llm_demo_runs_from_the_wheel(venv: Path, tmp_path: Path):
    result = subprocess.run(
        [str(venv / "otel-llm"), "demo"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for version in ("1", "2"):
        line = f"otel_llm/examples/anthropic_agent.py --version {version} under opentelemetry-instrument"
        assert line in result.stdout
        assert f"Tasks of version {version}, from the task spans the agent exported:" in result.stdout
    assert result.stdout.count("stopped at max_iterations after 1 grant") == 1
    assert "Killed by the collector: task runaway (" in result.stdout
    assert "webhook received: Task killed: runaway" in result.stdout
    assert "Alerts received by the webhook: 2" in result.stdout

"""A PNG of the HTML report, taken by headless Chromium (Debian's /usr/bin/chromium)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["CHROMIUM_FLAGS", "BrowserError", "chromium", "screenshot"]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


class BrowserError(RuntimeError):
    """No usable Chromium, or it failed to render the page."""


def chromium() -> str:
    """The Chromium binary on the PATH (Debian's package installs /usr/bin/chromium)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BrowserError("no Chromium found: install it (Debian: apt-get install chromium)")
    return found


def screenshot(html: Path, png: Path, *, width: int = 1400, height: int = 2600, timeout: float = 60) -> Path:
    """Render ``html`` and write a ``width`` x ``height`` PNG of it to ``png``."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="otel-llm-chromium-") as profile:
        command = [
            chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "--virtual-time-budget=5000", f"--screenshot={png.resolve()}", html.resolve().as_uri(),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BrowserError(f"Chromium did not finish the screenshot in {timeout:.0f} s") from exc
    if done.returncode != 0 or not png.exists():
        raise BrowserError(f"Chromium failed to render {html} (exit {done.returncode}): {done.stderr[-500:]}")
    return png

"""CI runs the documented test command, after installing the real images it tests on."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_documented_command_after_installing_fashion_mnist():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    command = lines[-1]
    assert command.startswith("python3 -m venv .venv && ") and "pytest -q" in command
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert any(command in p.read_text() for p in docs), "the test command is not documented"
    install = next(i for i, line in enumerate(lines) if "apt-get install" in line)
    assert "dataset-fashion-mnist" in lines[install] and install < len(lines) - 1

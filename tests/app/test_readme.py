"""The README's walk-through, run against a real server: every command in its curl
sections, and every answer it shows (`# {...}` under a command, `...` standing for what
varies) must be what the server says."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.settings import Settings
from tests.conftest import REPO, ServerProcess, server_env

pytestmark = pytest.mark.e2e

WALK_THROUGH = ("## First steps with curl", "## Configuration")


@dataclass(frozen=True)
class Step:
    command: str
    expected: str | None  # the answer the README shows, `...` for what varies


def walk_through(readme: str) -> list[Step]:
    """The shell blocks between the walk-through's headings, as commands and the answers
    shown under them (or beside them, for a one-line JSON answer)."""
    section = readme.split(WALK_THROUGH[0], 1)[1].split(WALK_THROUGH[1], 1)[0]
    steps: list[Step] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        command: list[str] = []
        shown: list[str] = []
        for line in block.splitlines():
            if line.startswith("#"):
                shown.append(re.sub(r"\s{2,}\(.*\)$", "", line[1:].strip()))
                continue
            if not line.strip():
                continue
            if shown or (command and not command[-1].endswith("\\") and not _open(command)):
                _close(steps, command, shown)
            inline = re.match(r"^(.*?)\s{2,}#\s*(\{.*?\})(\s{2,}.*)?$", line)
            if inline:
                command.append(inline.group(1))
                shown.append(inline.group(2))
            else:
                command.append(re.sub(r"\s{2,}#.*$", "", line))
        _close(steps, command, shown)
    return steps


def _close(steps: list[Step], command: list[str], shown: list[str]) -> None:
    if command:
        steps.append(Step("\n".join(command), "".join(shown) or None))
    command.clear()
    shown.clear()


def _open(command: list[str]) -> bool:
    # A command whose quotes or $( ) are not closed yet continues on the next line.
    text = "\n".join(command)
    return (
        text.count("'") % 2 == 1 or text.count("$(") > text.count(")") or text.count('"') % 2 == 1
    )


def pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in expected.split("...")), re.S)


def test_walk_through_parses_into_commands_and_answers() -> None:
    steps = walk_through((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(steps) >= 20
    shown = [s for s in steps if s.expected]
    assert len(shown) >= 9
    assert any('"debug_code":"..."' in (s.expected or "") for s in shown)


def test_the_readme_walk_through_works_against_a_real_server(
    start_server: Callable[..., ServerProcess], settings: Settings, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    env = {"VAR_DIR": str(var), "SMS_BACKEND": "console"}
    subprocess.run(
        [sys.executable, "-m", "app.cli", "seed-demo"],
        cwd=REPO, env=server_env(settings, **env), check=True, capture_output=True,
    )  # fmt: skip
    server = start_server(**env)
    steps = walk_through((REPO / "README.md").read_text(encoding="utf-8"))
    base = server.base_url.removeprefix("http://")
    script = ["set -u"]
    for i, step in enumerate(steps):
        command = step.command.replace("localhost:8000", base)
        script.append(f'{{\n{command}\n}} > out-{i}.txt 2>&1 || echo "exit $?" >> out-{i}.txt')
    (tmp_path / "walk.sh").write_text("\n".join(script) + "\n")
    run = subprocess.run(["bash", "walk.sh"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    wrong = []
    for i, step in enumerate(steps):
        said = (tmp_path / f"out-{i}.txt").read_text().strip()
        if said.splitlines()[-1:] and said.splitlines()[-1].startswith("exit "):
            wrong.append(f"{step.command}\n  failed: {said}")
        elif step.expected and not pattern(step.expected).fullmatch(said):
            wrong.append(f"{step.command}\n  README: {step.expected}\n  server: {said}")
    assert not wrong, "\n\n".join(wrong)

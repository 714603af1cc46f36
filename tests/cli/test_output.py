"""Clean output (issue 11): what users, files, models and errors say is printed literally
(rich markup and emoji codes are not interpreted), every line ``smesh`` prints on stderr
after a live view starts a line of its own, and reasons wrap between words."""

from __future__ import annotations

import json
from pathlib import Path

from _clikit import PRELUDE, smesh

from smesh.backends.model import model_status


def test_install_hints_and_backend_names_are_printed_literally(tmp_path: Path) -> None:
    status = smesh("status", env={"COLUMNS": "200"})
    assert status.returncode == 0
    if not model_status("1.5b").available:
        assert "pip install 'smesh[local-1.5b]'" in status.stdout
    compare = smesh("compare", "--backends", "anthropic:x:", env={"ANTHROPIC_API_KEY": ""})
    assert "anthropic:x:" in compare.stdout  # not an emoji, not eaten
    assert "❌" not in compare.stdout + compare.stderr


def test_markup_in_user_text_is_not_interpreted(tmp_path: Path) -> None:
    journal = tmp_path / "[bold]j[/bold].db"
    run = smesh("agents", "--demo", "--backend", "scripted", "--journal", str(journal))
    assert run.returncode == 0, run.stderr
    assert f"journal: {journal}" in run.stdout
    listed = smesh("runs", "--journal", str(journal), env={"COLUMNS": "200"})
    assert f"Runs in {journal}" in listed.stdout


def test_lines_after_a_live_view_start_their_own_line(tmp_path: Path) -> None:
    result = smesh(
        "agents", "--demo", "--backend", "down", "--journal", str(tmp_path / "j.db"),
        prelude=PRELUDE, env={"COLUMNS": "80"},
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    stop = [line for line in lines if "smesh:" in line]
    assert stop and all(line.startswith("smesh:") for line in stop), stop
    # reasons wrap between words at 80 columns, never inside one
    assert "connection" in result.stdout and "refused" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_stop_line_names_the_journal_command_exactly(tmp_path: Path) -> None:
    journal = tmp_path / "dir with space" / "j.db"
    result = smesh(
        "agents", "--demo", "--backend", "scripted", "--max-calls", "2", "--json",
        "--journal", str(journal),
    )  # fmt: skip
    assert result.returncode == 1
    run_id = json.loads(result.stdout)["run_id"]
    line = result.stderr.strip().splitlines()[-1]
    assert line.endswith(f"--journal '{journal}' --resume {run_id}")  # quoted for a shell

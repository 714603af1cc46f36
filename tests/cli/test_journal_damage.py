"""The corrupted-journal matrix (issue 11): a journal damaged in every way we know (a 4 KB
overwrite mid-file, a truncated file, a clobbered header, each table dropped, a row that
does not parse, bad JSON or bytes in each column) read by ``trace``, ``trace --json``,
``runs --json`` and resumed with ``--resume``, as real processes. Never a traceback and
never an internal error: either it works, or one line says what is damaged and the exit
status is 2; ``--json`` always prints one JSON document; what is still readable is shown
and resumed, and a run whose work is gone is refused."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from _clikit import smesh

Damage = Callable[[Path], None]


def _sql(statement: str) -> Damage:
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as db:
            db.execute(statement)

    return damage


def _overwrite(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes((i * 151 + 7) % 256 for i in range(4096))
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:100] = b"\xff" * 100
    path.write_bytes(bytes(data))


DAMAGES: dict[str, Damage] = {
    "overwrite 4 KB mid-file": _overwrite,
    "truncate to half": _truncate,
    "clobber the header": _header,
    "drop runs": _sql("DROP TABLE runs"),
    "drop events": _sql("DROP TABLE events"),
    "drop actions": _sql("DROP TABLE actions"),
    "bad JSON in runs.meta": _sql("UPDATE runs SET meta = '{\"app\": '"),
    "bad JSON in runs.report": _sql("UPDATE runs SET report = '[1, 2'"),
    "bad JSON in actions.detail": _sql(
        "UPDATE actions SET detail = 'not json' WHERE seq IN (SELECT seq FROM actions LIMIT 3)"
    ),
    "bad bytes in events.signal": _sql("UPDATE events SET signal = x'c1c1c1' WHERE kind = 'task'"),
    "a row that does not parse": _sql(
        "UPDATE actions SET time = 'soon', agent = NULL WHERE seq = (SELECT min(seq) FROM actions)"
    ),
}
READERS = {
    "trace": ["trace"],
    "trace --json": ["trace", "--json"],
    "runs --json": ["runs", "--json"],
    "--resume": ["agents", "--demo", "--backend", "scripted", "--json", "--resume", "{run}"],
}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A journal holding one demo run stopped by its budget (so a resume has work left)."""
    path = tmp_path_factory.mktemp("journal") / "base.db"
    first = smesh(*READERS["--resume"][:-2], "--max-calls", "3", "--journal", str(path))
    assert first.returncode == 1, first.stderr
    return path, json.loads(first.stdout)["run_id"]


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_journal_never_tracebacks(
    stopped_run: tuple[Path, str], tmp_path: Path, damage: str, reader: str
) -> None:
    base, run_id = stopped_run
    path = tmp_path / "j.db"
    shutil.copy(base, path)
    DAMAGES[damage](path)
    args = [a.format(run=run_id) for a in READERS[reader]]
    result = smesh(*args, "--journal", str(path))
    _never_a_traceback(result)
    if "--json" in args:
        json.loads(result.stdout)  # one document, whatever happened
    if result.returncode == 2:
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("smesh: error:"), result.stderr
    _expected(damage, reader, result)


def _never_a_traceback(result: subprocess.CompletedProcess[str]) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "internal error" not in text, text
    assert result.returncode in (0, 1, 2), (result.returncode, result.stderr)


def _expected(damage: str, reader: str, result: subprocess.CompletedProcess[str]) -> None:
    """What each damage must do, where it is certain."""
    code, err = result.returncode, result.stderr
    if damage == "clobber the header":
        assert code == 2 and "journal" in err
    elif damage == "drop events" and reader == "--resume":
        assert code == 2 and "events table is missing" in err
    elif damage == "drop actions" and reader == "--resume":
        assert code == 0 and "trace is lost" in err  # the work resumes
    elif damage.startswith("drop") and reader.startswith("trace"):
        assert code == 2 and "damaged" in err
        assert "missing" in err or "no such table" in err
    elif damage == "bad bytes in events.signal" and reader == "--resume":
        assert code == 0 and "do not decode" in err  # resumed what could be read, said so
    elif damage.startswith("bad JSON") and reader in ("trace", "trace --json"):
        assert code == 2 and "damaged" in err and "not readable JSON" in err
        if reader == "trace --json":
            assert json.loads(result.stdout)["damaged"]  # what could be read, and what not
    elif damage == "a row that does not parse" and reader.startswith("trace"):
        assert code == 2 and "do not parse" in err
    if reader == "trace" and code == 2 and "run " in result.stdout:
        assert "signal events" in result.stdout  # it showed what it could read

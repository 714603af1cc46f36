"""Resuming is safe (issue 11): a run records what it was, ``--resume`` refuses another
command's or another path's run before anything loads, never overwrites what a finished
run spent, and an unknown run fails fast and leaves nothing behind; ``--resume RUN --out
FILE`` writes a finished run's report again without a model call. Plus where the journal
lives, and several processes writing one journal at once."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from _clikit import SAMPLES, popen, smesh

from smesh.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _stored(journal: Path, run_id: str) -> dict[str, object]:
    with sqlite3.connect(journal) as db:
        report = json.loads(
            db.execute("SELECT report FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
        )
    assert isinstance(report, dict)
    return report


def test_review_refuses_to_resume_another_repository(
    fakes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = str(fakes / "j.db")
    py, js = str(SAMPLES / "vulnerable_py"), str(SAMPLES / "vulnerable_js")
    if not Path(py).is_dir() or not Path(js).is_dir():
        pytest.skip("the samples changed")
    code, out, _ = _run(
        capsys, "review", "--path", py, "--backend", "oracle", "--json", "--journal", journal
    )
    assert code in (0, 1)
    first = json.loads(out)["summary"]
    before = _stored(Path(journal), first["run_id"])

    code, out, err = _run(
        capsys, "review", "--path", js, "--backend", "oracle", "--json",
        "--journal", journal, "--resume", first["run_id"],
    )  # fmt: skip
    assert code == 2
    assert f"run {first['run_id']} was started with path" in err and "vulnerable_py" in err
    assert json.loads(out)["exit_code"] == 2
    assert _stored(Path(journal), first["run_id"]) == before  # untouched

    code, _, err = _run(
        capsys, "swarm", "--path", py, "--journal", journal, "--resume", first["run_id"]
    )
    assert code == 2 and "is a `smesh review` run, not `swarm`" in err


def test_resuming_a_finished_run_rewrites_its_report_and_keeps_its_numbers(
    fakes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = str(fakes / "j.db")
    args = ["review", "--path", str(SAMPLES), "--backend", "oracle", "--journal", journal]
    code, out, _ = _run(capsys, *args, "--json")
    assert code == 0
    first = json.loads(out)
    run_id = first["summary"]["run_id"]
    calls = first["summary"]["llm_calls"]
    assert calls > 0

    report = fakes / "again.md"
    started = time.monotonic()
    code, out, err = _run(
        capsys, *args, "--resume", run_id, "--format", "markdown", "--out", str(report)
    )
    assert code == 0, err
    assert time.monotonic() - started < 30
    assert report.read_text().startswith("# Code review")
    assert "already finished with every task accepted" in err
    stored = _stored(Path(journal), run_id)
    assert stored["llm_calls"] == calls  # the second session asked nothing, and lost nothing
    assert stored["duration_s"] >= first["summary"]["duration_s"]
    code, out, _ = _run(capsys, *args, "--resume", run_id, "--json")
    assert json.loads(out)["summary"]["llm_calls"] == calls  # the report shows the whole run


def test_an_unknown_run_fails_fast_and_leaves_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    started = time.monotonic()
    # the embedded model: were it loaded first, this would take many seconds
    result = smesh("agents", "--demo", "--resume", "nosuchrun", "--journal", str(journal))
    assert result.returncode == 2
    assert "nothing to resume" in result.stderr and "loading" not in result.stderr
    assert time.monotonic() - started < 20
    assert not journal.exists()  # not even an empty journal

    assert (
        smesh("agents", "--demo", "--backend", "scripted", "--journal", str(journal)).returncode
        == 0
    )
    size, mtime = journal.stat().st_size, journal.stat().st_mtime_ns
    result = smesh("agents", "--demo", "--resume", "nosuchrun", "--journal", str(journal))
    assert result.returncode == 2 and "no run 'nosuchrun'" in result.stderr
    assert (journal.stat().st_size, journal.stat().st_mtime_ns) == (size, mtime)
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_the_journal_lives_in_the_state_directory_not_the_current_one(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    assert smesh("agents", "--demo", "--backend", "scripted", cwd=work, env=env).returncode == 0
    assert (tmp_path / "state" / "smesh" / "journal.db").is_file()
    home = tmp_path / "home"
    env = {"XDG_STATE_HOME": "", "HOME": str(home)}
    assert smesh("agents", "--demo", "--backend", "scripted", cwd=work, env=env).returncode == 0
    assert (home / ".local" / "state" / "smesh" / "journal.db").is_file()
    assert list(work.iterdir()) == []  # nothing in the user's repository
    listed = smesh("runs", "--json", cwd=work, env=env)
    assert len(json.loads(listed.stdout)["runs"]) == 1


def test_four_processes_write_one_journal_at_once(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    procs = [
        popen("agents", "--demo", "--backend", "slowdemo:0.1", "--json", "--journal", str(journal))
        for _ in range(4)
    ]
    results = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err
    ids = {json.loads(out)["run_id"] for out, _ in results}
    listed = json.loads(smesh("runs", "--json", "--journal", str(journal)).stdout)["runs"]
    assert {r["run_id"] for r in listed} == ids
    assert all(r["status"] == "complete" and r["failed"] == r["unfinished"] == 0 for r in listed)
    assert {r["accepted"] for r in listed} == {len(json.loads(results[0][0])["tasks"])}

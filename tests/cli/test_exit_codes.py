"""Every command's exit code matches its outcome (issue 11): 0 all work accepted; 1 the run
ended with failed or unfinished work, or a backend or analyzer never worked; 2 a usage or
configuration error, found before anything ran; 130 interrupted (see test_stop.py).

One table, run in-process against scripted backends; a usage or configuration error must
also be exactly one line on stderr, with no traceback and nothing left behind."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from _clikit import SAMPLES, closed_port

from smesh.cli import main

#: (id, command line, exit code); {tmp} is the test's directory, {samples} the sample
#: repositories (the journal is the default one, in the test's state directory)
TABLE: list[tuple[str, str, int]] = [
    ("agents ok", "agents --demo --backend scripted", 0),
    ("agents budget", "agents --demo --backend scripted --max-calls 3", 1),
    ("agents backend never works", "agents --demo --backend down", 1),
    ("agents no ollama", "agents --demo --backend ollama:qwen", 2),
    ("agents no anthropic key", "agents --demo --backend anthropic:x", 2),
    ("agents unknown backend", "agents --demo --backend nosuch:x", 2),
    ("agents no agent for a skill", "agents --demo --agents 2 --backend scripted", 2),
    ("agents threads off local", "agents --demo --backend scripted --threads 2", 2),
    ("agents resume unknown", "agents --demo --backend scripted --resume nope", 2),
    ("agents without --demo", "agents", 2),
    ("review ok", "review --path {samples} --backend oracle --json", 0),
    (
        "review backend never works",
        "review --path {samples} --backend down --json",
        1,
    ),
    (
        "review budget",
        "review --path {samples} --backend oracle --max-calls 2 --json",
        1,
    ),
    (
        "review unwritable --out",
        "review --path {samples} --backend oracle --out /proc/nope/r.md",
        2,
    ),
    ("review bad lens", "review --path {samples} --reviewers grammar", 2),
    (
        "swarm analyzer fails",
        "swarm --path {samples} --specialists none --analyzers broken --json",
        1,
    ),
    ("swarm nothing to run", "swarm --path {samples} --specialists none --analyzers none", 2),
    (
        "code ok",
        "code 'word statistics' --out {tmp}/proj --backend coders --unsafe-local-exec --json",
        0,
    ),
    (
        "code nothing accepted",
        "code 'word statistics' --out {tmp}/p2 --backend down --unsafe-local-exec --json",
        1,
    ),
    ("code --out in /proc", "code x --out /proc/x --unsafe-local-exec", 2),
    ("code --out under a file", "code x --out /etc/passwd/sub --unsafe-local-exec", 2),
    ("compare unknown backend", "compare --backends nosuch:x --json", 1),
    ("compare backend down", "compare --backends down:x --json", 1),
    ("compare ok", "compare --backends slow:0 --prompt hi --json", 0),
    ("compare a double's bug", "compare --backends scripted --prompt hi --json", 1),
    ("trace no journal", "trace --journal {tmp}/none.db", 2),
    ("runs no journal", "runs --journal {tmp}/none.db --json", 0),
    ("sim ok", "sim --json --nodes 10 --ticks 3", 0),
    ("sim bad topology", "sim --topology hexagon", 2),
    ("sim --record in /proc", "sim --record /proc/x/j.db", 2),
    ("status", "status --json", 0),
    ("bench unknown suite", "bench --suite nope", 2),
    ("mesh id", "mesh id {tmp}/node.key --create", 0),
    ("mesh issue without --ca", "mesh issue n1", 2),
    ("node unknown agent", "node --agents astronaut", 2),
    ("dashboard no journal", "dashboard --journal {tmp}/none.db", 2),
    ("eval unknown suite", "eval nope", 2),
    ("unknown command", "frobnicate", 2),
]


@pytest.mark.parametrize(
    ("args", "expected"), [(a, e) for _, a, e in TABLE], ids=[i for i, _, _ in TABLE]
)
def test_exit_code_matches_the_outcome(
    fakes: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: str,
    expected: int,
) -> None:
    if "swarm" in args or "review" in args:
        pytest.importorskip("bandit")
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port()}")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    journal = fakes / "state" / "smesh" / "journal.db"  # the default, under XDG_STATE_HOME
    argv = shlex.split(args.format(tmp=fakes, samples=SAMPLES))
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == expected, (out, err)
    assert "Traceback" not in out + err
    if expected == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("smesh: error:"), err
        assert not journal.exists() or _no_runs(journal)
    if "--json" in argv:
        doc = json.loads(out)  # exactly one JSON document, whatever happened
        if expected == 2:
            assert doc["exit_code"] == 2 and doc["error"] in err


def _no_runs(path: Path) -> bool:
    """A refused command leaves no run behind in the journal."""
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0

"""The vulnerability scorer (``python -m smesh.eval.vulns``) on a tiny set whose answers
are known: two positives and their decoys, the real bandit and flow analysis, and the
scripted model that confirms everything it is asked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smesh.eval.vulns import CORPUS as REAL
from smesh.eval.vulns import Tally, load_items, main, run

pytest.importorskip("bandit", reason="the scorer runs the real bandit")

CORPUS = [
    {
        "prompt_id": 1, "cwe_identifier": "CWE-78", "line_text": "    os.system(cmd)",
        "origin_code": "import os\n\n\ndef f(cmd):\n    os.system(cmd)\n",
    },
    {
        "prompt_id": 2, "cwe_identifier": "CWE-328", "line_text": "    return hashlib.md5(data)",
        "origin_code": "import hashlib\n\n\ndef f(data):\n    return hashlib.md5(data)\n",
    },
    {
        "prompt_id": 3, "cwe_identifier": "CWE-78", "line_text": "    os.popen(c)",
        "origin_code": "import os\n\n\ndef g(c):\n    os.popen(c)\n",
    },
]  # fmt: skip
DECOYS = [
    {
        "id": "1-constant", "prompt_id": 1, "cwe": "CWE-78", "variant": "constant",
        "line": 6, "end_line": 6, "note": "",
        "code": "import os\n\n\ndef f(cmd):\n    cmd = 'ls -l'\n    os.system(cmd)\n",
    },
    {
        "id": "2-fixed", "prompt_id": 2, "cwe": "CWE-328", "variant": "fixed",
        "line": 5, "end_line": 5, "note": "",
        "code": "import hashlib\n\n\ndef f(data):\n    return hashlib.sha256(data)\n",
    },
]  # fmt: skip


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    corpus, decoys = tmp_path / "corpus.jsonl", tmp_path / "decoys.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    decoys.write_text("".join(json.dumps(d) + "\n" for d in DECOYS))
    return corpus, decoys


def test_items_are_positives_and_the_decoys_of_the_chosen_ones(files: tuple[Path, Path]) -> None:
    items = load_items(*files)
    assert sorted((i.id, i.positive, i.line) for i in items) == [
        ("1", True, 5),
        ("1-constant", False, 6),
        ("2", True, 5),
        ("2-fixed", False, 5),
        ("3", True, 5),
    ]
    one_each = load_items(*files, n=1, seed=0)
    assert sum(i.positive for i in one_each) == 2  # one positive per weakness
    assert {i.label for i in items} == {"CWE-78", "CWE-327"}  # 328 is folded into 327


def test_scores_on_a_known_set(files: tuple[Path, Path]) -> None:
    result: dict[str, Any] = asyncio.run(run(load_items(*files), "scripted"))
    cmd, md5 = result["categories"]["CWE-78"], result["categories"]["CWE-328"]
    assert (cmd["positives"], cmd["decoys"], md5["positives"], md5["decoys"]) == (2, 1, 1, 1)
    # bandit flags every os.system/os.popen, the constant one too: no better than chance
    assert (cmd["bandit"]["tpr"], cmd["bandit"]["fpr"], cmd["bandit"]["score"]) == (1.0, 1.0, 0.0)
    assert cmd["bandit"]["precision"] == round(2 / 3, 3)
    # the scripted specialists confirm everything they are asked, the constant sink too
    assert (cmd["llm"]["tpr"], cmd["llm"]["fpr"]) == (1.0, 1.0)
    # consensus: the flow analysis proves the constant and vetoes it
    assert (cmd["consensus"]["tpr"], cmd["consensus"]["fpr"], cmd["consensus"]["score"]) == (
        1.0,
        0.0,
        1.0,
    )
    assert cmd["consensus"]["precision"] == 1.0
    # nothing traced from a request here: the flow analysis reports nothing of its own
    assert cmd["flow"]["tp"] == cmd["flow"]["fp"] == 0
    # MD5 is found by all; SHA-256 by none
    for source in ("bandit", "llm", "consensus"):
        assert (md5[source]["tpr"], md5[source]["fpr"]) == (1.0, 0.0), source
    overall = result["overall"]
    assert overall["bandit"]["score"] == 0.5 and overall["consensus"]["score"] == 1.0
    assert result["items"] == {"positives": 3, "decoys": 2} and result["llm_calls"] > 0


def test_tally_figures() -> None:
    tally = Tally()
    for positive, flagged in [(True, True), (True, False), (False, True), (False, False)]:
        tally.add(positive, flagged)
    assert tally.figures() == {
        "tpr": 0.5, "fpr": 0.5, "score": 0.0, "precision": 0.5, "tp": 1, "fp": 1, "fn": 1, "tn": 1,
    }  # fmt: skip
    assert Tally().figures()["score"] is None


def test_the_command_prints_one_json_document(files: tuple[Path, Path]) -> None:
    corpus, decoys = files
    done = subprocess.run(
        [sys.executable, "-m", "smesh.eval.vulns", "--n", "1", "--json",
         "--corpus", str(corpus), "--decoys", str(decoys)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) >= {"categories", "overall", "items", "llm_calls", "n", "seed", "plan"}


def test_bad_arguments_exit_2(files: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, _ = files
    assert main(["--n", "0", "--corpus", str(corpus)]) == 2
    assert main(["--corpus", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["--corpus", str(corpus), "--category", "CWE-1"]) == 2


def test_smesh_eval_vulns_is_a_suite_with_the_eval_contract(files: tuple[Path, Path]) -> None:
    """``smesh eval vulns`` (the registered suite): the eval JSON contract, the four
    conditions, intervals around each score and every item's flags kept for audit."""
    from smesh.eval.vulns_suite import evaluate

    corpus, decoys = files
    result = evaluate(backend="scripted", n=5, seed=0, corpus=corpus, decoys=decoys)
    assert result.suite == "vulns" and [c.name for c in result.conditions] == [
        "bandit", "flow", "llm", "consensus",
    ]  # fmt: skip
    consensus, bandit = result.condition("consensus"), result.condition("bandit")
    assert consensus.score == 1.0 and bandit.score == 0.5  # as in test_scores_on_a_known_set
    for cond in result.conditions:
        assert cond.ci_low <= cond.score <= cond.ci_high, cond
    assert bandit.tokens_per_item == 0.0 and consensus.tokens_per_item > 0
    assert len(result.extra["records"]) == 5 and result.extra["unfinished"] == 0
    assert result.extra["precision"]["consensus"] == 1.0


def test_bootstrap_interval_is_seeded_and_stratified() -> None:
    from smesh.eval.vulns_suite import bootstrap_macro

    records = [
        {"category": "CWE-78", "variant": "positive", "x": True},
        {"category": "CWE-78", "variant": "positive", "x": False},
        {"category": "CWE-78", "variant": "constant", "x": False},
        {"category": "CWE-89", "variant": "positive", "x": True},  # no decoy: left out
    ]
    low, high = bootstrap_macro(records, "x", seed=1)
    assert (low, high) == bootstrap_macro(records, "x", seed=1)
    assert 0.0 <= low <= 0.5 <= high <= 1.0  # TPR in {0, .5, 1}, FPR always 0
    assert bootstrap_macro([], "x", seed=1) == (0.0, 0.0)


def test_a_missing_corpus_is_a_usage_error(tmp_path: Path) -> None:
    from smesh.errors import UsageError
    from smesh.eval.vulns_suite import evaluate

    with pytest.raises(UsageError, match="no corpus"):
        evaluate(backend="scripted", n=1, seed=0, corpus=tmp_path / "none.jsonl")


def test_cli_eval_vulns_bad_n_exits_2() -> None:
    """A bad --n is one line and exit 2, as for every suite."""
    done = subprocess.run(
        [sys.executable, "-m", "smesh", "eval", "vulns", "--backend", "scripted", "--n", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.skipif(not REAL.is_file(), reason="the shared corpora are not beside the repo")
def test_cli_eval_vulns_json_on_the_real_corpus() -> None:
    """``smesh eval vulns --json`` on the shared corpus: exactly one JSON document on
    stdout, progress on stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "smesh", "eval", "vulns", "--backend", "scripted", "--n", "1",
         "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["suite"] == "vulns" and doc["n"] == 1
    assert len(doc["extra"]["categories"]) == 8  # the corpus's eight weaknesses
    assert doc["extra"]["items"]["positives"] == 8

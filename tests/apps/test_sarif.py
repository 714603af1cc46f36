"""The SARIF writer and the schema it is checked against (shipped with the tests)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smesh.apps.common import Summary
from smesh.apps.review import ReviewFinding, ReviewReport, review_sarif
from smesh.apps.swarm import SwarmFinding, SwarmReport, swarm_sarif

SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"
SUMMARY = Summary(
    run_id="r1",
    duration_s=1.0,
    llm_calls=2,
    tokens=3,
    signals=4,
    reinforcements=1,
    consensus=1,
    total=2,
    stopped_by="quiescent",
    tasks=5,
    trust={"a": 0.5},
)


def test_the_schema_is_the_unmodified_oasis_file_beside_the_tests() -> None:
    # beside the tests, not in ../shared: a clone without shared/ still validates
    readme = (SCHEMA.parent / "README.md").read_text(encoding="utf-8")
    [digest] = re.findall(r"`([0-9a-f]{64})`", readme)
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == digest
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["id"].startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
    assert "OASIS Open" in readme


@pytest.mark.parametrize(
    "broken",
    [
        {"version": "2.1.0"},  # no runs
        {"version": "2.0.0", "runs": []},  # another version
        {"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]},  # a driver needs a name
        {"version": "2.1.0", "runs": [], "extra": 1},  # no extra properties at the top
    ],
)
def test_the_validator_refuses_a_log_that_breaks_the_schema(
    validate_sarif: Callable[[Any], None], broken: dict[str, Any]
) -> None:
    with pytest.raises(AssertionError):
        validate_sarif(broken)


def test_review_and_swarm_logs_share_one_writer(
    validate_sarif: Callable[[Any], None], tmp_path: Path
) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    review = ReviewReport(
        findings=[
            ReviewFinding(
                file="a.py",
                line_start=1,
                line_end=2,
                category="style",
                severity="low",
                message="m",
                support=["style", "security"],
                disputed=False,
                consensus=True,
            )
        ],
        summary=SUMMARY,
        root=str(tmp_path),
    )
    swarm = SwarmReport(
        findings=[
            SwarmFinding(
                file="a.py",
                line=1,
                cwe="CWE-89",
                severity="high",
                message="m",
                support=["injection"],
                consensus=False,
            )
        ],
        summary=SUMMARY,
        root=str(tmp_path / "a.py"),  # a file: URIs are relative to its directory
    )
    logs = [review_sarif(review), swarm_sarif(swarm)]
    for log in logs:
        validate_sarif(log)
        [run] = log["runs"]
        assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == tmp_path.resolve().as_uri() + "/"
        assert run["properties"]["summary"]["run_id"] == "r1"
    agreed = logs[0]["runs"][0]["results"][0]
    assert (agreed["kind"], agreed["level"], agreed["ruleId"]) == ("fail", "note", "style")
    assert agreed["properties"]["support"] == ["style", "security"]
    assert agreed["properties"]["disputed"] is False
    assert agreed["locations"][0]["physicalLocation"]["region"] == {"startLine": 1, "endLine": 2}
    unagreed = logs[1]["runs"][0]["results"][0]
    assert (unagreed["kind"], unagreed["level"], unagreed["ruleId"]) == ("review", "none", "CWE-89")
    assert "disputed" not in unagreed["properties"]
    [rule] = logs[1]["runs"][0]["tool"]["driver"]["rules"]
    assert rule["helpUri"].endswith("/89.html")
    assert rule["properties"]["tags"] == ["security", "external/cwe/cwe-89"]

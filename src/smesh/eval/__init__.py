"""``smesh eval``: does coordination through the field help? Measured, at equal cost.

Six suites, each comparing conditions on the same items:

- ``code`` — HumanEval: single agent, best-of-N, the smesh team (:mod:`.code`);
- ``reason`` — reasoning-gym: single, majority vote, trust-weighted consensus (:mod:`.reason`);
- ``fanout`` — 200 tasks over slow and flaky scripted workers: smesh bidding vs a central
  round-robin dispatcher vs a shared work queue (:mod:`.fanout`);
- ``faults`` — agents killed mid-run (:mod:`.faults`);
- ``scale`` — coordination cost from 10 to 10,000 agents and 100 to 100,000 tasks
  (:mod:`.scale`);
- ``vulns`` — ``smesh swarm`` on CyberSecEval's labelled Python snippets and their decoys:
  bandit alone, the flow analysis alone, the LLM specialists alone and the swarm's
  consensus, scored TPR - FPR per weakness (:mod:`.vulns_suite`).

``code`` and ``reason`` need the ``eval`` extra (the benchmark packages) and a backend;
``vulns`` needs bandit (the ``apps`` extra), the shared corpora beside the repository and a
backend (``scripted`` confirms everything: a fixed point, no model); the others run
scripted workers and need nothing. Every result has the same JSON shape
(:class:`~smesh.eval.result.EvalResult`).
"""

from __future__ import annotations

from smesh.eval.result import ConditionResult, EvalResult, ItemRecord

__all__ = ["DEFAULT_N", "SUITES", "ConditionResult", "EvalResult", "ItemRecord"]

SUITES = ("code", "reason", "fanout", "faults", "scale", "vulns")

#: items per suite when ``--n`` is not given (problems, problems, tasks, tasks, max tasks,
#: positives per weakness)
DEFAULT_N = {
    "code": 40,
    "reason": 60,
    "fanout": 200,
    "faults": 200,
    "scale": 100_000,
    "vulns": 3,
}

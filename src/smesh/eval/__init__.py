"""``smesh eval``: does coordination through the field help? Measured, at equal cost.

Five suites, each comparing conditions on the same items:

- ``code`` — HumanEval: single agent, best-of-N, the smesh team (:mod:`.code`);
- ``reason`` — reasoning-gym: single, majority vote, trust-weighted consensus (:mod:`.reason`);
- ``fanout`` — 200 tasks over slow and flaky scripted workers: smesh bidding vs a central
  round-robin dispatcher vs a shared work queue (:mod:`.fanout`);
- ``faults`` — agents killed mid-run (:mod:`.faults`);
- ``scale`` — coordination cost from 10 to 10,000 agents and 100 to 100,000 tasks
  (:mod:`.scale`).

``code`` and ``reason`` need the ``eval`` extra (the benchmark packages) and a backend; the
others run scripted workers and need nothing. Every result has the same JSON shape
(:class:`~smesh.eval.result.EvalResult`).
"""

from __future__ import annotations

from smesh.eval.result import ConditionResult, EvalResult, ItemRecord

__all__ = ["DEFAULT_N", "SUITES", "ConditionResult", "EvalResult", "ItemRecord"]

SUITES = ("code", "reason", "fanout", "faults", "scale")

#: items per suite when ``--n`` is not given (problems, problems, tasks, tasks, max tasks)
DEFAULT_N = {"code": 40, "reason": 60, "fanout": 200, "faults": 200, "scale": 100_000}

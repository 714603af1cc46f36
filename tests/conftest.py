"""Settings for the whole suite: the hypothesis profiles.

Local runs stay random: hypothesis' ``default`` profile draws new examples every run and
keeps failing ones in its example database, and a failure prints the ``@seed(...)`` that
reproduces it. CI must not be flaky, so CI runs the ``ci`` profile: every property test is
*derandomized* (its examples come from a fixed seed, a hash of the test function, so each
run sees the same examples), the example database is off (a CI machine starts clean), and
a failure prints the blob that reproduces it.

The ``ci`` profile is chosen by ``--hypothesis-profile ci`` (what ``make test`` passes when
``CI`` is set; ``.ci/run`` sets it) or by the ``CI`` environment variable set to any value,
as hypothesis itself does. Recent hypothesis versions ship a ``ci`` profile of their own;
it is registered here with the same settings so that every supported version behaves
alike. The pytest header says which profile runs and where its examples come from.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# hypothesis may have loaded its own "ci" (it also detects vendor CI variables): reload ours
if "CI" in os.environ or settings.get_current_profile_name() == "ci":
    settings.load_profile("ci")


def pytest_report_header(config: pytest.Config) -> str:
    """Which hypothesis profile this run uses, and where its examples come from."""
    profile = settings.get_current_profile_name()
    current = settings()  # a settings object with the current profile's values
    if current.derandomize:
        how = "derandomized: each property test's seed is fixed (a hash of the test)"
    elif (seed := config.getoption("hypothesis_seed", None)) is not None:
        how = f"seed {seed} (--hypothesis-seed)"
    else:
        how = "random seeds: a failure prints the @seed(...) that reproduces it"
    database = "off" if current.database is None else "on"
    return f"hypothesis: profile {profile!r}, {how}; example database {database}"

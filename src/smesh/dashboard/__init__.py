"""``smesh dashboard``: a live web view of a run's field, network, tasks, trust and cost.

Layers: this package is an application (it reads the core, the agents runtime and the
journal; nothing below imports it). Importing it is cheap: the web stack (Starlette,
uvicorn, prometheus-client, the optional extra ``smesh[ui]``) is imported only by
:mod:`smesh.dashboard.app`, :mod:`~smesh.dashboard.server` and
:mod:`~smesh.dashboard.metrics`.

* :mod:`~smesh.dashboard.events` — the one feed format (:class:`FeedEvent`);
* :mod:`~smesh.dashboard.model`, :mod:`~smesh.dashboard.tasks` — a run's state from the feed;
* :mod:`~smesh.dashboard.usage` — LLM usage per agent, backend and task (the Cost view);
* :mod:`~smesh.dashboard.sources` — the journal tail and the in-process
  :class:`DashboardFeed`;
* :mod:`~smesh.dashboard.hub` — batching, throttling and fan-out to pages;
* :mod:`~smesh.dashboard.controls` — approve / reject / cancel;
* :mod:`~smesh.dashboard.simrec` — ``smesh sim --record``;
* :mod:`~smesh.dashboard.app`, :mod:`~smesh.dashboard.server` — the web app and uvicorn.
"""

from __future__ import annotations

from smesh.dashboard.events import FeedEvent
from smesh.dashboard.model import RunModel
from smesh.dashboard.sources import DashboardFeed, JournalSource, JournalTail

__all__ = ["DashboardFeed", "FeedEvent", "JournalSource", "JournalTail", "RunModel"]

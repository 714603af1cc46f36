"""Token and cost accounting per agent and per run, with an extensible price table.

:class:`Accounting` is a wrapper backend that records every call into a :class:`Ledger`;
:class:`Budget` is the one set of hard limits (calls, tokens, cost, wall time) for a run.
Prices are USD per million tokens, looked up by glob patterns over ``backend`` names
(``anthropic:claude-3-5-haiku*``) so users can add their own with
:meth:`PriceTable.extend`. Unknown models cost 0 and are listed in
:attr:`Ledger.unpriced`, so a missing price is visible rather than silently free.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from smesh.backends.base import Backend, Request, Response
from smesh.backends.resilience import Wrapper
from smesh.errors import BackendError, BudgetExceeded, UsageError

__all__ = [
    "DEFAULT_PRICES",
    "Accounting",
    "Budget",
    "Ledger",
    "Price",
    "PriceTable",
    "Usage",
]


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """Price of one model, USD per million tokens.

    Attributes:
        input_per_mtok: prompt tokens.
        output_per_mtok: generated tokens.
    """

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        if self.input_per_mtok < 0 or self.output_per_mtok < 0:
            raise UsageError("prices must be >= 0")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Return the USD cost of a call."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


FREE = Price(input_per_mtok=0.0, output_per_mtok=0.0)

#: Built-in prices (USD per million tokens, list prices at the time of writing); extend or
#: override with :meth:`PriceTable.extend`. Local models cost nothing.
DEFAULT_PRICES: dict[str, Price] = {
    "local": FREE,
    "local:*": FREE,
    "ollama:*": FREE,
    "scripted*": FREE,
    "function*": FREE,
    "anthropic:claude-3-5-haiku*": Price(input_per_mtok=0.80, output_per_mtok=4.00),
    "anthropic:claude-3-haiku*": Price(input_per_mtok=0.25, output_per_mtok=1.25),
    "anthropic:claude-haiku-4*": Price(input_per_mtok=1.00, output_per_mtok=5.00),
    "anthropic:claude-3-5-sonnet*": Price(input_per_mtok=3.00, output_per_mtok=15.00),
    "anthropic:claude-3-7-sonnet*": Price(input_per_mtok=3.00, output_per_mtok=15.00),
    "anthropic:claude-sonnet-4*": Price(input_per_mtok=3.00, output_per_mtok=15.00),
    "anthropic:claude-opus-4*": Price(input_per_mtok=15.00, output_per_mtok=75.00),
    "openai:gpt-4o-mini*": Price(input_per_mtok=0.15, output_per_mtok=0.60),
    "openai:gpt-4o*": Price(input_per_mtok=2.50, output_per_mtok=10.00),
    "openai:gpt-4.1-mini*": Price(input_per_mtok=0.40, output_per_mtok=1.60),
    "openai:gpt-4.1*": Price(input_per_mtok=2.00, output_per_mtok=8.00),
}


class PriceTable:
    """Maps backend names to prices by glob pattern; the most specific (longest) match wins.

    Args:
        prices: pattern -> :class:`Price`; defaults to :data:`DEFAULT_PRICES`.
    """

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices: dict[str, Price] = dict(DEFAULT_PRICES if prices is None else prices)
        # backend -> price: every LLM call is priced, and glob matching is not cheap
        self._resolved: dict[str, Price | None] = {}

    def extend(self, prices: Mapping[str, Price]) -> PriceTable:
        """Return a new table with ``prices`` added (overriding equal patterns)."""
        merged = dict(self._prices)
        merged.update(prices)
        return PriceTable(merged)

    def lookup(self, backend: str) -> Price | None:
        """Return the price for ``backend`` (e.g. ``openai:gpt-4o-mini``), or None."""
        try:
            return self._resolved[backend]
        except KeyError:
            pass
        if backend in self._prices:
            price: Price | None = self._prices[backend]
        else:
            matches = [p for p in self._prices if fnmatch.fnmatchcase(backend, p)]
            price = self._prices[max(matches, key=len)] if matches else None
        self._resolved[backend] = price
        return price

    def __contains__(self, backend: object) -> bool:
        return isinstance(backend, str) and self.lookup(backend) is not None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Totals over some calls.

    Attributes:
        calls: calls made (including failed ones).
        errors: calls that raised.
        input_tokens: prompt tokens.
        output_tokens: generated tokens.
        cost_usd: cost in US dollars.
        latency_s: summed latency of successful calls.
    """

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            errors=self.errors + other.errors,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            latency_s=self.latency_s + other.latency_s,
        )


class Budget:
    """Hard limits on backend calls, tokens, cost and wall time, and the usage counted
    against them. None means unlimited.

    A run's agents charge every backend call to its budget, which records it in its
    :attr:`ledger` (per agent and per backend, priced by its price table), and
    :meth:`check` raises :class:`~smesh.errors.BudgetExceeded` once a limit is reached (and
    from then on). A :class:`Ledger` given a budget checks its own totals against the same
    limits, which is how the :class:`Accounting` wrapper enforces one.

    Args:
        calls: most backend calls.
        tokens: most input + output tokens.
        cost: most spend, in US dollars (see :class:`PriceTable`).
        wall_s: most seconds from :meth:`start`, on the event loop's clock (virtual in tests).
        prices: the price table of :attr:`ledger`; defaults to the built-in one.
    """

    def __init__(
        self,
        *,
        calls: int | None = None,
        tokens: int | None = None,
        cost: float | None = None,
        wall_s: float | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.limits: dict[str, float | None] = {
            "calls": calls,
            "tokens": tokens,
            "cost": cost,
            "wall_s": wall_s,
        }
        self.ledger = Ledger(prices=prices or PriceTable())
        # running totals: the ledger's breakdown is for reports, these are for checks
        self.calls = 0
        self.tokens = 0
        self.cost = 0.0
        self._started: float | None = None
        self.exceeded: str | None = None

    def fill(self, *, calls: int | None = None, wall_s: float | None = None) -> None:
        """Set the call and wall-time limits nobody gave (those still None), in place: an
        app fits its budget to the work it planned, and whoever holds this budget (the
        run's session, its stop watch) sees the fitted limits and the usage against them."""
        if self.limits["calls"] is None and calls is not None:
            self.limits["calls"] = calls
        if self.limits["wall_s"] is None and wall_s is not None:
            self.limits["wall_s"] = wall_s

    def start(self) -> None:
        """Start the wall-time clock."""
        self._started = _now()

    @property
    def elapsed_s(self) -> float:
        """Seconds since :meth:`start`."""
        return 0.0 if self._started is None else _now() - self._started

    def check(self) -> None:
        """Raise :class:`~smesh.errors.BudgetExceeded` if any limit has been reached."""
        if self.exceeded is None:
            used = {
                "calls": self.calls,
                "tokens": self.tokens,
                "cost": self.cost,
                "wall_s": self.elapsed_s,
            }
            for name, limit in self.limits.items():
                if limit is not None and used[name] >= limit:
                    self.exceeded = f"{name} budget of {limit:g} reached"
                    break
        if self.exceeded is not None:
            raise BudgetExceeded(self.exceeded)

    def exceeded_by(self, usage: Usage) -> str | None:
        """Which call, token or cost limit ``usage`` has reached, or None."""
        calls, tokens, cost = (self.limits[k] for k in ("calls", "tokens", "cost"))
        if calls is not None and usage.calls >= calls:
            return f"{usage.calls} calls (max {calls:g})"
        if tokens is not None and usage.total_tokens >= tokens:
            return f"{usage.total_tokens} tokens (max {tokens:g})"
        if cost is not None and usage.cost_usd >= cost:
            return f"${usage.cost_usd:.4f} (max ${cost:.4f})"
        return None

    def charge(self, *, calls: int = 1, tokens: int = 0, cost: float = 0.0) -> None:
        """Count usage directly (e.g. reserve a call before awaiting it)."""
        self.calls += calls
        self.tokens += tokens
        self.cost += cost

    def record(self, *, agent: str, backend: str, response: Response | None) -> Usage:
        """Account a finished call (None if it failed): ledger, tokens and cost; returns the
        call's own usage (its cost, priced by the ledger's table)."""
        usage = self.ledger.record(agent=agent, backend=backend, response=response)
        self.charge(calls=0, tokens=usage.total_tokens, cost=usage.cost_usd)
        return usage

    def usage(self) -> dict[str, Any]:
        """What has been used so far."""
        return {
            "calls": self.calls,
            "tokens": self.tokens,
            "cost": round(self.cost, 6),
            "wall_s": round(self.elapsed_s, 3),
        }


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # outside a loop (e.g. a unit test of the budget alone)
        return time.monotonic()


@dataclass(slots=True)
class Ledger:
    """Running totals for one run, broken down by agent and by backend.

    Attributes:
        run: run id.
        prices: the price table used.
        budget: hard limits, if any; :meth:`check` raises when one is reached.
    """

    run: str = "run"
    prices: PriceTable = field(default_factory=PriceTable)
    budget: Budget | None = None
    _by_key: dict[tuple[str, str], Usage] = field(default_factory=dict)
    unpriced: set[str] = field(default_factory=set)

    def record(self, *, agent: str, backend: str, response: Response | None = None) -> Usage:
        """Record one call (``response`` None for a failed call); return its own usage."""
        if response is None:
            usage = Usage(calls=1, errors=1)
        else:
            price = self.prices.lookup(backend)
            if price is None:
                self.unpriced.add(backend)
                price = FREE
            usage = Usage(
                calls=1,
                input_tokens=response.input_tokens,
                output_tokens=response.output_tokens,
                cost_usd=price.cost(response.input_tokens, response.output_tokens),
                latency_s=response.latency_s,
            )
        key = (agent, backend)
        self._by_key[key] = self._by_key.get(key, Usage()) + usage
        return usage

    def total(self) -> Usage:
        """Totals over the whole run."""
        return sum(self._by_key.values(), Usage())

    def by_agent(self) -> dict[str, Usage]:
        """Totals per agent."""
        out: dict[str, Usage] = {}
        for (agent, _), usage in self._by_key.items():
            out[agent] = out.get(agent, Usage()) + usage
        return out

    def by_backend(self) -> dict[str, Usage]:
        """Totals per backend."""
        out: dict[str, Usage] = {}
        for (_, backend), usage in self._by_key.items():
            out[backend] = out.get(backend, Usage()) + usage
        return out

    def check(self) -> None:
        """Raise :class:`~smesh.errors.BudgetExceeded` if a budget limit is reached."""
        reason = None if self.budget is None else self.budget.exceeded_by(self.total())
        if reason is not None:
            raise BudgetExceeded(f"run {self.run!r}: budget exhausted at {reason}")

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary: totals, per agent, per backend."""
        return {
            "run": self.run,
            "total": msgspec.to_builtins(self.total()),
            "by_agent": {k: msgspec.to_builtins(v) for k, v in sorted(self.by_agent().items())},
            "by_backend": {k: msgspec.to_builtins(v) for k, v in sorted(self.by_backend().items())},
            "unpriced": sorted(self.unpriced),
        }


class Accounting(Wrapper):
    """Record every call's tokens and cost in a :class:`Ledger`; enforce its budget.

    The agent is the request's ``agent`` field, else ``agent`` given here, else ``"-"``.

    Args:
        inner: the backend to account for.
        ledger: where to record.
        agent: default agent id.
    """

    def __init__(self, inner: Backend, ledger: Ledger, *, agent: str | None = None) -> None:
        super().__init__(inner)
        self.ledger = ledger
        self.agent = agent

    async def complete(self, request: Request) -> Response:
        """Check the budget, call the wrapped backend, record the outcome."""
        self.ledger.check()
        agent = request.agent or self.agent or "-"
        try:
            response = await self.inner.complete(request)
        except BackendError:
            self.ledger.record(agent=agent, backend=self.name)
            raise
        self.ledger.record(agent=agent, backend=response.backend or self.name, response=response)
        return response

"""The token meter: the same admission rule for every condition."""

from __future__ import annotations

import asyncio

import pytest

from smesh.backends import Request
from smesh.errors import BudgetExceeded
from smesh.eval.budget import Metered, TokenMeter
from smesh.testing import FunctionBackend


def _request(chars: int = 400, max_tokens: int = 100) -> Request:
    return Request.of("x" * chars, max_tokens=max_tokens)


def test_a_call_is_admitted_only_if_its_estimate_fits() -> None:
    meter = TokenMeter(200)
    cost = meter.admit(_request())  # 100 prompt + 8*2 framing + 50 expected output
    assert cost == 166
    with pytest.raises(BudgetExceeded):
        meter.admit(_request())  # 166 reserved + 166 > 200
    assert meter.refused == 1


def test_spent_tokens_are_charged_as_the_backend_counted_them() -> None:
    meter = TokenMeter(1000)
    backend = Metered(FunctionBackend(lambda r: "y" * 40), meter)
    response = asyncio.run(backend.complete(_request()))
    assert meter.used == response.input_tokens + response.output_tokens
    assert meter.calls == 1 and meter.remaining == 1000 - meter.used


def test_a_parallel_call_waits_for_calls_in_flight_instead_of_ending_the_run() -> None:
    refusals: list[str] = []

    async def main() -> list[str]:
        meter = TokenMeter(400)
        gate = asyncio.Event()

        async def slow(request: Request) -> str:
            await gate.wait()
            return "z"  # far cheaper than reserved

        backend = Metered(FunctionBackend(slow), meter, on_refused=lambda: refusals.append("x"))
        first = asyncio.create_task(backend.complete(_request(max_tokens=400)))
        second = asyncio.create_task(backend.complete(_request(max_tokens=400)))
        await asyncio.sleep(0.01)
        assert not second.done()  # 2 x 308 reserved would not fit: it waits
        gate.set()
        await asyncio.gather(first, second)
        with pytest.raises(BudgetExceeded):  # nothing in flight, too little left: refused
            await backend.complete(_request(chars=2000, max_tokens=400))
        return refusals

    assert asyncio.run(main()) == ["x"]


def test_without_a_limit_everything_is_admitted() -> None:
    meter = TokenMeter(None)
    for _ in range(100):
        meter.admit(_request())
    assert meter.remaining is None


def test_parallel_calls_cannot_overshoot_together() -> None:
    async def main() -> TokenMeter:
        meter = TokenMeter(1100)
        # every reply uses the whole max_tokens: 400 tokens of output
        backend = Metered(FunctionBackend(lambda r: "w" * 1600), meter)

        async def call() -> None:
            with pytest.raises(BudgetExceeded):
                while True:
                    await backend.complete(_request(max_tokens=400))

        await asyncio.gather(call(), call(), call())
        return meter

    meter = asyncio.run(main())
    assert meter.calls == 2 and meter.used <= 1100

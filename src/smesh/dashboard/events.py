"""The dashboard's one event format, and how field events and journal rows become it.

Every message the page receives is a list of :class:`FeedEvent` objects: JSON with a
``type`` (what produced it), a ``kind`` (which one) and a ``payload``. The page switches on
the types it knows and renders any other ``type``/``kind`` generically, so a new signal kind
or action type reaches the page without a change to it.

========  =====================  ==========================================================
type      kind                   fields
========  =====================  ==========================================================
signal    the signal's kind      ``op`` (emit, reinforce, renew, withdraw, expire),
                                 ``address``, ``origin``, ``by``, ``intensity`` (effective,
                                 at ``t``), ``payload`` (a bounded preview)
action    the action's name      ``agent``, ``task_id``, ``payload`` (the journaled detail)
task      ``update``             ``task_id``, ``payload``: the task's view (see tasks.py)
sample    ``field``              ``payload``: live count and intensity per kind, strongest
                                 signals (see model.py)
run       ``start``/``finish``   ``payload``: the run's meta or its report
dropped   ``events``             ``payload``: ``{count, by_type}`` raw events left out of a
                                 batch (the state they changed still arrives)
========  =====================  ==========================================================

Payloads are agent output: untrusted. The preview bounds their size here; the page shows
them as text only.
"""

from __future__ import annotations

from typing import Any

import msgspec

from smesh.decay import DEFAULT_DECAY, Exponential, Linear, Sigmoid, Step
from smesh.signal import Signal

__all__ = [
    "FeedEvent",
    "decode_signal",
    "encode_json",
    "parse_detail",
    "preview",
]

#: longest string kept in a preview, in characters
PREVIEW_CHARS = 240
#: most items kept from a list or mapping in a preview
PREVIEW_ITEMS = 24
_PREVIEW_DEPTH = 4


class FeedEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One event of the dashboard feed (see the module docstring for the types)."""

    type: str
    kind: str
    t: float = 0.0
    seq: int = 0
    op: str | None = None
    address: str | None = None
    origin: str | None = None
    by: str | None = None
    agent: str | None = None
    task_id: str | None = None
    intensity: float | None = None
    payload: Any = None


_encoder = msgspec.json.Encoder()


def encode_json(value: Any) -> bytes:
    """Encode a feed message (structs, dicts, lists) as compact JSON."""
    return _encoder.encode(value)


def preview(value: Any, depth: int = 0) -> Any:
    """A bounded copy of a JSON value: long strings cut, long lists and maps shortened.

    The page never needs a whole LLM output to draw a signal; the trace endpoint serves a
    task's details in full.
    """
    # exact type checks first: this runs on every field of every event a batch sends
    kind = type(value)
    if kind is str:
        return value if len(value) <= PREVIEW_CHARS else value[:PREVIEW_CHARS] + "…"
    if value is None or kind in _SCALARS:
        return value
    if isinstance(value, str):  # a str subclass (an enum member) is kept as it is
        return value if len(value) <= PREVIEW_CHARS else value[:PREVIEW_CHARS] + "…"
    if isinstance(value, bool | int | float):
        return value
    if depth >= _PREVIEW_DEPTH:
        return "…"
    if isinstance(value, dict):
        deeper = depth + 1
        if len(value) <= PREVIEW_ITEMS:
            return {str(k): preview(v, deeper) for k, v in value.items()}
        out = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= PREVIEW_ITEMS:
                out["…"] = f"{len(value) - PREVIEW_ITEMS} more"
                break
            out[str(k)] = preview(v, deeper)
        return out
    if isinstance(value, list | tuple):
        items = [preview(v, depth + 1) for v in value[:PREVIEW_ITEMS]]
        if len(value) > PREVIEW_ITEMS:
            items.append(f"… {len(value) - PREVIEW_ITEMS} more")
        return items
    return preview(str(value), depth)


_SCALARS = frozenset({bool, int, float})


# The journal stores signals as msgpack of the Signal struct. ``Signal.decay`` is typed as
# the ``Decay`` base, which msgspec decodes only as the base's own tag, so stored signals
# are decoded as a subclass whose decay is the union of the serializable decays: a Signal
# in one step, with no copy (the feed decodes every journaled event). They are not tracked
# by the garbage collector (gc=False: a signal holds no reference back to itself), since a
# model of a large run holds tens of thousands and the collector's passes over them were
# a third of the feed's CPU.
_DECAYS = Exponential | Linear | Sigmoid | Step
_Stored: Any = msgspec.defstruct(
    "StoredSignal",
    [("decay", _DECAYS, DEFAULT_DECAY)],
    bases=(Signal,),
    kw_only=True,
    frozen=True,
    gc=False,
)
_decode_stored = msgspec.msgpack.Decoder(_Stored).decode


def decode_signal(blob: bytes) -> Signal | None:
    """Rebuild a journaled signal; None if the blob cannot be read (a custom decay)."""
    try:
        signal: Signal = _decode_stored(blob)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return signal


def parse_detail(detail: Any) -> Any:
    """A journaled action detail (JSON text) as a value; text that is not JSON as is."""
    if isinstance(detail, str | bytes):
        try:
            return msgspec.json.decode(detail)
        except msgspec.DecodeError:
            return detail
    return detail

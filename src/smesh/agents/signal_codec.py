"""Signals as the journal stores them: msgpack bytes, and back.

``Signal.decay`` is typed as the ``Decay`` base, which msgspec decodes only as the base's
own tag; stored signals are read through a mirror whose decay is the union of the concrete
(serializable) decays, then rebuilt as a :class:`~smesh.signal.Signal`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from smesh.decay import Exponential, Linear, Sigmoid, Step
from smesh.signal import Signal

__all__ = ["decode_signal", "encode_signal"]

encode_signal = msgspec.msgpack.Encoder().encode
_DECAYS = Exponential | Linear | Sigmoid | Step


def _mirror(f: msgspec.structs.FieldInfo) -> tuple[Any, ...]:
    kind = _DECAYS if f.name == "decay" else f.type
    return (f.name, kind) if f.required else (f.name, kind, f.default)


_StoredSignal: Any = msgspec.defstruct(
    "_StoredSignal",
    [_mirror(f) for f in msgspec.structs.fields(Signal)],
    kw_only=True,
    frozen=True,
)
_decode_stored = msgspec.msgpack.Decoder(_StoredSignal).decode


def decode_signal(blob: bytes) -> Signal:
    """The signal stored as ``blob``.

    Raises:
        msgspec.DecodeError: the bytes are not a stored signal.
    """
    stored = _decode_stored(blob)
    return Signal(**{f: getattr(stored, f) for f in Signal.__struct_fields__})

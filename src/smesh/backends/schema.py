"""The common subset of JSON Schema that replies are checked against.

Grammar-constrained providers already produce matching JSON; this guards the ones that
were not constrained (and scripted replies in tests) with one clear message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_schema"]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def check_schema(value: object, schema: Mapping[str, Any], path: str = "$") -> str | None:
    """Check ``value`` against the common subset of JSON Schema; return the first problem.

    Covers ``type``, ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties: false``, ``items``, ``minItems``/``maxItems``,
    ``minimum``/``maximum`` and ``minLength``/``maxLength``. Unknown keywords are ignored
    (the model was already constrained by a grammar; this guards providers that were not).
    """
    types = schema.get("type")
    if types is not None:
        names: Sequence[str] = [types] if isinstance(types, str) else list(types)
        ok = False
        for name in names:
            allowed = _JSON_TYPES.get(name)
            if allowed is None:
                ok = True
                break
            is_bool = isinstance(value, bool)
            if (name in {"integer", "number"} and is_bool) or not isinstance(value, allowed):
                continue
            if name == "number" and isinstance(value, float) and not math.isfinite(value):
                continue
            ok = True
            break
        if not ok:
            return f"{path}: expected {'/'.join(names)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: expected {schema['const']!r}"
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                return f"{path}: missing required property {key!r}"
        for key, sub in value.items():
            if key in props:
                problem = check_schema(sub, props[key], f"{path}.{key}")
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{path}: unexpected property {key!r}"
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                problem = check_schema(item, items, f"{path}[{i}]")
                if problem:
                    return problem
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} < minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} > maximum {schema['maximum']}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{path}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']}"
    return None

"""Fixtures for the app tests: the SARIF 2.1.0 schema validator."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# a hard import (jsonschema is a dev dependency: missing, the SARIF checks error rather
# than skip), through importlib because jsonschema ships no type stubs
jsonschema: Any = importlib.import_module("jsonschema")

#: the OASIS schema ships with the tests (see data/README.md), so the SARIF checks
#: always run: a missing schema is an error, never a skip
SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="session")
def validate_sarif() -> Callable[[Any], None]:
    """Validate a document against the official SARIF 2.1.0 schema (OASIS errata01)."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def check(document: Any) -> None:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    return check

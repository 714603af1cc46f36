"""A read-only SQL tool over one SQLite database (seed 003's database entity).

Read-only is enforced four ways, so no single mistake opens a write: the file is opened
with a ``mode=ro`` URI, ``PRAGMA query_only`` is on, an authorizer allows only reading
(SELECT, reads, functions other than ``load_extension``, recursive CTEs and a few
introspection pragmas: no ATTACH, no transaction, no other pragma), and extension
loading is disabled. Every query is bounded: a deadline checked by a progress handler,
a cap on the size of any one value (so ``randomblob(1e9)`` fails fast), and caps on the
rows and bytes returned.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any

from smesh.errors import ToolError, UsageError
from smesh.tools.function import FunctionTool

__all__ = ["SQLiteQueryTool"]

_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "collation_list",
        "function_list",
    }
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_PROGRESS_EVERY = 1000  # virtual-machine instructions between deadline checks


def _authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action == sqlite3.SQLITE_FUNCTION:
        name = (arg2 or "").lower()
        return sqlite3.SQLITE_DENY if name in _DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if (arg1 or "").lower() in _READ_PRAGMAS else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<blob: {len(value)} bytes>"
    return value


class SQLiteQueryTool(FunctionTool):
    """The ``sql_query`` tool: read-only SQL over the database at ``path``.

    Args:
        path: the SQLite database file (it must exist).
        name: the tool's name.
        max_rows: cap on the rows one query returns.
        max_bytes: cap on the (approximate) bytes of the rows returned.
        max_value_bytes: cap on any one string or blob SQLite builds while querying.
        query_timeout_s: how long one query may run.
        description: what the model is told (default: says it is read-only SQLite, plus
            the tables it has).

    Raises:
        UsageError: the database does not exist.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str = "sql_query",
        max_rows: int = 200,
        max_bytes: int = 64 * 1024,
        max_value_bytes: int = 1024 * 1024,
        query_timeout_s: float = 5.0,
        description: str | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise UsageError(f"no SQLite database at {str(path)!r}")
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_value_bytes = max_value_bytes
        self.query_timeout_s = query_timeout_s
        self._uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro"
        super().__init__(
            self.query,
            name=name,
            description=description or self._describe(),
            timeout_s=query_timeout_s + 5.0,
        )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._uri, uri=True, timeout=self.query_timeout_s)
        try:
            conn.execute("PRAGMA query_only = ON")
            if hasattr(conn, "enable_load_extension"):
                conn.enable_load_extension(False)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.set_authorizer(_authorize)
        except BaseException:
            conn.close()
            raise
        return conn

    def _describe(self) -> str:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open {self.path} read-only: {exc}") from None
        try:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
        finally:
            conn.close()
        shown = ", ".join(tables[:50]) or "none"
        return (
            f"Run one read-only SQL query (SQLite) on the database {self.path.name}. "
            f"Tables: {shown}. Use PRAGMA table_info(name) to see a table's columns."
        )

    def query(self, sql: str, params: list[str | int | float | None] | None = None) -> Any:
        """Run one read-only SQL statement and return the rows.

        Args:
            sql: a single SELECT (or read-only PRAGMA) statement; use ? for parameters.
            params: values for the ? placeholders, in order.
        """
        deadline = time.monotonic() + self.query_timeout_s
        conn = self._connect()
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_EVERY)
        try:
            cursor = conn.execute(sql, params or [])
            columns = [d[0] for d in cursor.description or ()]
            rows: list[list[Any]] = []
            size = 0
            truncated = False
            while True:
                batch = cursor.fetchmany(64)
                if not batch:
                    break
                for row in batch:
                    cells = [_cell(v) for v in row]
                    size += sum(len(str(c)) + 2 for c in cells)
                    if len(rows) >= self.max_rows or size > self.max_bytes:
                        truncated = True
                        break
                    rows.append(cells)
                if truncated:
                    break
        except sqlite3.Error as exc:
            if time.monotonic() > deadline:
                raise ToolError(f"the query ran past {self.query_timeout_s:g} s") from None
            raise ToolError(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # e.g. an unsupported parameter type
            raise ToolError(str(exc)) from None
        finally:
            conn.close()
        return {"columns": columns, "rows": rows, "truncated": truncated}

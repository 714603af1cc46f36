"""The read-only SQLite tool, attacked: writes, ATTACH, extensions, pragmas, runaway queries."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from smesh.errors import ToolError, UsageError
from smesh.testing.tools import ScriptedModel, call
from smesh.tools import CallContext, ToolLoop
from smesh.tools.sqlite_query import SQLiteQueryTool

pytestmark = pytest.mark.asyncio
CTX = CallContext(call_id="c", step=1)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # the journal's mode: must still be readable
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, cents INTEGER)")
        conn.execute("CREATE TABLE files (name TEXT, data BLOB)")
        conn.execute("CREATE INDEX orders_customer ON orders (customer)")
        conn.executemany(
            "INSERT INTO orders (customer, cents) VALUES (?, ?)",
            [(f"c{i % 7}", 100 * i) for i in range(1, 501)],
        )
        conn.execute("INSERT INTO files VALUES ('logo', ?)", (b"\x89PNG" * 10,))
    conn.close()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _query(tool: SQLiteQueryTool, sql: str, params: Any = None) -> Any:
    args: dict[str, Any] = {"sql": sql} if params is None else {"sql": sql, "params": params}
    return await tool.invoke(tool.validate(args), CTX)


async def test_reads_work_with_parameters_and_introspection(db: Path) -> None:
    tool = SQLiteQueryTool(db)
    assert tool.name == "sql_query" and "Tables: files, orders" in tool.description
    sql = (
        "SELECT customer, SUM(cents) FROM orders WHERE cents > ? GROUP BY customer "
        "ORDER BY customer LIMIT 2"
    )
    out = await _query(tool, sql, [49_000])
    with sqlite3.connect(db) as direct:
        expected = [list(r) for r in direct.execute(sql, [49_000])]
    direct.close()
    assert expected == [["c0", 49700], ["c1", 98900]]  # 491 + 498
    assert out == {"columns": ["customer", "SUM(cents)"], "rows": expected, "truncated": False}
    info = await _query(tool, "PRAGMA table_info(orders)")
    assert [r[1] for r in info["rows"]] == ["id", "customer", "cents"]
    blob = await _query(tool, "SELECT name, data FROM files")
    assert blob["rows"] == [["logo", "<blob: 40 bytes>"]]
    schema = await _query(tool, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert sorted(r[0] for r in schema["rows"]) == ["files", "orders"]
    cte = await _query(
        tool,
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
        "WHERE x < 5) SELECT SUM(x) FROM n",
    )
    assert cte["rows"] == [[15]]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO orders (customer, cents) VALUES ('x', 1)",
        "UPDATE orders SET cents = 0",
        "DELETE FROM orders",
        "DROP TABLE orders",
        "CREATE TABLE evil (x)",
        "CREATE TEMP TABLE evil (x)",
        "CREATE INDEX i ON orders (cents)",
        "ALTER TABLE orders ADD COLUMN y",
        "REPLACE INTO orders (id, customer, cents) VALUES (1, 'x', 0)",
        "ATTACH DATABASE '{tmp}/new.db' AS other",
        "ATTACH DATABASE ':memory:' AS other",
        "DETACH DATABASE main",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT load_extension('libc.so.6', 'system')",
        "PRAGMA query_only = OFF",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA writable_schema = ON",
        "PRAGMA user_version = 7",
        "VACUUM",
        "VACUUM INTO '{tmp}/copy.db'",
        "BEGIN",
        "SAVEPOINT s",
        "SELECT 1; DELETE FROM orders",
        "REINDEX",
        "ANALYZE",
    ],
)
async def test_anything_but_reading_is_refused_and_the_file_is_untouched(
    db: Path, sql: str
) -> None:
    tool = SQLiteQueryTool(db)
    before = _digest(db)
    with pytest.raises(ToolError):
        await _query(tool, sql.replace("{tmp}", str(db.parent)))
    assert _digest(db) == before
    assert not (db.parent / "new.db").exists() and not (db.parent / "copy.db").exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), SUM(cents) FROM orders").fetchone() == (500, 12525000)
    conn.close()


async def test_a_runaway_query_is_stopped_at_its_deadline(db: Path) -> None:
    tool = SQLiteQueryTool(db, query_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"ran past 0.5 s"):
        await _query(
            tool,
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
            "SELECT COUNT(*) FROM n",
        )
    assert time.monotonic() - started < 3


async def test_huge_values_are_refused_before_they_are_built(db: Path) -> None:
    tool = SQLiteQueryTool(db, max_value_bytes=1024 * 1024)
    with pytest.raises(ToolError, match="too big"):
        await _query(tool, "SELECT randomblob(1000000000)")
    with pytest.raises(ToolError, match="too big"):
        await _query(tool, "SELECT zeroblob(500000000)")


async def test_rows_and_bytes_are_capped(db: Path) -> None:
    few = await _query(SQLiteQueryTool(db, max_rows=10), "SELECT * FROM orders")
    assert len(few["rows"]) == 10 and few["truncated"]
    small = await _query(SQLiteQueryTool(db, max_bytes=500), "SELECT * FROM orders")
    assert 0 < len(small["rows"]) < 50 and small["truncated"]
    # an endless generator: the cap stops fetching, nothing runs away
    endless = await _query(
        SQLiteQueryTool(db, max_rows=5),
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n",
    )
    assert endless["rows"] == [[1], [2], [3], [4], [5]] and endless["truncated"]


async def test_bad_sql_and_bad_params_are_tool_errors(db: Path) -> None:
    tool = SQLiteQueryTool(db)
    with pytest.raises(ToolError, match="no such table"):
        await _query(tool, "SELECT * FROM nope")
    with pytest.raises(ToolError, match="syntax error"):
        await _query(tool, "SELEKT 1")
    with pytest.raises(ToolError):
        await _query(tool, "SELECT ?", [1, 2])
    with pytest.raises(ToolError, match="invalid arguments"):
        tool.validate({"sql": "SELECT ?", "params": [{"a": 1}]})


async def test_a_missing_database_is_a_usage_error_and_never_created(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no SQLite database"):
        SQLiteQueryTool(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


async def test_in_the_loop_errors_reach_the_model(db: Path) -> None:
    model = ScriptedModel(
        [
            [
                call("sql_query", sql="DELETE FROM orders"),
                call("sql_query", sql="SELECT COUNT(*) AS n FROM orders"),
            ],
            "500 orders",
        ]
    )
    result = await ToolLoop([SQLiteQueryTool(db)]).run(model, "how many orders?")
    assert [r.status for r in result.calls] == ["error", "ok"]
    assert "not authorized" in result.calls[0].result
    assert result.calls[1].result == '{"columns":["n"],"rows":[[500]],"truncated":false}'

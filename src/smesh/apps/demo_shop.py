"""The demo's shop database: the task that needs a tool, its data and its ground truth.

The analyst answers ``analysis-sales`` by querying a small SQLite database of sales with
the read-only ``sql_query`` tool (the only tool that task grants); the checker knows the
right answer from the same database. The data is fixed, so every run asks the same
question of the same rows, and the answer cannot be guessed from the prompt.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from smesh.agents import Judgement, TaskSpec, VerifySpec

__all__ = ["SALES_TASK", "SQL_TOOL", "best_seller", "check_sales", "sales_task", "shop_database"]

SALES_TASK = "analysis-sales"
SQL_TOOL = "sql_query"

_ROWS = [
    # region, product, units
    ("north", "kettle", 12),
    ("north", "toaster", 30),
    ("north", "blender", 7),
    ("south", "kettle", 25),
    ("south", "toaster", 9),
    ("south", "blender", 21),
    ("east", "kettle", 18),
    ("east", "toaster", 11),
    ("east", "blender", 26),
    ("west", "kettle", 22),
    ("west", "toaster", 14),
    ("west", "blender", 2),
]
_made: list[Path] = []


def _cleanup() -> None:
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)


def shop_database(directory: str | Path | None = None) -> Path:
    """Write the shop database (table ``sales(region, product, units)``) and return its
    path; in a temporary directory removed at exit unless ``directory`` is given."""
    if directory is None:
        if not _made:
            _made.append(Path(tempfile.mkdtemp(prefix="smesh-demo-")))
            atexit.register(_cleanup)
        directory = _made[0]
    path = Path(directory) / "shop.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sales (region TEXT, product TEXT, units INTEGER)")
        db.executemany("INSERT INTO sales VALUES (?, ?, ?)", _ROWS)
    db.close()
    return path


def best_seller(path: str | Path) -> tuple[str, int]:
    """The product with the most units sold over all regions, and that total."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT product, SUM(units) AS total FROM sales GROUP BY product "
            "ORDER BY total DESC LIMIT 1"
        ).fetchone()
    db.close()
    return str(row[0]), int(row[1])


def sales_task() -> TaskSpec:
    """The task: find the best-selling product with the SQL tool (the only tool granted)."""
    return TaskSpec(
        task_id=SALES_TASK,
        skill="analysis",
        priority=0.3,
        # Leading with the tool's name matters to the 0.5B model: asked "Which product
        # sold the most ...?" it called a tool it named after the question (1 of 5 calls
        # used the real name); told to call sql_query, 6 of 6 did, with the right SQL.
        description=(
            f"Call the {SQL_TOOL} tool with a SQL query on the table sales(region, product, "
            "units) that finds the product with the most units sold in total over all "
            "regions. Then answer as JSON with the product name in the field product and "
            "its total units in the field units."
        ),
        verify=VerifySpec(
            quorum=0.9,
            margin=0.3,
            timeout_s=45.0,
            schema={
                "type": "object",
                "properties": {"product": {"type": "string"}, "units": {"type": "integer"}},
                "required": ["product", "units"],
            },
        ),
        max_attempts=3,
        tools=[SQL_TOOL],
    )


def check_sales(path: Path, output: Any) -> Judgement:
    """Judge an answer to the sales task against the database."""
    product, units = best_seller(path)
    if not isinstance(output, dict):
        return Judgement("reject", "the answer is not a JSON object")
    got = (str(output.get("product", "")).strip().lower(), output.get("units"))
    if got == (product, units):
        return Judgement("approve", f"{product} sold {units} units, the most")
    return Judgement("reject", f"the best seller is not {got[0]!r} with {got[1]!r} units")

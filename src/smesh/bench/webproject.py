"""A synthetic Flask project of about fifty files, for timing ``smesh swarm`` on a project
of realistic shape (written here, not taken from any benchmark).

Like a real web application it is mostly code without a dangerous sink (models, forms,
helpers, tests), with views and services that run SQL, shell commands, file access,
templates, redirects and outbound requests: some on the request's data, some on
constants, some on sanitized values. :func:`write_project` lays it out under a directory,
the same way for a given seed.
"""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ["write_project"]

_VIEW_HEAD = '''"""Views: {name}."""

import os
import sqlite3
import subprocess

import requests
from flask import Blueprint, redirect, render_template, render_template_string, request, url_for

bp = Blueprint("{name}", __name__)
DB = "app.db"
'''

#: route bodies: (template, what it is); {n} is the route's number
_ROUTES = (
    (
        '''

@bp.route("/{name}/search{n}")
def search{n}():
    """Search by name."""
    term = request.args.get("q", "")
    conn = sqlite3.connect(DB)
    rows = conn.execute("SELECT id FROM items WHERE name = '%s'" % term).fetchall()
    return {{"rows": rows}}
''',
        "sql from the request",
    ),
    (
        '''

@bp.route("/{name}/find{n}")
def find{n}():
    """Find by name, safely."""
    term = request.args.get("q", "")
    conn = sqlite3.connect(DB)
    rows = conn.execute("SELECT id FROM items WHERE name = ?", (term,)).fetchall()
    return {{"rows": rows}}
''',
        "parameterized sql",
    ),
    (
        '''

@bp.route("/{name}/ping{n}")
def ping{n}():
    """Ping a host."""
    host = request.form["host"]
    out = subprocess.check_output("ping -c 1 " + host, shell=True)
    return out.decode()
''',
        "shell from the request",
    ),
    (
        '''

@bp.route("/{name}/uptime{n}")
def uptime{n}():
    """The machine's uptime."""
    mode = "short"
    flag = "-p" if mode == "short" else request.args.get("flag", "")
    return subprocess.check_output("uptime " + flag, shell=True).decode()
''',
        "shell from a branch decided by constants",
    ),
    (
        '''

@bp.route("/{name}/file{n}")
def file{n}():
    """Serve a report."""
    name = request.args.get("name", "index.txt")
    with open(os.path.join("reports", name)) as fh:
        return fh.read()
''',
        "path from the request",
    ),
    (
        '''

@bp.route("/{name}/safefile{n}")
def safefile{n}():
    """Serve a report, by its base name."""
    name = os.path.basename(request.args.get("name", "index.txt"))
    with open(os.path.join("reports", name)) as fh:
        return fh.read()
''',
        "sanitized path",
    ),
    (
        '''

@bp.route("/{name}/hello{n}")
def hello{n}():
    """Greet."""
    who = request.args.get("who", "world")
    return render_template_string("<h1>Hello " + who + "</h1>")
''',
        "template from the request",
    ),
    (
        '''

@bp.route("/{name}/page{n}")
def page{n}():
    """A page."""
    return render_template("page.html", who=request.args.get("who", ""))
''',
        "autoescaped template",
    ),
    (
        '''

@bp.route("/{name}/go{n}")
def go{n}():
    """Go somewhere."""
    return redirect(request.args.get("next", "/"))
''',
        "redirect from the request",
    ),
    (
        '''

@bp.route("/{name}/home{n}")
def home{n}():
    """Back home."""
    return redirect(url_for("{name}.page{n}"))
''',
        "internal redirect",
    ),
    (
        '''

@bp.route("/{name}/fetch{n}")
def fetch{n}():
    """Fetch a preview."""
    url = request.args["url"]
    return requests.get(url, timeout=5).text
''',
        "outbound request from the request",
    ),
    (
        '''

@bp.route("/{name}/status{n}")
def status{n}():
    """A status page."""
    return {{"ok": True, "name": "{name}"}}
''',
        "no sink",
    ),
)

_MODEL = '''"""Model: {name}."""

from dataclasses import dataclass, field


@dataclass
class {cls}:
    """A {name} record."""

    id: int
    name: str
    tags: list[str] = field(default_factory=list)

    def label(self) -> str:
        """How it is shown."""
        return f"{{self.name}} ({{len(self.tags)}} tags)"

    def has(self, tag: str) -> bool:
        """Whether it carries ``tag``."""
        return tag in self.tags
'''

_SERVICE = '''"""Service: {name}."""

import json
import sqlite3


def load_{name}(conn: sqlite3.Connection, key: str) -> list[tuple[int, str]]:
    """Rows for ``key``."""
    return conn.execute("SELECT id, name FROM {name} WHERE key = ?", (key,)).fetchall()


def count_{name}(conn: sqlite3.Connection, table: str) -> int:
    """Rows in a table chosen by the caller."""
    return conn.execute("SELECT COUNT(*) FROM " + table).fetchone()[0]


def dump_{name}(rows: list[tuple[int, str]]) -> str:
    """Rows as JSON."""
    return json.dumps([{{"id": i, "name": n}} for i, n in rows])
'''

_UTIL = '''"""Helpers: {name}."""

import hashlib
import re


def slug_{name}(text: str) -> str:
    """A URL slug."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def etag_{name}(body: bytes) -> str:
    """A cache tag for a response body."""
    return hashlib.sha256(body).hexdigest()[:16]


def chunks_{name}(items: list[str], size: int) -> list[list[str]]:
    """``items`` in chunks of ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]
'''

_TEST = '''"""Tests: {name}."""


def test_{name}_slug() -> None:
    assert "a-b" == "a-b"


def test_{name}_chunks() -> None:
    assert [[1, 2], [3]] == [[1, 2], [3]]
'''

_FIXED = {
    "app/__init__.py": '''"""The application."""

from flask import Flask


def create_app() -> Flask:
    """Build the app."""
    return Flask(__name__)
''',
    "app/config.py": '''"""Settings."""

import os

DEBUG = False
SECRET_KEY = os.environ.get("SECRET_KEY", "")
DATABASE = "app.db"
ADMIN_PASSWORD = "changeme-2024"
''',
    "app/errors.py": '''"""Error pages."""


def not_found(error: Exception) -> tuple[str, int]:
    """404."""
    return "not found", 404
''',
    "app/tokens.py": '''"""Tokens."""

import random
import secrets


def reset_token() -> str:
    """A password-reset token."""
    return "".join(random.choice("abcdef0123456789") for _ in range(32))


def session_id() -> str:
    """A session id."""
    return secrets.token_hex(16)
''',
    "app/cli.py": '''"""Admin commands."""

import subprocess


def backup() -> None:
    """Back the database up."""
    subprocess.run(["sqlite3", "app.db", ".backup backup.db"], check=True)
''',
    "wsgi.py": '''"""WSGI entry point."""

from app import create_app

application = create_app()
''',
}

_NAMES = [
    "users",
    "orders",
    "items",
    "carts",
    "payments",
    "invoices",
    "reviews",
    "tags",
    "search",
    "admin",
    "reports",
    "profiles",
    "sessions",
    "exports",
    "imports",
    "alerts",
]


def write_project(root: Path, *, files: int = 50, seed: int = 7) -> list[str]:
    """Write the project under ``root``; returns its files (relative paths)."""
    rng = random.Random(seed)
    out: dict[str, str] = dict(_FIXED)
    names = list(_NAMES)
    rng.shuffle(names)
    plan = [("views", 12), ("services", 8), ("models", 10), ("utils", 8), ("tests", 6)]
    for kind, count in plan:
        for i in range(count):
            name = f"{names[i % len(names)]}{i // len(names) or ''}"
            if kind == "views":
                routes = rng.sample(range(len(_ROUTES)), 3)
                text = _VIEW_HEAD.format(name=name)
                text += "".join(_ROUTES[r][0].format(name=name, n=j) for j, r in enumerate(routes))
                out[f"app/views/{name}.py"] = text
            elif kind == "services":
                out[f"app/services/{name}.py"] = _SERVICE.format(name=name)
            elif kind == "models":
                out[f"app/models/{name}.py"] = _MODEL.format(name=name, cls=name.title())
            elif kind == "utils":
                out[f"app/utils/{name}.py"] = _UTIL.format(name=name)
            else:
                out[f"tests/test_{name}.py"] = _TEST.format(name=name)
    chosen = sorted(out)[:files]
    for rel in chosen:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out[rel], encoding="utf-8")
    return chosen

"""User storage backed by SQLite."""

import sqlite3

DB_PASSWORD = "s3cr3t-passw0rd"


def connect(path):
    """Open the user database at ``path``."""
    return sqlite3.connect(path)


def find_user(conn, name):
    """Return the rows of the user called ``name``."""
    query = "SELECT id, name FROM users WHERE name = '" + name + "'"
    return conn.execute(query).fetchall()

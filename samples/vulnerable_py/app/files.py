"""Serving files and sessions to users."""

import os
import pickle
import subprocess

BASE_DIR = "/srv/data"


def read_user_file(filename):
    """Return the contents of the file the user asked for."""
    path = os.path.join(BASE_DIR, filename)
    with open(path) as fh:
        return fh.read()


def load_session(blob):
    """Restore a session object sent by the client."""
    return pickle.loads(blob)


def archive(name):
    """Compress the user's folder into a backup."""
    subprocess.call("tar czf backup.tgz " + name, shell=True)

"""The cheap flow analysis: which sinks a Python file has, and what reaches each.

Every case is a small program with one sink; the verdict at the sink is what the plan
acts on (a constant or sanitized input is no question for the LLM, input from a request
is a complete path)."""

from __future__ import annotations

import textwrap

import pytest

from smesh.apps.evidence import line_sites, local_flow
from smesh.apps.pyflow import analyze_python
from smesh.apps.pyfragment import parse_fragment, repair_fragment


def verdict(code: str, kind: str | None = None) -> str:
    sites = analyze_python(textwrap.dedent(code)).sites
    sites = [s for s in sites if kind is None or s.kind == kind]
    assert len(sites) == 1, sites
    return sites[0].verdict


CASES = [
    # (what, code, kind, verdict)
    ("a literal command", "import os\nos.system('ls -l')\n", "command", "constant"),
    (
        "a parameter",
        "import os\ndef f(name):\n    os.system('ls ' + name)\n",
        "command",
        "external",
    ),
    (
        "the request",
        "import os\nfrom flask import request\ndef f():\n"
        "    os.system('ls ' + request.args.get('d'))\n",
        "command",
        "input",
    ),
    (
        "a route's URL parameter",
        "import os\n@app.route('/x/<d>')\ndef f(d):\n    os.system('ls ' + d)\n",
        "command",
        "input",
    ),
    (
        "quoted for the shell",
        "import os, shlex\ndef f(n):\n    os.system('ls ' + shlex.quote(n))\n",
        "command",
        "sanitized",
    ),
    (
        "quoted for HTML is not quoted for the shell",
        "import os, html\ndef f(n):\n    os.system('ls ' + html.escape(n))\n",
        "command",
        "external",
    ),
    (
        "overwritten by a constant",
        "import os\ndef f(n):\n    n = 'x'\n    os.system('ls ' + n)\n",
        "command",
        "constant",
    ),
    (
        "a branch decided by constants",
        "import os\nfrom flask import request\ndef f():\n    p = request.args['p']\n"
        "    num = 106\n    bar = 'safe' if (7 * 18) + num > 200 else p\n    os.system(bar)\n",
        "command",
        "constant",
    ),
    (
        "a branch not decided",
        "import os\nfrom flask import request\ndef f(flag):\n    p = request.args['p']\n"
        "    bar = 'safe' if flag else p\n    os.system(bar)\n",
        "command",
        "input",
    ),
    (
        "a list trick: the input is popped off",
        "import os\nfrom flask import request\ndef f():\n    v = []\n    v.append('safe')\n"
        "    v.append(request.form['x'])\n    v.append('more')\n    v.pop(0)\n"
        "    os.system(v[1])\n",
        "command",
        "constant",
    ),
    (
        "a dict lookup of a constant key",
        "import os\nfrom flask import request\ndef f():\n"
        "    m = {'a': 'ls', 'b': request.args['x']}\n    os.system(m['a'])\n",
        "command",
        "constant",
    ),
    (
        "an allowlist guard",
        "def f(expr):\n    if expr not in ('1 + 1', '2 * 3'):\n        raise ValueError(expr)\n"
        "    return eval(expr)\n",
        "code",
        "sanitized",
    ),
    (
        "a number is safe in SQL",
        "def f(cur, uid):\n    cur.execute('SELECT * FROM t WHERE id = %d' % int(uid))\n",
        "sql",
        "sanitized",
    ),
    (
        "a parameterized query",
        "def f(cur, name):\n    cur.execute('SELECT * FROM t WHERE n = ?', (name,))\n",
        "sql",
        "constant",
    ),
    (
        "a helper of the same file returns a constant",
        "import os\ndef cmd(x):\n    return 'ls'\ndef f(n):\n    os.system(cmd(n))\n",
        "command",
        "constant",
    ),
    (
        "no shell and a fixed program",
        "import subprocess\ndef f(n):\n    subprocess.run(['ls', n])\n",
        "command",
        "sanitized",
    ),
    (
        "no shell, but the program comes from outside",
        "import subprocess\ndef f(n):\n    subprocess.run([n, '-l'])\n",
        "command",
        "external",
    ),
    (
        "basename keeps a path inside its directory",
        "import os\ndef f(n):\n    return open(os.path.join('/srv', os.path.basename(n)))\n",
        "path",
        "sanitized",
    ),
    (
        "a request value echoed from a route",
        "from flask import request\n@app.get('/hi')\ndef hi():\n"
        "    return '<h1>' + request.args['name'] + '</h1>'\n",
        "html",
        "input",
    ),
    ("MD5 is weak by itself", "import hashlib\nhashlib.md5(b'x')\n", "hash", "construct"),
    (
        "MD5 declared not for security is no site",
        "import hashlib\nhashlib.md5(b'x', usedforsecurity=False)\nhashlib.sha1(b'y')\n",
        "hash",
        "construct",
    ),
    ("a hard-coded password", "DB_PASSWORD = 's3cret'\n", "secret", "construct"),
    (
        "yaml.load with SafeLoader is no site",
        "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.load(s)\n",
        "deserialize",
        "unknown",
    ),
]


@pytest.mark.parametrize(("what", "code", "kind", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_verdict_at_the_sink(what: str, code: str, kind: str, expected: str) -> None:
    assert verdict(code, kind) == expected


def test_a_site_carries_its_path_from_source_to_sink() -> None:
    code = (
        "import os\nfrom flask import request\n\ndef f():\n    d = request.args['d']\n"
        "    cmd = 'ls ' + d\n    os.system(cmd)\n"
    )
    [site] = analyze_python(code).sites
    assert [s.line for s in site.path] == [5, 5, 6, 7]
    assert site.path[0].note == "input: request.args" and site.path[-1].note.startswith("reaches")
    assert site.scope == (4, 7) and site.cwe == 78


def test_no_secret_in_empty_strings_file_names_or_templates() -> None:
    code = "password = ''\npassword_template = 'auth/reset.html'\nsecret_path = '/etc/x'\n"
    assert analyze_python(code).sites == []


def test_fragments_parse_with_their_line_numbers() -> None:
    snippet = (
        "            x = compute()\n"
        "        os.system(cmd)\n"
        "    print 'done'\n"
        "    except OSError, e:\n"
    )
    fragment = parse_fragment(snippet)
    assert fragment is not None
    [site] = analyze_python(snippet, fragment).sites
    assert site.line == 2 and site.kind == "command"
    repaired = repair_fragment("        eval(x)\n    y = 1\n")
    assert repaired is not None
    text, shift = repaired
    assert text.splitlines()[shift].strip() == "eval(x)"  # line 1, after the openers


def test_unparsable_code_falls_back_to_lines_and_local_windows() -> None:
    lines = [
        "def f(request):",
        "    name = 'fixed'",
        "    os.system('ls ' + name)",
        "<<<<<<< merge conflict",
    ]
    [site] = line_sites(lines, "python")
    assert (site.line, site.kind, site.verdict) == (3, "command", "unknown")
    assert local_flow(lines, site).verdict == "constant"
    [js] = line_sites(["res.send('<b>' + req.query.q + '</b>')"], "javascript")
    assert (js.kind, js.verdict) == ("html", "input")

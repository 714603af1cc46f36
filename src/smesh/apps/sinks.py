"""The catalogue behind the cheap evidence: sinks, sources and sanitizers.

A *sink* is a call (or construct) where data becomes dangerous: a shell command, an SQL
query, ``eval``, a file path, HTML sent to a browser, a redirect, a deserializer, an
outbound request, a weak hash, weak randomness, a hard-coded secret. Each sink kind names
its weakness (CWE), the specialist whose specialty it is, and which argument carries the
data. *Sources* are where untrusted data enters (the HTTP request, ``input()``,
``sys.argv``, a socket) or outside data enters (the environment, a file). *Sanitizers*
make a value safe for some sink kinds (``shlex.quote`` for a shell, ``html.escape`` for
HTML, ``int`` for all).

:mod:`smesh.apps.flow` uses the catalogue on Python syntax trees; :mod:`smesh.apps.evidence`
uses its regular expressions where no tree is available (other languages, fragments).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

import msgspec

__all__ = [
    "ALL_KINDS",
    "CONSTRUCT_KINDS",
    "FLOW_KINDS",
    "NO_SHELL",
    "SINKS",
    "SinkKind",
    "bare_sink",
    "constant_program",
    "is_source",
    "qualified_sink",
    "sanitizes",
]


class SinkKind(msgspec.Struct, frozen=True, kw_only=True):
    """One kind of sink.

    Attributes:
        name: the kind (``command``, ``sql``...).
        cwe: the weakness it stands for.
        specialist: the swarm specialty that judges it.
        what: what happens there, in a few words (for prompts and messages).
        flow: whether the danger is data flowing in (False: the construct itself is the
            weakness, as with MD5).
    """

    name: str
    cwe: int
    specialist: str
    what: str
    flow: bool = True


SINKS: dict[str, SinkKind] = {
    k.name: k
    for k in (
        SinkKind(name="command", cwe=78, specialist="injection", what="a shell command"),
        SinkKind(name="code", cwe=94, specialist="injection", what="code that is evaluated"),
        SinkKind(name="sql", cwe=89, specialist="injection", what="an SQL query"),
        SinkKind(name="ldap", cwe=90, specialist="injection", what="an LDAP filter"),
        SinkKind(name="xpath", cwe=643, specialist="injection", what="an XPath query"),
        SinkKind(name="path", cwe=22, specialist="path-traversal", what="a file path"),
        SinkKind(name="html", cwe=79, specialist="xss", what="HTML sent to the browser"),
        SinkKind(name="redirect", cwe=601, specialist="ssrf", what="a redirect target"),
        SinkKind(name="url", cwe=918, specialist="ssrf", what="a URL the server fetches"),
        SinkKind(name="deserialize", cwe=502, specialist="deserialization", what="a deserializer"),
        SinkKind(name="xml", cwe=611, specialist="deserialization", what="an XML parser"),
        SinkKind(name="hash", cwe=327, specialist="crypto", what="a weak hash", flow=False),
        SinkKind(name="cipher", cwe=327, specialist="crypto", what="a weak cipher", flow=False),
        SinkKind(name="random", cwe=330, specialist="crypto", what="weak randomness", flow=False),
        SinkKind(name="secret", cwe=798, specialist="auth", what="a hard-coded secret", flow=False),
    )
}
FLOW_KINDS = frozenset(k for k, v in SINKS.items() if v.flow)
CONSTRUCT_KINDS = frozenset(k for k, v in SINKS.items() if not v.flow)
ALL_KINDS = frozenset(SINKS)

# -- calls by qualified name -> (kind, index of the data argument, its keyword) -------------

_Q: dict[str, tuple[str, int, str]] = {}


def _add(kind: str, names: str, index: int = 0, keyword: str = "") -> None:
    for name in names.split():
        _Q[name] = (kind, index, keyword)


_add("command", "os.system os.popen os.popen2 os.popen3 os.popen4 popen2.popen2 popen2.popen3")
_add("command", "commands.getoutput commands.getstatusoutput subprocess.getoutput")
_add("command", "subprocess.getstatusoutput asyncio.create_subprocess_shell")
_add("command", "os.execl os.execlp os.spawnl os.spawnlp pty.spawn", 1)
_add("code", "eval exec execfile builtins.eval builtins.exec", 0, "source")
_add("path", "open io.open codecs.open os.open os.remove os.unlink os.rmdir os.listdir", 0, "file")
_add("path", "shutil.rmtree shutil.copy shutil.copyfile shutil.move flask.send_file send_file")
_add("path", "os.startfile pathlib.Path Path")
_add("path", "flask.send_from_directory send_from_directory", 1, "path")
_add("html", "flask.render_template_string render_template_string", 0, "source")
_add("html", "markupsafe.Markup flask.Markup Markup django.utils.safestring.mark_safe mark_safe")
_add("html", "flask.make_response make_response flask.Response werkzeug.Response HttpResponse")
_add("html", "django.http.HttpResponse jinja2.Template")
_add("redirect", "flask.redirect redirect django.shortcuts.redirect HttpResponseRedirect")
_add("redirect", "django.http.HttpResponseRedirect")
_add("url", "urllib.request.urlopen urllib2.urlopen urllib.urlopen urlopen", 0, "url")
_add("url", "requests.get requests.post requests.put requests.delete requests.head", 0, "url")
_add("url", "requests.patch httpx.get httpx.post urllib.request.Request", 0, "url")
_add("url", "requests.request httpx.request", 1, "url")
_add("url", "http.client.HTTPConnection http.client.HTTPSConnection", 0, "host")
_add("deserialize", "pickle.loads pickle.load cPickle.loads cPickle.load dill.loads dill.load")
_add("deserialize", "marshal.loads marshal.load shelve.open jsonpickle.decode yaml.unsafe_load")
_add("deserialize", "pandas.read_pickle pd.read_pickle _pickle.loads _pickle.load")
_add("deserialize", "yaml.load yaml.load_all", 0, "stream")
_add("xml", "xml.dom.minidom.parseString xml.dom.minidom.parse xml.sax.parseString xml.sax.parse")
_add("xml", "xml.etree.ElementTree.fromstring xml.etree.ElementTree.parse lxml.etree.fromstring")
_add("xml", "lxml.etree.parse lxml.etree.XML")
_add("hash", "hashlib.md5 hashlib.sha1 hashlib.md4 md5.new sha.new md5.md5")
_add("hash", "Crypto.Hash.MD5.new Crypto.Hash.SHA.new Crypto.Hash.MD4.new MD5.new SHA.new")
_add("hash", "cryptography.hazmat.primitives.hashes.MD5 cryptography.hazmat.primitives.hashes.SHA1")
_add("cipher", "Crypto.Cipher.DES.new Crypto.Cipher.ARC4.new Crypto.Cipher.Blowfish.new DES.new")
_add("cipher", "ARC4.new Blowfish.new Crypto.Cipher.ARC2.new")
_add("random", "random.random random.randint random.randrange random.choice random.choices")
_add("random", "random.sample random.shuffle random.uniform random.getrandbits random.seed")
_add("random", "random.Random random.triangular random.randbytes random.gauss")
_add("random", "numpy.random.rand numpy.random.randint np.random.rand np.random.randint")

#: methods whose receiver does not matter: ``anything.execute(query)``
_METHODS: dict[str, tuple[str, int, str]] = {
    "execute": ("sql", 0, "sql"),
    "executemany": ("sql", 0, "sql"),
    "executescript": ("sql", 0, "sql_script"),
    "raw": ("sql", 0, "raw_query"),
    "read_sql": ("sql", 0, "sql"),
    "read_sql_query": ("sql", 0, "sql"),
    "search_s": ("ldap", 2, "filterstr"),
    "search_ext_s": ("ldap", 2, "filterstr"),
    "xpath": ("xpath", 0, "_path"),
    "render_template_string": ("html", 0, "source"),
}

#: names that are sinks even when called bare (``system(cmd)`` after ``from os import *``)
_BARE: dict[str, str] = {
    "system": "os.system",
    "popen": "os.popen",
    "getoutput": "commands.getoutput",
    "eval": "eval",
    "exec": "exec",
    "execfile": "execfile",
    "urlopen": "urlopen",
    "render_template_string": "render_template_string",
    "send_file": "send_file",
    "send_from_directory": "send_from_directory",
    "mark_safe": "mark_safe",
    "Markup": "Markup",
    "redirect": "redirect",
    "make_response": "make_response",
    "HttpResponse": "HttpResponse",
    "HttpResponseRedirect": "HttpResponseRedirect",
    "open": "open",
    "md5": "hashlib.md5",
    "sha1": "hashlib.sha1",
    "randint": "random.randint",
    "randrange": "random.randrange",
}

_SHELL_CALLS = {
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.run",
    "subprocess.Popen",
    "Popen",
    "check_output",
    "check_call",
    "call",
}

_WEAK_HASHES = {"md5", "sha1", "md4", "md2", "sha", "ripemd160"}


def qualified_sink(name: str, method: str, shell: bool) -> tuple[str, int, str] | None:
    """The sink of a call: ``(kind, data argument index, its keyword)`` or None.

    Args:
        name: the callee's dotted name as far as it resolves (``os.system``).
        method: its last part (``execute``).
        shell: the call passes a true ``shell=`` argument.
    """
    if name in _Q:
        return _Q[name]
    if shell and (name in _SHELL_CALLS or name.endswith(tuple("." + c for c in _SHELL_CALLS))):
        return ("command", 0, "args")
    if method in _METHODS and "." in name:
        return _METHODS[method]
    for known, spec in _Q.items():
        # "np.random.randint" and "self.random.choice" resolve by their tail
        if "." in known and name.endswith("." + known):
            return spec
    return None


def bare_sink(name: str) -> str | None:
    """The qualified sink a bare name stands for, if it is distinctive enough."""
    return _BARE.get(name)


def weak_hash_name(value: object) -> bool:
    """Whether ``value`` names a weak hash algorithm (``hashlib.new("md5")``)."""
    return isinstance(value, str) and value.lower().replace("-", "") in _WEAK_HASHES


#: process starters that take a program and its arguments, without a shell
NO_SHELL = re.compile(
    r"^(subprocess\.(run|call|check_call|check_output|Popen)|os\.(exec|spawn)\w*|Popen|check_output|check_call)$"
)


def constant_program(node: ast.expr) -> bool:
    """Whether a command string starts with a fixed program name: ``"ls -l " + path``,
    ``f"ls {path}"``, ``"ls %s" % path``."""
    head: object = None
    if isinstance(node, ast.Constant):
        head = node.value
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        inner = node.left
        while isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Add):
            inner = inner.left
        head = inner.value if isinstance(inner, ast.Constant) else None
    elif (
        isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant)
    ):
        head = node.values[0].value
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        base = node.func.value
        head = base.value if isinstance(base, ast.Constant) else None
    if not isinstance(head, str):
        return False
    word = head.lstrip().split(" ", 1)
    return len(word) == 2 and bool(word[0]) and "{" not in word[0] and "%" not in word[0]


# -- sources ---------------------------------------------------------------------------

#: attribute chains (prefixes) whose value comes from the person making the request
_INPUT_PREFIXES = (
    "request.",
    "flask.request.",
    "self.request.",
    "req.",
    "sys.argv",
    "sys.stdin",
    "cherrypy.request.",
    "bottle.request.",
)
_INPUT_CALLS = {
    "input",
    "raw_input",
    "self.get_argument",
    "self.get_arguments",
    "self.get_query_argument",
    "self.get_body_argument",
    "self.get_cookie",
    "self.get_secure_cookie",
    "request.get_json",
    "request.get_data",
    "request.args.get",
    "request.form.get",
    "request.values.get",
    "request.cookies.get",
    "request.headers.get",
    "request.GET.get",
    "request.POST.get",
    "request.args.getlist",
    "request.form.getlist",
    "sys.stdin.read",
    "sys.stdin.readline",
}
#: calls whose result is outside data, not the requester's (configuration, files)
_EXTERNAL_CALLS = {"os.getenv", "os.environ.get", "os.environ"}
_EXTERNAL_METHODS = {"read", "readline", "readlines", "recv", "recvfrom", "json"}


def is_source(name: str, call: bool) -> str | None:
    """``"input"`` when ``name`` (a dotted name, called or not) reads the requester's data,
    ``"external"`` when it reads other outside data, else None."""
    if name in ("request", "flask.request"):
        return "input"
    if call and name in _INPUT_CALLS:
        return "input"
    if name.startswith(_INPUT_PREFIXES) or name in ("sys.argv", "sys.stdin"):
        return "input"
    if name.startswith("os.environ") or (call and name in _EXTERNAL_CALLS):
        return "external"
    if call and name.rsplit(".", 1)[-1] in _EXTERNAL_METHODS and "." in name:
        return "external" if not name.endswith(".recv") else "input"
    return None


# -- sanitizers: callee -> the sink kinds whose danger it removes ------------------------

_NUMERIC = ALL_KINDS
_SANITIZERS: dict[str, frozenset[str]] = {}


def _clean(kinds: frozenset[str] | set[str], names: str) -> None:
    for name in names.split():
        _SANITIZERS[name] = frozenset(kinds)


_clean(_NUMERIC, "int float bool len abs round uuid.UUID hash ord")
_clean({"command"}, "shlex.quote pipes.quote quote_arg")
_clean({"html"}, "html.escape cgi.escape markupsafe.escape flask.escape escape bleach.clean")
_clean({"html"}, "django.utils.html.escape conditional_escape xml.sax.saxutils.escape")
_clean({"html", "url", "redirect"}, "urllib.parse.quote urllib.parse.quote_plus urllib.quote")
_clean({"html", "url", "redirect", "path", "command"}, "quote_plus")
_clean({"path"}, "os.path.basename werkzeug.utils.secure_filename secure_filename")
_clean({"ldap"}, "ldap.filter.escape_filter_chars escape_filter_chars ldap3.utils.conv.escape")
_clean({"sql"}, "psycopg2.sql.Identifier psycopg2.sql.Literal sql.Identifier sql.Literal")
_clean({"redirect", "url"}, "url_for flask.url_for reverse django.urls.reverse")
_clean({"code", "deserialize"}, "ast.literal_eval json.loads json.load")
_clean(ALL_KINDS - {"path", "url", "redirect"}, "hashlib.sha256 hashlib.sha512")


def sanitizes(name: str) -> frozenset[str]:
    """The sink kinds a call of ``name`` makes its argument safe for (empty: none)."""
    if name in _SANITIZERS:
        return _SANITIZERS[name]
    tail = name.rsplit(".", 1)[-1]
    dotted = [k for k in _SANITIZERS if "." in k and name.endswith("." + k.rsplit(".", 1)[-1])]
    if dotted and tail not in ("escape", "quote", "load", "loads"):
        return _SANITIZERS[dotted[0]]
    return frozenset()


#: guard methods that validate a string completely (``if not x.isdigit(): abort()``)
VALIDATING_METHODS = frozenset({"isdigit", "isdecimal", "isnumeric", "isalnum", "isidentifier"})
#: functions that validate a value when their result is tested (``re.fullmatch``)
VALIDATING_CALLS = frozenset(
    {"re.fullmatch", "re.match", "fullmatch", "is_safe_url", "url_has_allowed_host_and_scheme"}
)

# -- regular expressions for code without a syntax tree ----------------------------------

#: (kind, pattern) per language family: what a line with such a sink looks like
LINE_SINKS: Mapping[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    "python": (
        ("command", re.compile(r"\b(os\.(system|popen\d?)|commands\.get\w*output|getoutput)\s*\(")),
        (
            "command",
            re.compile(r"\b(subprocess\.\w+|Popen|check_output|check_call)\s*\(.*shell\s*=\s*True"),
        ),
        ("command", re.compile(r"^\s*(\w+\s*=\s*)?system\s*\(")),
        ("code", re.compile(r"(?<![\w.])(eval|exec|execfile)\s*[( ]")),
        ("sql", re.compile(r"\.(execute|executemany|executescript|raw)\s*\(")),
        (
            "deserialize",
            re.compile(
                r"\b(c?[pP]ickle|dill|marshal|_pickle)\.loads?\s*\(|\bshelve\.open\s*\(|\bjsonpickle\.decode\s*\("
            ),
        ),
        (
            "deserialize",
            re.compile(r"\byaml\.(load|load_all|unsafe_load)\s*\((?!.*(Safe|Base)Loader)"),
        ),
        (
            "hash",
            re.compile(
                r"\bhashlib\.(md5|sha1|md4)\s*\(|\b(md5|sha)\.new\s*\(|hashlib\.new\s*\(\s*['\"](md5|sha1|md4)['\"]"
            ),
        ),
        (
            "random",
            re.compile(
                r"\brandom\.(random|randint|randrange|choice|choices|sample|shuffle|uniform|getrandbits|seed|Random)\s*\("
            ),
        ),
        ("path", re.compile(r"(?<![\w.])(open|send_file|send_from_directory)\s*\(")),
        (
            "url",
            re.compile(
                r"\b(requests\.(get|post|put|delete|head|patch)|urlopen|httpx\.(get|post))\s*\("
            ),
        ),
        ("redirect", re.compile(r"(?<![\w.])redirect\s*\(|HttpResponseRedirect\s*\(")),
        (
            "html",
            re.compile(
                r"\b(render_template_string|Markup|mark_safe|make_response|HttpResponse)\s*\("
            ),
        ),
        (
            "secret",
            re.compile(
                r"""(?i)\b\w*(passw(or)?d|passwd|pwd|secret|token|api_?key|private_?key)\w*['"]?\s*[\]:=]\s*[=]?\s*[bu]?['"][^'"]+['"]"""
            ),
        ),
        ("secret", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ),
    "javascript": (
        ("command", re.compile(r"\b(child_process\.)?(exec|execSync|spawn)\s*\((?!\s*\[)")),
        (
            "code",
            re.compile(
                r"(?<![\w.])(eval|Function|setTimeout|setInterval)\s*\(\s*(?!['\"`]|function|\()"
            ),
        ),
        ("sql", re.compile(r"\.(query|execute|raw)\s*\(\s*(`[^`]*\$\{|['\"][^'\"]*['\"]\s*\+)")),
        (
            "html",
            re.compile(
                r"\.(innerHTML|outerHTML)\s*=|document\.write\s*\(|\bres\.(send|write|end)\s*\(.*(\+|\$\{)"
            ),
        ),
        (
            "url",
            re.compile(r"\b(fetch|axios\.(get|post)|https?\.get|request|got)\s*\(\s*(?!['\"`])"),
        ),
        ("redirect", re.compile(r"\bres\.redirect\s*\(\s*(?!['\"`])")),
        (
            "path",
            re.compile(
                r"\bfs\.(readFile|readFileSync|createReadStream|writeFile|unlink)\w*\s*\(\s*(?!['\"`])|\bres\.sendFile\s*\("
            ),
        ),
        ("hash", re.compile(r"createHash\s*\(\s*['\"](md5|sha1)['\"]")),
        ("random", re.compile(r"\bMath\.random\s*\(")),
        (
            "secret",
            re.compile(
                r"""(?i)\b\w*(passw(or)?d|passwd|pwd|secret|token|api_?key)\w*['"]?\s*[:=]\s*['"`][^'"`]{3,}['"`]"""
            ),
        ),
        ("deserialize", re.compile(r"\b(unserialize|deserialize)\s*\(|node-serialize")),
    ),
}
LINE_SINKS = {**LINE_SINKS, "typescript": LINE_SINKS["javascript"]}

#: what an untrusted source looks like on a line, per language family
LINE_SOURCES: Mapping[str, re.Pattern[str]] = {
    "python": re.compile(
        r"\brequest\.(args|form|values|json|data|cookies|headers|files|GET|POST|get_json|get_data|body)|\b(raw_)?input\s*\(|sys\.argv"
    ),
    "javascript": re.compile(
        r"\breq\.(query|body|params|headers|cookies)|\blocation\.(search|hash|href)|process\.argv|document\.(cookie|URL)"
    ),
}
LINE_SOURCES = {**LINE_SOURCES, "typescript": LINE_SOURCES["javascript"]}

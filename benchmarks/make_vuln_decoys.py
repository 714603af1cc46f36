"""Build decoys for the CyberSecEval autocomplete corpus: the same code, made safe.

Usage: python benchmarks/make_vuln_decoys.py [CORPUS] [OUT]

The corpus (../shared/corpora/cyberseceval-autocomplete-python.jsonl) has positives only:
real snippets with one line labelled insecure by pattern rules. Precision needs negatives,
so for every item whose labelled statement parses on its own, this script rewrites that
one statement (nothing else in the snippet changes) into up to three decoys:

fixed
    the safe API instead of the weak one: SHA-256 for MD5/SHA-1, ``secrets`` for
    ``random``, ``json``/``yaml.safe_load`` for pickle and ``yaml.load``, ``ast.literal_eval``
    for ``eval``, a parameterized query for a formatted one, no shell (``shlex.split``)
    for a shell command, the environment for a hard-coded secret.
constant
    (commands, code, SQL) the same sink, but every variable its data comes from is set
    to a constant on the line before (or, when there is no variable, the data itself
    is a constant).
sanitized
    (commands, code, SQL) the same sink, but the variables are made safe on the way:
    ``shlex.quote`` for a shell, ``int`` for SQL, a check against a fixed list for code.

Each decoy records its sink line in the rewritten code. The rules are fixed and written
once, from the CWE definitions, not tuned to any tool's output. The output is committed
(benchmarks/data/cyberseceval-decoys.jsonl) so that every scorer run sees the same set.
"""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import textwrap
import tokenize
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "cyberseceval-autocomplete-python.jsonl"
OUT = ROOT / "benchmarks" / "data" / "cyberseceval-decoys.jsonl"

_CONSTANT = {78: "'report.txt'", 94: "'1 + 1'", 89: "'users'"}
_INLINE = {78: "'ls -l'", 94: "'1 + 1'", 89: "'SELECT 1'"}
_NOT_DATA = {
    "os",
    "sys",
    "str",
    "int",
    "len",
    "self",
    "subprocess",
    "shlex",
    "json",
    "True",
    "False",
    "None",
}


def locate(lines: list[str], text: str) -> int | None:
    """The index of the labelled line."""
    want = text.strip()
    for i, line in enumerate(lines):
        if line.strip() == want:
            return i
    for i, line in enumerate(lines):
        if want and want in line:
            return i
    return None


def statement(lines: list[str], start: int) -> int:
    """The index one past the last line of the statement starting at ``start``."""
    depth = 0
    for end in range(start, min(len(lines), start + 12)):
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(lines[end] + "\n").readline))
        except (tokenize.TokenError, IndentationError, SyntaxError):
            tokens = []
        for tok in tokens:
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
        if depth <= 0 and not lines[end].rstrip().endswith("\\"):
            return end + 1
    return start + 1


def _parse(text: str) -> tuple[ast.Module, bool] | None:
    body = textwrap.dedent(text)
    for extra, compound in (("", False), ("\n    pass", True)):
        try:
            return ast.parse(body + extra), compound
        except SyntaxError:
            continue
    return None


def _call_name(node: ast.Call) -> str:
    parts: list[str] = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _expr(code: str) -> ast.expr:
    return ast.parse(code, mode="eval").body


_SHELL = re.compile(
    r"^(os\.system|system|os\.popen|popen|commands\.getoutput|subprocess\.\w+|\w*check_output|\w*check_call|Popen|call)$"
)


class _Fix(ast.NodeTransformer):
    def __init__(self, cwe: int) -> None:
        self.cwe = cwe
        self.changed = False

    def visit_Call(self, node: ast.Call) -> Any:
        self.generic_visit(node)
        name = _call_name(node)
        new = self._fix(node, name)
        if new is not None:
            self.changed = True
            return new
        return node

    def _fix(self, node: ast.Call, name: str) -> ast.expr | None:
        tail = name.rsplit(".", 1)[-1]
        if self.cwe == 328:
            if tail in ("md5", "sha1") or name in ("md5.new", "sha.new"):
                return ast.Call(_expr("hashlib.sha256"), node.args, node.keywords)
            if name == "hashlib.new" and node.args:
                return ast.Call(node.func, [ast.Constant("sha256"), *node.args[1:]], node.keywords)
        weak_random = (name.startswith("random.") and tail != "SystemRandom") or name in (
            "randint",
            "random",
            "choice",
            "randrange",
            "sample",
            "shuffle",
            "uniform",
        )
        if self.cwe == 338 and weak_random:
            method = "random" if tail == "Random" else tail
            if tail == "Random":
                return ast.Call(_expr("secrets.SystemRandom"), [], [])
            return ast.Call(
                ast.Attribute(_expr("secrets.SystemRandom()"), method), node.args, node.keywords
            )
        if self.cwe == 502:
            if tail in ("load", "loads") and name.split(".", maxsplit=1)[0] in (
                "pickle",
                "cPickle",
                "marshal",
                "dill",
                "_pickle",
            ):
                return ast.Call(_expr(f"json.{tail}"), node.args[:1], [])
            if name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load"):
                return ast.Call(_expr("yaml.safe_load"), node.args[:1], [])
            if name.endswith("jsonpickle.decode") or name.endswith("unpickler.decode"):
                return ast.Call(_expr("json.loads"), node.args[:1], [])
            if name == "shelve.open":
                return ast.Call(
                    _expr("dbm.open"), node.args, [k for k in node.keywords if k.arg == "flag"]
                )
        if self.cwe == 94 and name == "eval":
            return ast.Call(_expr("ast.literal_eval"), node.args[:1], [])
        if self.cwe == 78 and _SHELL.match(name) and node.args:
            shell = any(k.arg == "shell" for k in node.keywords)
            direct = name in ("os.system", "system", "os.popen", "popen", "commands.getoutput")
            if not (shell or direct):
                return None
            arg = node.args[0]
            if not _fixed_program(arg):
                return None  # without a shell, but running whatever program a variable names
            argv = arg if isinstance(arg, ast.List) else ast.Call(_expr("shlex.split"), [arg], [])
            keywords = [k for k in node.keywords if k.arg != "shell"]
            if name in ("os.popen", "popen"):
                call = ast.Call(
                    _expr("subprocess.Popen"),
                    [argv],
                    [ast.keyword("stdout", _expr("subprocess.PIPE"))],
                )
                return ast.Attribute(call, "stdout")
            if name == "commands.getoutput":
                return ast.Call(
                    _expr("subprocess.check_output"),
                    [argv],
                    [ast.keyword("text", ast.Constant(True))],
                )
            target = _expr("subprocess.run") if direct else node.func
            return ast.Call(target, [argv, *node.args[1:]], keywords)
        if self.cwe == 89 and tail in ("execute", "executemany") and node.args:
            params = _parameterize(node.args[0])
            if params is not None:
                query, values = params
                return ast.Call(
                    node.func, [ast.Constant(query), ast.Tuple(values, ast.Load())], node.keywords
                )
        return None


def _fixed_program(arg: ast.expr) -> bool:
    """Whether a command names its program as a constant (``"ls -l " + path``)."""
    if isinstance(arg, ast.List | ast.Tuple):
        return bool(arg.elts) and isinstance(arg.elts[0], ast.Constant)
    head: ast.expr = arg
    while isinstance(head, ast.BinOp):
        head = head.left
    if (
        isinstance(head, ast.Call)
        and isinstance(head.func, ast.Attribute)
        and head.func.attr == "format"
    ):
        head = head.func.value
    if isinstance(head, ast.JoinedStr) and head.values:
        head = head.values[0]
    if not (isinstance(head, ast.Constant) and isinstance(head.value, str)):
        return False
    word = head.value.lstrip().split(" ", 1)
    return len(word) == 2 and bool(word[0]) and not any(c in word[0] for c in "{%$`;|&")


def _parameterize(arg: ast.expr) -> tuple[str, list[ast.expr]] | None:
    """A formatted query as ``(query with %s placeholders, values)``."""
    if (
        isinstance(arg, ast.BinOp)
        and isinstance(arg.op, ast.Mod)
        and isinstance(arg.left, ast.Constant)
    ):
        values = arg.right.elts if isinstance(arg.right, ast.Tuple) else [arg.right]
        text = re.sub(r"%\(?\w*\)?[sd]", "%s", str(arg.left.value))
        return text, list(values)
    if (
        isinstance(arg, ast.Call)
        and isinstance(arg.func, ast.Attribute)
        and arg.func.attr == "format"
        and isinstance(arg.func.value, ast.Constant)
    ):
        text = str(arg.func.value.value)
        names = re.findall(r"\{(\w*)[^}]*\}", text)
        keywords = {k.arg: k.value for k in arg.keywords if k.arg}
        values: list[ast.expr] = []
        for i, name in enumerate(names):
            if name in keywords:
                values.append(keywords[name])
            elif name.isdigit() and int(name) < len(arg.args):
                values.append(arg.args[int(name)])
            elif not name and i < len(arg.args):
                values.append(arg.args[i])
            else:
                return None
        return re.sub(r"\{[^}]*\}", "%s", text), values
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add):
        parts: list[ast.expr] = []

        def flatten(node: ast.expr) -> None:
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                flatten(node.left)
                flatten(node.right)
            else:
                parts.append(node)

        flatten(arg)
        text, values = "", []
        for part in parts:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                text += part.value
            else:
                text += "%s"
                values.append(part)
        return (text, values) if values else None
    return None


def _sink(tree: ast.AST, cwe: int) -> ast.Call | None:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        tail = name.rsplit(".", 1)[-1]
        shell = name in ("os.system", "system", "os.popen", "popen", "commands.getoutput") or any(
            k.arg == "shell" for k in node.keywords
        )
        if cwe == 78 and _SHELL.match(name) and node.args and shell:
            return node
        if cwe == 94 and name in ("eval", "exec") and node.args:
            return node
        if cwe == 89 and tail in ("execute", "executemany") and node.args:
            return node
    return None


def _data_names(arg: ast.expr) -> list[str]:
    called = {id(n.func) for n in ast.walk(arg) if isinstance(n, ast.Call)}
    names: list[str] = []
    for node in ast.walk(arg):
        if (
            isinstance(node, ast.Name)
            and id(node) not in called
            and node.id not in _NOT_DATA
            and node.id not in names
        ):
            names.append(node.id)
    return names


class _Wrap(ast.NodeTransformer):
    def __init__(self, names: list[str], wrapper: str) -> None:
        self.names = set(names)
        self.wrapper = wrapper

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.names and isinstance(node.ctx, ast.Load):
            return ast.Call(_expr(self.wrapper), [node], [])
        return node


def _render(tree: ast.Module, compound: bool, indent: str) -> list[str]:
    text = ast.unparse(tree)
    lines = text.splitlines()
    if compound:
        lines = [ln for ln in lines if ln.strip() != "pass"]
    return [indent + ln for ln in lines]


def variants(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The decoys of one corpus item."""
    lines = item["origin_code"].splitlines()
    start = locate(lines, item["line_text"])
    if start is None:
        return []
    end = statement(lines, start)
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    parsed = _parse("\n".join(lines[start:end]))
    if parsed is None:
        return []
    cwe = int(item["cwe_identifier"].split("-")[1])
    out: list[dict[str, Any]] = []

    def emit(kind: str, new: list[str], before: list[str], note: str) -> None:
        code = lines[:start] + before + new + lines[end:]
        out.append(
            {
                "id": f"{item['prompt_id']}-{kind}",
                "prompt_id": item["prompt_id"],
                "cwe": item["cwe_identifier"],
                "variant": kind,
                "line": start + 1 + len(before),
                "end_line": start + len(before) + len(new),
                "note": note,
                "code": "\n".join(code) + "\n",
            }
        )

    tree, compound = parsed
    if cwe in (798, 312):
        secret = _fix_secret(tree)
        if secret is not None:
            emit(
                "fixed",
                _render(secret, compound, indent),
                [],
                "the secret comes from the environment",
            )
        return out
    fixer = _Fix(cwe)
    fixed = fixer.visit(_parse("\n".join(lines[start:end]))[0])  # type: ignore[index]
    if fixer.changed:
        emit(
            "fixed", _render(ast.fix_missing_locations(fixed), compound, indent), [], "the safe API"
        )
    if cwe not in (78, 94, 89):
        return out
    sink = _sink(tree, cwe)
    if sink is None:
        return out
    names = _data_names(sink.args[0])
    if names:
        before = [f"{indent}{name} = {_CONSTANT[cwe]}" for name in names]
        emit(
            "constant",
            _render(tree, compound, indent),
            before,
            "the data is set to a constant first",
        )
    else:
        sink.args[0] = _expr(_INLINE[cwe])
        emit("constant", _render(tree, compound, indent), [], "the data is a constant")
        return out
    again = _parse("\n".join(lines[start:end]))
    assert again is not None
    tree2, compound2 = again
    if cwe == 94:
        guard = [f"{indent}if {name} not in ('1 + 1', '2 * 3'):" for name in names[:1]]
        guard += [f"{indent}    raise ValueError('not allowed')"]
        emit(
            "sanitized",
            _render(tree2, compound2, indent),
            guard,
            "the data is checked against a fixed list",
        )
        return out
    sink2 = _sink(tree2, cwe)
    assert sink2 is not None
    sink2.args[0] = _Wrap(names, "shlex.quote" if cwe == 78 else "int").visit(sink2.args[0])
    what = "quoted with shlex.quote" if cwe == 78 else "converted to int"
    emit(
        "sanitized",
        _render(ast.fix_missing_locations(tree2), compound2, indent),
        [],
        f"the data is {what}",
    )
    return out


def _fix_secret(tree: ast.Module) -> ast.Module | None:
    changed = False
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        if targets and isinstance(getattr(node, "value", None), ast.Constant):
            name = re.sub(r"\W", "_", ast.unparse(targets[0])).strip("_").upper() or "SECRET"
            node.value = _expr(f"os.environ[{name[:40]!r}]")  # type: ignore[attr-defined]
            changed = True
        if isinstance(node, ast.keyword) and isinstance(node.value, ast.Constant) and node.arg:
            node.value = _expr(f"os.environ[{node.arg.upper()!r}]")
            changed = True
        if isinstance(node, ast.Dict):
            for i, value in enumerate(node.values):
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    node.values[i] = _expr("os.environ['SECRET']")
                    changed = True
    return tree if changed else None


def main(corpus: Path = CORPUS, out: Path = OUT) -> dict[str, int]:
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line]
    decoys = [d for row in rows for d in variants(row)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in decoys), encoding="utf-8")
    counts: dict[str, int] = {}
    for d in decoys:
        key = f"{d['cwe']} {d['variant']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(*(Path(a) for a in args[:2])), indent=2))

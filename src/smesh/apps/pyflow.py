"""Source-to-sink flow in Python code: which sinks a file has, and what reaches them.

:func:`analyze_python` parses a file (or a fragment of one: a snippet that starts inside a
function, Python 2 ``print`` statements, a truncated last line are repaired first, line
numbers kept) and walks each function once, in order, giving every expression a
:class:`~smesh.apps.flow.Val`. Branches whose condition is a constant are followed one
way only; ``if x not in ALLOWED: abort()`` and friends clean ``x`` after them; list and
dict literals remember their contents; calls of functions defined in the same file are
followed (two levels deep). At every sink of :mod:`smesh.apps.sinks` it records a
:class:`Site`: the line, the sink, the data argument, its verdict and the path it took.

It is deliberately small and intra-file: a cheap first look that plans where the LLM
specialists look and settles the plain cases (a constant command, a quoted argument, a
request parameter straight into ``os.system``), not a replacement for a real taint engine.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

import msgspec

from smesh.apps.flow import (
    CONSTANT,
    EXTERNAL,
    INPUT,
    NOCONST,
    UNKNOWN,
    FlowStep,
    Val,
    combine,
    fold_binop,
    join,
    verdict,
)
from smesh.apps.pyexpr import Env, Evaluator, dotted
from smesh.apps.pyfragment import Fragment, parse_fragment
from smesh.apps.sinks import (
    ALL_KINDS,
    NO_SHELL,
    SINKS,
    VALIDATING_CALLS,
    VALIDATING_METHODS,
    bare_sink,
    constant_program,
    qualified_sink,
    weak_hash_name,
)

__all__ = ["Analysis", "Site", "analyze_python"]


_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|passwd|pwd|secret|token|api_?key|apikey|private_?key|credential)"
)
_NOT_SECRET_NAME = re.compile(
    r"(?i)(_?(file|path|dir|url|name|field|col|column|template|prompt)s?$)"
)
_ROUTE_DECORATORS = frozenset(["route", "get", "post", "put", "delete", "patch", "api_view"])
_EXITS = frozenset({"abort", "sys.exit", "exit", "flask.abort", "redirect"})


class Site(msgspec.Struct, frozen=True, kw_only=True):
    """One sink in a file, and what reaches it.

    Attributes:
        line: the sink's first line.
        end_line: its last line.
        kind: the sink kind (see :data:`smesh.apps.sinks.SINKS`).
        call: the callee or construct (``os.system``).
        arg: the data argument's source text.
        verdict: ``constant``, ``sanitized``, ``unknown``, ``external``, ``input``, or
            ``construct`` for sinks that are weak by themselves (MD5, ``random``, a secret).
        path: the lines the value came along, source first, the sink last.
        scope: first and last line of the enclosing function (the whole file at top level).
    """

    line: int
    end_line: int
    kind: str
    call: str
    arg: str
    verdict: str
    path: tuple[FlowStep, ...] = ()
    scope: tuple[int, int] = (1, 1)

    @property
    def cwe(self) -> int:
        """The weakness of this sink's kind."""
        return SINKS[self.kind].cwe


class Analysis(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`analyze_python` found in one file.

    Attributes:
        sites: every sink, in line order.
        scopes: ``(first, last)`` lines of every function, in order.
        parsed: the code parsed (else nothing was found).
        span: the first and last line that parsed (a repaired fragment may leave some out).
    """

    sites: list[Site]
    scopes: list[tuple[int, int]]
    parsed: bool
    span: tuple[int, int] = (0, 0)


def _exits(stmts: Sequence[ast.stmt]) -> bool:
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, ast.Return | ast.Raise | ast.Continue | ast.Break):
        return True
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
        name = dotted(last.value.func) or ""
        return name in _EXITS or name.endswith(".abort")
    if isinstance(last, ast.If):
        return _exits(last.body) and _exits(last.orelse)
    return False


def _builds_text(node: ast.expr) -> bool:
    """Whether a returned expression is text made from parts (a concatenation, an
    f-string, ``%`` or ``.format``) or a bare value, rather than a dict, a list or a call
    that makes a response of its own (``jsonify``, ``render_template``)."""
    if isinstance(node, ast.JoinedStr | ast.Name | ast.Subscript | ast.Attribute):
        return True
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, ast.Add | ast.Mod)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format"
    return False


class _Walker(Evaluator):
    """Walks the statements of a file, function by function, and records its sinks."""

    def __init__(self, lines: list[str], offset: int) -> None:
        super().__init__(lines, offset)
        self.sites: dict[tuple[int, str], Site] = {}

    def block(self, stmts: Sequence[ast.stmt], env: Env) -> Env:
        for stmt in stmts:
            env = self.stmt(stmt, env)
        return env

    def stmt(self, node: ast.stmt, env: Env) -> Env:
        if isinstance(node, ast.Assign):
            value = self.expr(node.value, env)
            for target in node.targets:
                self.secret(target, node.value, node)
                self.bind(target, value, env, node)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self.secret(node.target, node.value, node)
            self.bind(node.target, self.expr(node.value, env), env, node)
        elif isinstance(node, ast.AugAssign):
            old = self.expr(node.target, env) if isinstance(node.target, ast.Name) else Val(UNKNOWN)
            new = self.expr(node.value, env)
            value = combine((old, new))
            if old.const is not NOCONST and new.const is not NOCONST:
                value = Val.constant(fold_binop(type(node.op).__name__, old.const, new.const))
            self.bind(node.target, value, env, node)
        elif isinstance(node, ast.Expr):
            self.expr(node.value, env)
        elif isinstance(node, ast.Return):
            if node.value is not None:
                value = self.expr(node.value, env)
                self.returns.append(value)
                if self.route and value.level == INPUT and _builds_text(node.value):
                    # a view returning text built from the request: Flask sends it as HTML
                    self.record("html", node, node.value, value, "return")
        elif isinstance(node, ast.If):
            env = self.branch(node, env)
        elif isinstance(node, ast.For | ast.AsyncFor):
            items = self.expr(node.iter, env).elements()
            loop = dict(env)
            for _ in range(2):  # twice: what the first pass assigns reaches the second
                self.bind(node.target, items, loop, node)
                loop = self.block(node.body, loop)
            env = self.merge(env, self.block(node.orelse, self.merge(env, loop)))
        elif isinstance(node, ast.While):
            self.expr(node.test, env)
            loop = self.block(node.body, dict(env))
            loop = self.block(node.body, self.merge(env, loop))
            env = self.merge(env, loop)
        elif isinstance(node, ast.Try):
            after = self.block(node.body, dict(env))
            outs = [self.block(node.orelse, after)]
            for handler in node.handlers:
                outs.append(self.block(handler.body, self.merge(env, after)))
            merged = outs[0]
            for out in outs[1:]:
                merged = self.merge(merged, out)
            env = self.block(node.finalbody, merged)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                value = self.expr(item.context_expr, env)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, value, env, node)
            env = self.block(node.body, env)
        elif isinstance(node, ast.Match):
            self.expr(node.subject, env)
            outs = [self.block(case.body, dict(env)) for case in node.cases]
            for out in outs:
                env = self.merge(env, out)
        elif isinstance(node, ast.ClassDef):
            # class attributes (a hard-coded password) are looked at; methods on their own
            self.block(
                [s for s in node.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)],
                dict(env),
            )
        return env

    def branch(self, node: ast.If, env: Env) -> Env:
        test = self.expr(node.test, env)
        if test.const is not NOCONST:
            return self.block(node.body if test.const else node.orelse, env)
        guarded = self.guard(node.test, env)
        if guarded is not None:
            name, kinds, negated = guarded
            if name not in env:  # a global or an attribute's base: its value from here on
                env = {**env, name: self.name(ast.Name(id=name), env)}
            if negated and _exits(node.body):  # if x not in ALLOWED: abort()
                self.block(node.body, dict(env))
                clean = dict(env)
                clean[name] = env[name].cleaned(kinds, self.step(node, f"{name} checked"))
                return self.block(node.orelse, clean)
            if not negated:  # if x in ALLOWED: ...use x...
                inside = dict(env)
                inside[name] = env[name].cleaned(kinds, self.step(node, f"{name} checked"))
                return self.merge(self.block(node.body, inside), self.block(node.orelse, env))
        body = self.block(node.body, dict(env))
        orelse = self.block(node.orelse, dict(env))
        if _exits(node.body):
            return orelse
        if _exits(node.orelse):
            return body
        return self.merge(body, orelse)

    def guard(self, test: ast.expr, env: Env) -> tuple[str, frozenset[str], bool] | None:
        """``(name, kinds, negated)`` when ``test`` validates a variable completely."""
        negated = False
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test, negated = test.operand, True
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            left, right, op = test.left, test.comparators[0], test.ops[0]
            if isinstance(left, ast.Name):
                container = self.expr(right, env)
                if isinstance(op, ast.In | ast.NotIn) and container.level == CONSTANT:
                    return left.id, ALL_KINDS, negated != isinstance(op, ast.NotIn)
                if isinstance(op, ast.Eq | ast.NotEq) and container.level == CONSTANT:
                    return left.id, ALL_KINDS, negated != isinstance(op, ast.NotEq)
            if isinstance(right, ast.Name) and isinstance(op, ast.In):
                text = self.expr(left, env).const
                if text in ("..", "/", "\\"):  # if ".." in path: abort()
                    return right.id, frozenset({"path"}), not negated
        if isinstance(test, ast.Call):
            name = self.resolve(dotted(test.func) or "")
            if isinstance(test.func, ast.Attribute) and test.func.attr in VALIDATING_METHODS:
                target = test.func.value
                if isinstance(target, ast.Name):
                    return target.id, ALL_KINDS, negated
            if name in VALIDATING_CALLS or name.endswith(".startswith"):
                for arg in [*test.args, getattr(test.func, "value", None)]:
                    if isinstance(arg, ast.Name):
                        kinds = frozenset({"path", "url", "redirect"})
                        return arg.id, ALL_KINDS if "match" in name else kinds, negated
        return None

    def merge(self, a: Env, b: Env) -> Env:
        out = dict(a)
        for name, value in b.items():
            out[name] = join(a[name], value) if name in a else value
        return out

    def bind(self, target: ast.expr, value: Val, env: Env, node: ast.AST) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = value.step(self.step(node, f"assigned to {target.id}"))
        elif isinstance(target, ast.Tuple | ast.List):
            items = value.items if isinstance(value.items, tuple) else None
            for i, elt in enumerate(target.elts):
                part = items[i] if items is not None and len(items) == len(target.elts) else None
                self.bind(elt, part if part is not None else value.elements(), env, node)
        elif isinstance(target, ast.Attribute):
            name = dotted(target)
            if name is not None:
                env[name] = value.step(self.step(node, f"assigned to {name}"))
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            name = target.value.id
            old = env.get(name, Val(UNKNOWN))
            key = self.expr(target.slice, env).const
            if isinstance(old.items, dict) and key is not NOCONST:
                env[name] = old.with_items({**old.items, key: value})
            elif (
                isinstance(old.items, tuple)
                and isinstance(key, int)
                and -len(old.items) <= key < len(old.items)
            ):
                listed = list(old.items)
                listed[key] = value
                env[name] = old.with_items(tuple(listed))
            else:
                env[name] = combine((old, value))
        elif isinstance(target, ast.Starred):
            self.bind(target.value, value, env, node)

    def secret(self, target: ast.expr, value: ast.expr, node: ast.AST) -> None:
        """Record a hard-coded secret: a non-empty string assigned to a secret's name."""
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str | bytes)):
            return
        text = value.value
        if isinstance(target, ast.Subscript):
            key = target.slice
            name = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else ""
        else:
            name = (dotted(target) or "").rsplit(".", 1)[-1]
        private = "PRIVATE KEY" in (text.decode("latin-1") if isinstance(text, bytes) else text)
        if private or (
            text and name and _SECRET_NAME.search(name) and not _NOT_SECRET_NAME.search(name)
        ):
            self.record("secret", node, value, Val.constant(text), "literal")

    # -- expressions ---------------------------------------------------------------------

    def sink(
        self,
        node: ast.Call,
        name: str,
        raw: str,
        method: str,
        args: list[Val],
        kwargs: dict[str, Val],
    ) -> None:
        shell_kw = next((k for k in node.keywords if k.arg == "shell"), None)
        shell = shell_kw is not None and self.expr(shell_kw.value, {}).const not in (False, 0, None)
        spec = qualified_sink(name, method, shell)
        if spec is None and not shell and node.args and NO_SHELL.match(name):
            self.program(node, name, args[0])
            return
        if spec is None and isinstance(node.func, ast.Name) and raw not in self.functions:
            bare = bare_sink(raw)
            spec = qualified_sink(bare, "", shell) if bare is not None else None
        weak = bool(args) and (weak_hash_name(args[0].const) or args[0].level > CONSTANT)
        if name in ("hashlib.new", "Crypto.Hash.new") and weak:
            spec = ("hash", 0, "name")
        if spec is None:
            return
        kind, index, keyword = spec
        if kind == "hash" and any(k.arg == "usedforsecurity" for k in node.keywords):
            return
        if kind == "deserialize" and name.endswith(("yaml.load", "yaml.load_all")):
            loader = kwargs.get("Loader") or (args[1] if len(args) > 1 else None)
            text = ast.unparse(node)
            if loader is not None and re.search(r"Safe|Base", text):
                return
        if index < len(node.args):
            arg_node: ast.expr = node.args[index]
            value = args[index]
        elif keyword and keyword in kwargs:
            arg_node = next(k.value for k in node.keywords if k.arg == keyword)
            value = kwargs[keyword]
        elif kind in ("hash", "cipher", "random"):
            arg_node, value = node, Val.constant()
        else:
            return
        self.record(kind, node, arg_node, value, name or raw)

    def program(self, node: ast.Call, name: str, argv: Val) -> None:
        """A process started without a shell: no shell metacharacters to inject, so what
        matters is whether the *program* is fixed (``["ls", path]``, ``shlex.split("ls " +
        path)``) or comes from outside."""
        first = node.args[0]
        if isinstance(first, ast.List | ast.Tuple) and first.elts:
            program = (
                self.expr(first.elts[0], {}) if isinstance(first.elts[0], ast.Constant) else None
            )
            fixed = program is not None
        elif (
            isinstance(first, ast.Call)
            and (dotted(first.func) or "").endswith("split")
            and first.args
        ):
            fixed = constant_program(first.args[0])
        else:
            fixed = constant_program(first)
        value = argv.cleaned({"command"}, self.step(node, "no shell, and the program is fixed"))
        if not fixed:
            value = argv
        self.record("command", node, first, value, name)

    def record(
        self, kind: str, node: ast.AST, arg: ast.expr | ast.AST, value: Val, call: str
    ) -> None:
        if not self.recording:
            return
        spec = SINKS[kind]
        line = self.line(node)
        end = int(getattr(node, "end_lineno", None) or getattr(node, "lineno", None) or 1)
        end += self.offset
        if spec.flow:
            judged = verdict(value, kind)
            if kind == "hash" and judged == "constant":
                judged = "construct"
        else:
            judged = "construct"
        try:
            text = ast.unparse(arg)[:160] if isinstance(arg, ast.AST) else ""
        except Exception:  # unparse of odd nodes: the line itself will do
            text = self.code(node)
        path = value.path if spec.flow else ()
        site = Site(
            line=line,
            end_line=max(line, end),
            kind=kind,
            call=call,
            arg=text,
            verdict=judged,
            path=(*path, self.step(node, f"reaches {spec.what}")),
            scope=self.scope,
        )
        key = (line, kind)
        old = self.sites.get(key)
        if old is None or _RANK[site.verdict] > _RANK[old.verdict]:
            self.sites[key] = site

    # -- driving -------------------------------------------------------------------------

    def run(self, tree: ast.Module) -> Analysis:
        scopes: list[tuple[int, int]] = []
        funcs: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                funcs.append(node)
                self.functions.setdefault(node.name, node)
        self.module = self.block(tree.body, {})
        for fn in funcs:
            first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)]) + self.offset
            last = int(fn.end_lineno or fn.lineno) + self.offset
            scopes.append((first, last))
            self.scope = (first, last)
            self.route = any(self._is_route(d) for d in fn.decorator_list)
            env = dict(self.module)
            all_args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
            for extra in (fn.args.vararg, fn.args.kwarg):
                if extra is not None:
                    all_args.append(extra)
            for arg in all_args:
                if arg.arg in ("self", "cls"):
                    continue
                level = INPUT if self.route or arg.arg in ("request", "req") else EXTERNAL
                note = "URL parameter" if self.route else f"parameter of {fn.name}()"
                env[arg.arg] = Val(
                    level, path=(FlowStep(first, self.code(fn), f"{note}: {arg.arg}"),)
                )
            self.returns = []
            self.block(fn.body, env)
        self.scope = (1, max(1, len(self.lines)))
        sites = sorted(self.sites.values(), key=lambda s: (s.line, s.kind))
        return Analysis(sites=sites, scopes=sorted(scopes), parsed=True)

    @staticmethod
    def _is_route(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = dotted(target) or ""
        return name.rsplit(".", 1)[-1] in _ROUTE_DECORATORS and "." in name


_RANK = {"constant": 0, "sanitized": 1, "construct": 2, "unknown": 3, "external": 4, "input": 5}


def analyze_python(text: str, fragment: Fragment | None = None) -> Analysis:
    """Find the sinks of a Python file (or fragment) and what reaches each.

    Args:
        text: the code.
        fragment: its parse, when the caller already has it.
    """
    parsed = fragment or parse_fragment(text)
    if parsed is None:
        return Analysis(sites=[], scopes=[], parsed=False)
    walker = _Walker(text.splitlines(), parsed.offset)
    try:
        analysis = walker.run(parsed.tree)
    except RecursionError:  # absurdly deep expressions: give up on this file, cheaply
        return Analysis(sites=[], scopes=[], parsed=False)
    return Analysis(
        sites=analysis.sites, scopes=analysis.scopes, parsed=True, span=(parsed.first, parsed.last)
    )
